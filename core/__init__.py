"""Perpetua core layer."""
