"""flagmw benchmarks (not part of the installed package).

Run from the repository root, e.g. ``.venv/bin/python -m benchmarks.bench_core``; see
``benchmarks/README.md``. Speed is measured here, never in the test suite.
"""
