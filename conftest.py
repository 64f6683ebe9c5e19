"""pytest loads this file first from the repository root, and so puts the root on `sys.path`: the tests import
the `benchmarks` package (tests/test_benchmarks.py) as `python -m benchmarks.<...>` runs it, from the root."""
