"""
Latency: messages produced at a fixed rate, each stamped with its send time, into a running consumer.

``consume_events`` starts first, in a new group; unmeasured warm-up messages go out every
100 ms until it handled one (so group join and the first fetch are behind it). Then
``latency_messages`` messages go out at ``latency_rate`` per second, each with
``time.time_ns()`` in its ``bench-sent-ns`` header, read just before ``produce()``. The
receiver subtracts it from ``time.time_ns()`` on entry: the figure spans the producer client,
the broker, the consumer's fetch, and the app's deserialization and dispatch.

The topic stamps messages with the broker's append time (``LogAppendTime``), so the receiver
also records the part from the broker's append to the receiver: the consumer's share, with
the millisecond resolution of Kafka timestamps. The rest is the producer and the broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks import processes
from benchmarks.cluster import BenchmarkError, latency_producer, produce_paced, warm_up
from benchmarks.context import Context
from benchmarks.progress import say
from benchmarks.recorder import RecorderOptions
from benchmarks.stats import percentile


@dataclass
class LatencyResult:
    """Produce-to-receiver latencies of one run, in milliseconds."""

    messages: int
    target_rate: int
    achieved_rate: float
    warmups: int
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    from_broker_ms: list[float] = field(default_factory=list, repr=False)

    def percentile(self, fraction: float) -> float:
        """The produce-to-receiver latency (ms) that ``fraction`` of the messages did not exceed."""
        return percentile(self.latencies_ms, fraction)

    def from_broker_percentile(self, fraction: float) -> float:
        """The broker-append-to-receiver latency (ms) that ``fraction`` of the messages did not exceed."""
        return percentile(self.from_broker_ms, fraction)


def run(context: Context) -> LatencyResult:
    """One consumer, warm-up, then the paced messages; stop the consumer once it handled them all."""
    settings = context.settings
    topic = context.cluster.new_topic("latency", settings.partitions, {"message.timestamp.type": "LogAppendTime"})
    producer = latency_producer(context.bootstrap)
    process = processes.consume_events(
        "latency",
        context.workdir,
        bootstrap=context.bootstrap,
        topic=topic,
        group=context.cluster.new_group("latency"),
        receiver="latency",
        recorder=RecorderOptions(expected=settings.latency_messages),
    )
    with processes.running(process):
        warmups = warm_up(
            producer,
            topic,
            settings.partitions,
            settings.payload_bytes,
            ready=lambda: process.started() or process.exited(),
            timeout=60,
        )
        if process.exited():
            process.wait(0)
        say(f"latency: consumer ready after {warmups} warm-up messages; producing at {settings.latency_rate}/s")
        achieved = produce_paced(
            producer,
            topic,
            settings.latency_messages,
            settings.latency_rate,
            settings.partitions,
            settings.payload_bytes,
        )
        processes.wait_until(process.has_result, 60, "the latency consumer to handle every message", [process])
        process.terminate()
        process.wait(30)
    recorded = process.result()
    if len(recorded["latencies_ns"]) != settings.latency_messages:
        raise BenchmarkError(
            f"latency: {len(recorded['latencies_ns'])} latencies, expected {settings.latency_messages}"
        )
    latencies = [value / 1e6 for value in recorded["latencies_ns"]]
    from_broker = [value / 1e6 for value in recorded["from_broker_ns"]]
    say(f"latency: produced at {achieved:,.0f}/s, p99 {percentile(latencies, 0.99):.1f} ms")
    return LatencyResult(settings.latency_messages, settings.latency_rate, achieved, warmups, latencies, from_broker)
