"""Perpetua pricing layer."""
