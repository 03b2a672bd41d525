"""Cold start, warm latency, memory and bundle size of the API handler, beside two peers.

Run with `make bench` (or `python -m benchmarks --help`). Not part of the product:
nothing under `lambda_app/` imports from here.
"""
