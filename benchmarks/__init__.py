"""Side-by-side benchmarks (``python -m benchmarks run [NAME ...]``); never part of the tests."""
