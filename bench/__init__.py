"""Benchmarks, run as modules from the root of the checkout: `.venv/bin/python -m bench.throughput ...`."""
