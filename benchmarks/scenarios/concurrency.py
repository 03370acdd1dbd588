"""
Concurrency: one ``consume_events`` process running ``CONCURRENCY`` worker threads (ADR 8).

Two measurements, each on its own topic of ``partitions`` partitions, keyed by customer as
everywhere (5,000 keys, so ``ORDERING = "key"`` holds back little):

1. **An I/O-bound receiver**, which sleeps :data:`SLEEP_MS` per message (standing for a call to
   another service), in one process with ``CONCURRENCY = 1`` and then with
   ``concurrency_threads``. The threaded run consumes all ``concurrency_messages``; the
   sequential one, about ``threads`` times slower, is timed over the first
   ``1 / SEQUENTIAL_SHARE`` of them and stopped there (``--max-messages``). Both are timed from
   their first handled message to their last, with the process's CPU time per message over the
   same window, as in the throughput benchmark.
2. **Memory under a backlog**: ``concurrency_backlog`` messages are produced before one process
   with ``concurrency_threads`` workers and a :data:`BACKLOG_SLEEP_MS` receiver starts. Its
   recorder reads the RSS every ``1 / RSS_SAMPLES`` of the way to its ``--max-messages`` (several
   times a second), and it gets SIGTERM after ``concurrency_backlog_seconds``. ``--max-messages``
   leaves 1.5 times librdkafka's prefetch buffer unconsumed (as the memory benchmark does), so
   that the backlog never runs out while the RSS is read. What keeps memory flat is
   backpressure: librdkafka fetches at most ``queued.max.messages.kbytes`` ahead, and the engine
   pauses a partition with ``MAX_QUEUED`` messages taken in and not finished.

   The RSS swings by tens of MB from one reading to the next: pausing a partition makes
   librdkafka drop the messages it prefetched for it (they are fetched again on resume), and the
   engine pauses and resumes partitions many times a second under a backlog. Two single
   readings would compare two points of that swing, so each checkpoint is a window: the
   highest RSS (the peak, which a memory limit must allow) among the readings of the first
   quarter, and of the last quarter, of the time after :data:`WARMUP_SECONDS` (by which the
   prefetch buffer and the engine's queues have filled). The growth is the last peak minus the
   first.

Both use the app's defaults for everything else (``ORDERING``, ``MAX_QUEUED``, the client's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks import processes
from benchmarks.cluster import BenchmarkError, produce_bulk
from benchmarks.context import Context
from benchmarks.progress import say
from benchmarks.recorder import RecorderOptions
from benchmarks.scenarios.memory import topic_size
from benchmarks.scenarios.throughput import measured
from benchmarks.stats import rate

#: Milliseconds the I/O-bound receiver sleeps per message.
SLEEP_MS = 5.0
#: Milliseconds the receiver of the backlog run sleeps per message.
BACKLOG_SLEEP_MS = 1.0
#: The sequential run is timed over the first ``concurrency_messages // SEQUENTIAL_SHARE`` messages.
SEQUENTIAL_SHARE = 40
#: RSS readings of the backlog run, evenly spaced up to its ``--max-messages``.
RSS_SAMPLES = 500
#: Seconds after the backlog run's first message before the first reading that counts.
WARMUP_SECONDS = 5.0
#: Each checkpoint window spans this share of the time between the warm-up and the last reading.
WINDOW_SHARE = 0.25


@dataclass
class ConcurrencyRun:
    """One timed run of the I/O-bound receiver."""

    threads: int
    messages: int
    rate: float
    cpu_us: float


@dataclass
class BacklogRun:
    """RSS readings of the backlog run, by messages handled, and when each was read."""

    threads: int
    sleep_ms: float
    backlog: int
    #: RSS in bytes by messages handled.
    rss_bytes: dict[int, int] = field(default_factory=dict)
    #: Seconds from the first handled message to each reading, by messages handled.
    seconds: dict[int, float] = field(default_factory=dict)
    #: Messages handled in all, and their rate over the run (for information).
    handled: int = 0
    rate: float = 0.0

    def windows(self) -> tuple[list[int], list[int]]:
        """The message counts of the readings in the first and in the last checkpoint window."""
        counted = [count for count in sorted(self.seconds) if self.seconds[count] >= WARMUP_SECONDS]
        if len(counted) < 4:
            raise BenchmarkError(
                f"concurrency: the backlog run read its RSS {len(counted)} time(s) after its {WARMUP_SECONDS:g}s "
                "warm-up; give it more --concurrency-backlog-seconds or a larger --concurrency-backlog"
            )
        end = self.seconds[counted[-1]]
        width = (end - WARMUP_SECONDS) * WINDOW_SHARE
        first = [count for count in counted if self.seconds[count] <= WARMUP_SECONDS + width]
        last = [count for count in counted if self.seconds[count] >= end - width]
        return first, last

    def peak(self, counts: list[int]) -> int:
        """The highest RSS among the readings at ``counts``, in bytes."""
        return max(self.rss_bytes[count] for count in counts)

    @property
    def growth(self) -> int:
        """The last window's peak RSS minus the first window's, in bytes."""
        first, last = self.windows()
        return self.peak(last) - self.peak(first)


@dataclass
class ConcurrencyResult:
    """The two runs of the I/O-bound receiver, and the backlog run."""

    sleep_ms: float
    partitions: int
    sequential: ConcurrencyRun
    concurrent: ConcurrencyRun
    backlog: BacklogRun

    @property
    def ratio(self) -> float:
        """msgs/s with ``concurrency_threads`` workers over msgs/s with one."""
        return self.concurrent.rate / self.sequential.rate


def sequential_messages(messages: int) -> int:
    """How many messages the ``CONCURRENCY = 1`` run is timed over (at least two, for a rate)."""
    return max(2, messages // SEQUENTIAL_SHARE)


def rss_counts(max_messages: int) -> frozenset[int]:
    """Message counts where the backlog run reads its RSS: the first, then :data:`RSS_SAMPLES` evenly spaced."""
    return frozenset({1, *(max_messages * step // RSS_SAMPLES for step in range(1, RSS_SAMPLES + 1))} - {0})


def run(context: Context) -> ConcurrencyResult:
    """The I/O-bound receiver at ``CONCURRENCY`` 1 and ``concurrency_threads``, then the backlog run."""
    settings = context.settings
    topic = context.cluster.new_topic("concurrency", settings.partitions)
    say(f"concurrency: producing {settings.concurrency_messages:,} messages to {topic}")
    produce_bulk(context.bootstrap, topic, settings.concurrency_messages, settings.payload_bytes, settings.partitions)
    sequential = _timed_run(context, topic, 1, sequential_messages(settings.concurrency_messages))
    concurrent = _timed_run(context, topic, settings.concurrency_threads, settings.concurrency_messages)
    backlog = _backlog_run(context)
    return ConcurrencyResult(SLEEP_MS, settings.partitions, sequential, concurrent, backlog)


def _timed_run(context: Context, topic: str, threads: int, messages: int) -> ConcurrencyRun:
    """One process, in a new group, handling the topic's first ``messages`` with ``threads`` workers."""
    name = f"concurrency-{threads}"
    process = processes.consume_events(
        name,
        context.workdir,
        bootstrap=context.bootstrap,
        topic=topic,
        group=context.cluster.new_group(name),
        receiver="sleep",
        recorder=RecorderOptions(expected=messages, locked=True),
        args=["--max-messages", str(messages)],
        env={"BENCH_SLEEP_MS": str(SLEEP_MS), "BENCH_CONCURRENCY": str(threads)},
    )
    say(f"concurrency: CONCURRENCY={threads}, {SLEEP_MS:g} ms receiver, {messages:,} messages")
    with processes.running(process):
        process.wait(timeout=120 + messages * SLEEP_MS / 1000 / threads * 3)  # a guard against hangs
    value, cpu = measured(name, process.result(), messages)
    say(f"concurrency: CONCURRENCY={threads}: {value:,.0f} msgs/s, {cpu:.1f} µs CPU/msg")
    return ConcurrencyRun(threads, messages, value, cpu)


