"""Benchmarks that print timing figures (median, p99, max); never asserted in tests."""
