"""cblab benchmarks: each `benchmarks/bench_*.py` exposes `main()`; run them with
`make bench` (all) or `make bench BENCH="breaker_overhead sim"` (some), i.e.
`python -m benchmarks [NAME ...]` from the repo root."""
