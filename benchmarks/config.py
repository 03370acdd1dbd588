"""The sizes of every benchmark, their defaults, the ``--quick`` preset, and the targets."""

from __future__ import annotations

from dataclasses import dataclass

#: Every scenario, in the order they run.
SCENARIOS = ("throughput", "openedx", "latency", "memory", "scaling", "concurrency", "startup")


@dataclass(frozen=True)
class BenchSettings:
    """How big each benchmark is; every field is a command-line option of the same name."""

    #: Messages on the throughput topic; every throughput run consumes all of them.
    messages: int = 200_000
    #: Open edX events (Avro, produced by edx-event-bus-kafka) on the Open edX topic; every run consumes all.
    openedx_messages: int = 50_000
    #: Size of each message's JSON value, in bytes.
    payload_bytes: int = 300
    #: Partitions of every topic.
    partitions: int = 6
    #: Rounds of the alternating throughput runs (reference, no-op, the ORM receivers on SQLite and on
    #: PostgreSQL) and of the startup runs.
    repetitions: int = 3
    #: Measured messages of the latency benchmark, sent at ``latency_rate``.
    latency_messages: int = 10_000
    #: Messages per second the latency benchmark produces.
    latency_rate: int = 1_000
    #: Message counts at which the memory benchmark reads the RSS; the growth is last minus first.
    #: The first comes after librdkafka's prefetch buffer filled: at 100,000 messages (one second at full speed)
    #: it still was (103 MB, then 133.5 MB at 200,000 and 134.3 MB at 2,000,000).
    memory_checkpoints: tuple[int, ...] = (300_000, 1_500_000)
    #: Numbers of consume_events processes, in one group, of the scaling benchmark.
    scaling_processes: tuple[int, ...] = (1, 2, 3)
    #: Seconds each scaling step runs once every process handled a message.
    scaling_seconds: float = 20.0
    #: Milliseconds the scaling benchmark's receiver sleeps per message.
    scaling_sleep_ms: float = 5.0
    #: Worker threads (``CONCURRENCY``) of the concurrency benchmark's one process, against 1.
    concurrency_threads: int = 32
    #: Messages of the concurrency benchmark's 5 ms receiver: all of them timed with ``concurrency_threads``,
    #: the first ``1 / SEQUENTIAL_SHARE`` of them with ``CONCURRENCY = 1``.
    concurrency_messages: int = 80_000
    #: Messages produced before the concurrency benchmark's backlog run (1 ms receiver) starts.
    concurrency_backlog: int = 1_000_000
    #: Seconds the backlog run works through the backlog, its RSS read as it goes.
    concurrency_backlog_seconds: float = 45.0
    #: ``CONN_MAX_AGE`` of the ORM receivers' databases, SQLite and PostgreSQL alike: ``none`` (persistent, as a
    #: long-running worker should have it) or seconds. With Django's default of 0 the app reconnects for every message.
    orm_conn_max_age: str = "none"


#: ``--quick``: a smoke run of every scenario in a few minutes.
QUICK = BenchSettings(
    messages=20_000,
    openedx_messages=5_000,
    repetitions=1,
    latency_messages=2_000,
    memory_checkpoints=(10_000, 100_000),
    scaling_seconds=8.0,
    concurrency_messages=20_000,
    concurrency_backlog=500_000,
    concurrency_backlog_seconds=10.0,
)


@dataclass(frozen=True)
class Targets:
    """The target each figure is held to (stated in docs/concepts/performance.rst next to the results)."""

    #: No-op receiver throughput over the reference's, at least.
    noop_ratio: float = 0.8
    #: No-op receiver CPU time per message over the reference's, at most.
    noop_cpu_ratio: float = 1.5
    #: Open edX events: consume_events' throughput over edx-event-bus-kafka's consumer's, at least.
    openedx_peer_ratio: float = 2.0
    #: Open edX events: consume_events' throughput over the hand-written Avro loop's, at least.
    openedx_loop_ratio: float = 0.9
    #: 99th percentile produce-to-receiver latency at ``latency_rate``, at most (ms).
    latency_p99_ms: float = 25.0
    #: RSS growth between the first and the last memory checkpoint, at most (MB).
    rss_growth_mb: float = 10.0
    #: Total throughput of N processes over N times one process's, at least, for N up to the cores.
    scaling_efficiency: float = 0.8
    #: msgs/s of one process with ``concurrency_threads`` workers over its msgs/s with 1, 5 ms receiver, at least.
    concurrency_ratio: float = 20.0
    #: RSS growth of the concurrency benchmark's process while it works through a backlog, at most (MB).
    backlog_rss_growth_mb: float = 10.0
    #: Process start to first message handled, at most (s).
    startup_s: float = 3.0
    #: On PostgreSQL, throughput of the bulk_create batch receiver (f) over the per-message ORM receiver's (e),
    #: at least. A database server is where Django services run, and where each per-message INSERT costs a round
    #: trip and a commit that a batch pays once. SQLite's d/c is reported without a target: in-process inserts
    #: cost so little that the batch receiver is bound by Django's per-object work under the GIL.
    postgres_batch_ratio: float = 5.0


TARGETS = Targets()
