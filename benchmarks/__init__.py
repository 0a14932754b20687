"""Benchmarks: the project beside its baselines, measured side by side (`python -m benchmarks`).

Kept import-free so that `python -m benchmarks.baselines.…` children start as lean as a user's
script would.
"""
