"""Perpetua bots layer."""
