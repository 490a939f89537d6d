"""crashsight's benchmarks: the harness's cost against what users would use instead.

Run them with ``make bench`` (or ``python -m benchmarks.run --quick`` for a smoke run). Each
benchmark lives in its own module and returns a `benchmarks.common.BenchResult`; `benchmarks.run`
runs them in order, prints a table and writes ``benchmarks/results/latest.json``.

Why ratios only: the machines these run on are shared and noisy, so an absolute time says more
about the neighbours than about crashsight. Every figure is a ratio against a baseline measured in
the same invocation, interleaved with the subject and repeated, with medians taken.
"""
