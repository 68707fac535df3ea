"""Benchmarks: run with `refstage bench` (or `--quick`). Results go to docs/benchmarks.md."""
