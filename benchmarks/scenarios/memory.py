"""
Memory: the RSS of one ``consume_events`` process (no-op receiver) as it consumes a large topic.

The receiver's recorder reads the process's own RSS (``psutil``) when it has handled exactly
the checkpoint counts, and at 20 evenly spaced counts for the plot. The growth between the
first and the last checkpoint is what a leak per message would show.

librdkafka prefetches up to ``queued.max.messages.kbytes`` (64 MiB by default) of messages
ahead of the application, and that buffer is a large part of the RSS. So that it is full at
every checkpoint, as in a consumer with a backlog, the topic holds more messages than the last
checkpoint (:func:`topic_size`) and the process stops at the last checkpoint with
``--max-messages``; otherwise the last reading would come after the buffer drained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks import processes
from benchmarks.cluster import BenchmarkError, produce_bulk
from benchmarks.context import Context
from benchmarks.progress import say
from benchmarks.recorder import RecorderOptions
from benchmarks.stats import rate

#: Extra RSS samples for the plot, evenly spaced up to the last checkpoint.
PLOT_SAMPLES = 20
#: librdkafka's default prefetch limit, ``queued.max.messages.kbytes`` = 65536.
PREFETCH_BYTES = 65_536 * 1024


@dataclass
class MemoryResult:
    """RSS in bytes by number of messages handled."""

    checkpoints: tuple[int, ...]
    rss_bytes: dict[int, int] = field(default_factory=dict)
    #: Messages per second of the whole run, for information.
    rate: float = 0.0

    @property
    def first(self) -> int:
        """RSS at the first checkpoint."""
        return self.rss_bytes[self.checkpoints[0]]

    @property
    def last(self) -> int:
        """RSS at the last checkpoint."""
        return self.rss_bytes[self.checkpoints[-1]]

    @property
    def growth(self) -> int:
        """RSS at the last checkpoint minus RSS at the first."""
        return self.last - self.first


def topic_size(last_checkpoint: int, payload_bytes: int) -> int:
    """Messages to produce: past the last checkpoint, 1.5 times what fills librdkafka's prefetch buffer."""
    return last_checkpoint + -(-PREFETCH_BYTES * 3 // (2 * payload_bytes))


def run(context: Context) -> MemoryResult:
    """Produce the topic, consume it up to the last checkpoint in one process, read back the RSS samples."""
    settings = context.settings
    checkpoints = tuple(sorted(settings.memory_checkpoints))
    total = checkpoints[-1]
    size = topic_size(total, settings.payload_bytes)
    topic = context.cluster.new_topic("memory", settings.partitions)
    say(f"memory: producing {size:,} messages to {topic} (a backlog remains at {total:,})")
    seconds = produce_bulk(context.bootstrap, topic, size, settings.payload_bytes, settings.partitions)
    say(f"memory: produced in {seconds:.1f}s; consuming {total:,} with one no-op consume_events process")
    samples = {1, *checkpoints, *(total * step // PLOT_SAMPLES for step in range(1, PLOT_SAMPLES + 1))}
    process = processes.consume_events(
        "memory",
        context.workdir,
        bootstrap=context.bootstrap,
        topic=topic,
        group=context.cluster.new_group("memory"),
        receiver="noop",
        recorder=RecorderOptions(expected=total, rss_at=frozenset(samples)),
        args=["--max-messages", str(total)],
    )
    with processes.running(process):
        process.wait(timeout=120 + total / 200)
    recorded = process.result()
    rss = {int(count): value for count, value in recorded["rss"].items()}
    missing = [count for count in checkpoints if count not in rss]
    if missing:
        raise BenchmarkError(f"memory: no RSS sample at {missing}; the process handled {recorded['count']}")
    result = MemoryResult(checkpoints, rss, rate(recorded["count"], recorded["first_ns"], recorded["last_ns"]))
    say(f"memory: RSS {result.first / 1e6:.1f} MB -> {result.last / 1e6:.1f} MB")
    return result
