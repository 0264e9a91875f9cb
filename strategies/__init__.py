"""Perpetua strategies layer."""
