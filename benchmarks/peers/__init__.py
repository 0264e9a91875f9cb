"""Benchmark peers that need their own virtualenv (`.venv-peers`, made by `make bench`)."""
