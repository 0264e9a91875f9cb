"""Simulated venues: the same classes back backtests and paper trading."""
