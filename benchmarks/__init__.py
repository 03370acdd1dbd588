"""
Benchmarks of kafka_consumer_app against a local Apache Kafka broker that they start themselves.

Run ``python -m benchmarks`` (or ``make bench``); ``python -m benchmarks --help`` lists the
options. The package is kept out of the test suite: pytest only collects ``tests/``.

Layout:

- :mod:`benchmarks.cli` parses options and runs the chosen scenarios in order.
- :mod:`benchmarks.scenarios` holds one module per measurement (throughput, latency, memory,
  scaling, startup); each returns a result dataclass.
- :mod:`benchmarks.processes` starts the measured processes: the real ``consume_events``
  command through ``benchmarks/manage.py``, and the hand-written reference loop
  :mod:`benchmarks.reference`.
- :mod:`benchmarks.recorder` runs inside those processes and writes what they measured to a
  JSON file; :mod:`benchmarks.benchapp` holds the receivers, steered by ``BENCH_*`` variables.
- :mod:`benchmarks.report` and :mod:`benchmarks.plot` turn results into the text table,
  ``docs/benchmarks.rst`` and ``docs/benchmarks.png``.
"""
