"""Perpetua connectors layer."""