def _backlog_run(context: Context) -> BacklogRun:
    """Produce the backlog, then let one process work through it for the run's seconds, reading its RSS."""
    settings = context.settings
    threads, backlog = settings.concurrency_threads, settings.concurrency_backlog
    max_messages = backlog - (topic_size(0, settings.payload_bytes))
    if max_messages < 2 * RSS_SAMPLES:
        raise BenchmarkError(
            f"concurrency: a backlog of {backlog:,} messages of {settings.payload_bytes} bytes leaves too few beyond "
            "1.5 times librdkafka's prefetch buffer; give a larger --concurrency-backlog"
        )
    topic = context.cluster.new_topic("concurrency-backlog", settings.partitions)
    say(f"concurrency: producing a backlog of {backlog:,} messages to {topic}")
    seconds = produce_bulk(context.bootstrap, topic, backlog, settings.payload_bytes, settings.partitions)
    say(
        f"concurrency: produced in {seconds:.1f}s; CONCURRENCY={threads}, {BACKLOG_SLEEP_MS:g} ms receiver, "
        f"for {settings.concurrency_backlog_seconds:g}s or {max_messages:,} messages"
    )
    process = processes.consume_events(
        "concurrency-backlog",
        context.workdir,
        bootstrap=context.bootstrap,
        topic=topic,
        group=context.cluster.new_group("concurrency-backlog"),
        receiver="sleep",
        recorder=RecorderOptions(rss_at=rss_counts(max_messages), locked=True),
        args=["--max-messages", str(max_messages)],
        env={"BENCH_SLEEP_MS": str(BACKLOG_SLEEP_MS), "BENCH_CONCURRENCY": str(threads)},
    )
    with processes.running(process):
        processes.wait_until(process.started, 90, "the backlog run's first message", [process])
        deadline = time.monotonic() + settings.concurrency_backlog_seconds
        while time.monotonic() < deadline and not process.exited():
            time.sleep(0.1)
        process.terminate()
        process.wait(60)
    result = backlog_result(threads, backlog, process.result())
    first, last = result.windows()
    say(
        f"concurrency: backlog: {result.handled:,} messages at {result.rate:,.0f} msgs/s; peak RSS "
        f"{result.peak(first) / 1e6:.1f} MB -> {result.peak(last) / 1e6:.1f} MB"
    )
    return result


def backlog_result(threads: int, backlog: int, recorded: dict[str, Any]) -> BacklogRun:
    """The backlog run's figures from what its recorder wrote at exit."""
    first_ns = recorded["first_ns"]
    result = BacklogRun(threads, BACKLOG_SLEEP_MS, backlog)
    result.rss_bytes = {int(count): value for count, value in recorded["rss"].items()}
    result.seconds = {int(count): (value - first_ns) / 1e9 for count, value in recorded["rss_ns"].items()}
    result.handled = recorded["count"]
    result.rate = rate(recorded["count"], first_ns, recorded["last_ns"])
    return result
