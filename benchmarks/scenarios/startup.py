"""
Startup: time from spawning ``consume_events`` to its first handled message.

The topic already holds messages; each run is a new process in a new group with
``--max-messages 1``. The orchestrator reads ``time.monotonic_ns()`` just before the spawn;
the receiver module reads it when Django imports it (during ``django.setup()``) and the
recorder when the first message was handled. ``CLOCK_MONOTONIC`` is one clock for every process
of the machine, so the differences are meaningful: total, "Python and Django setup" (spawn to
receivers imported) and "Kafka" (the command, connecting, joining the group, the first fetch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks import processes
from benchmarks.cluster import produce_bulk
from benchmarks.context import Context
from benchmarks.progress import say
from benchmarks.recorder import RecorderOptions
from benchmarks.stats import Summary

#: Messages per partition waiting on the startup topic.
MESSAGES_PER_PARTITION = 10


@dataclass
class StartupResult:
    """Seconds of every run, split into its two phases."""

    total_s: list[float] = field(default_factory=list)
    django_s: list[float] = field(default_factory=list)
    kafka_s: list[float] = field(default_factory=list)

    def summary(self, phase: str) -> Summary:
        """Median, minimum and maximum of ``total_s``, ``django_s`` or ``kafka_s``."""
        return Summary.of(getattr(self, phase))


def run(context: Context) -> StartupResult:
    """``repetitions`` cold starts of ``consume_events``, one after the other."""
    settings = context.settings
    topic = context.cluster.new_topic("startup", settings.partitions)
    produce_bulk(
        context.bootstrap,
        topic,
        settings.partitions * MESSAGES_PER_PARTITION,
        settings.payload_bytes,
        settings.partitions,
    )
    result = StartupResult()
    for index in range(1, settings.repetitions + 1):
        process = processes.consume_events(
            f"startup-{index}",
            context.workdir,
            bootstrap=context.bootstrap,
            topic=topic,
            group=context.cluster.new_group("startup"),
            receiver="noop",
            recorder=RecorderOptions(expected=1),
            args=["--max-messages", "1"],
        )
        with processes.running(process):
            process.wait(timeout=90)
        recorded = process.result()
        total = (recorded["first_ns"] - process.spawn_ns) / 1e9
        django = (recorded["created_ns"] - process.spawn_ns) / 1e9
        result.total_s.append(total)
        result.django_s.append(django)
        result.kafka_s.append(total - django)
        say(f"startup: run {index}/{settings.repetitions}: {total:.2f}s (Python and Django {django:.2f}s)")
    return result
