"""Benchmarks: scripts that print ratios measured side by side in one run (never asserted).

Run all with ``python -m benchmarks`` or some with ``python -m benchmarks kernels search``.
"""
