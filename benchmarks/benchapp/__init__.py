"""The benchmark app: one model for the ORM receiver, and receivers steered by ``BENCH_*`` variables."""
