"""Benchmark scripts: one per question; see docs/benchmarks.md."""
