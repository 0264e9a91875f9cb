"""Perpetua backtest layer."""
