"""
Prometheus metrics of the consume loop, served on ``/metrics`` by the health server.

:class:`ConsumerMetrics` is a hook that keeps its metrics in its own
:class:`~prometheus_client.CollectorRegistry` (never the process-wide default one), so that
several consumers in one process, as in the tests, never collide. Every metric is labelled
with the Kafka topic (``TOPIC_PREFIX`` included) and named ``kafka_consumer_*``:

``kafka_consumer_messages_total{topic, outcome}``
    Message attempts by outcome: handled, retried, dead_lettered, skipped, failed.
``kafka_consumer_handler_duration_seconds{topic, receiver}``
    Run time of each receiver call (histogram), whether it returned or raised.
``kafka_consumer_lag{topic, partition}``
    librdkafka's ``consumer_lag`` of each partition this consumer fetches: the partition's
    high watermark minus the group's committed offset. Updated every ``statistics.interval.ms``.
``kafka_consumer_last_message_timestamp_seconds{topic}``
    The Kafka timestamp of the last message processed (handled, dead-lettered or skipped).
``kafka_consumer_rebalances_total{topic, kind}``
    Rebalance callbacks: assigned, revoked, lost.
``kafka_consumer_commit_failures_total{topic}``
    Synchronous commits (on revoke and shutdown) that failed.
``kafka_consumer_database_outage{topic}`` and ``kafka_consumer_database_outage_seconds_total{topic}``
    1 while the consumer waits for an unavailable database, else 0; and the seconds it waited in all.

With ``CONCURRENCY`` above 1, about once a second:

``kafka_consumer_in_flight{topic}``
    Messages in a receiver now.
``kafka_consumer_queued{topic, partition}``
    Messages of the partition taken in and not finished: queued, running or waiting for a retry.
``kafka_consumer_watermark_behind{topic, partition}``
    How far the committed watermark is behind the highest finished offset of the partition.
``kafka_consumer_worker_threads{topic}`` and ``kafka_consumer_worker_busy_seconds_total{topic}``
    The worker threads, and the seconds they spent in receivers: ``rate(busy) / threads`` is their utilisation.

The process collector adds the usual ``process_*`` series (memory, CPU, open files).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from kafka_consumer_app.engine.hooks import (
    DEAD_LETTERED,
    HANDLED,
    OUTCOMES,
    SKIPPED,
    ConsumerHooks,
    OutageState,
    WorkersState,
)
from kafka_consumer_app.engine.stats import partition_lags

if TYPE_CHECKING:
    from confluent_kafka import KafkaError
    from confluent_kafka import Message as KafkaMessage

    from kafka_consumer_app.engine.hooks import ConsumerView


#: The ``kind`` label values of ``kafka_consumer_rebalances_total``.
REBALANCE_KINDS = ("assigned", "revoked", "lost")
#: Outcomes after which a message's offset is stored: it counts as processed.
PROCESSED = frozenset({HANDLED, DEAD_LETTERED, SKIPPED})
#: Histogram buckets of receiver run time, in seconds: Prometheus' defaults plus the minutes a slow receiver may take.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: librdkafka's timestamp type when the message has none.
_TIMESTAMP_NOT_AVAILABLE = 0


class ConsumerMetrics(ConsumerHooks):
    """Counts, times and gauges what the loop does, for one topic, in :attr:`registry`."""

    wants_statistics = True

    def __init__(self, topic: str, registry: CollectorRegistry | None = None) -> None:
        self.topic = topic
        self.registry = registry if registry is not None else CollectorRegistry()
        self.messages = Counter(
            "kafka_consumer_messages",
            "Message attempts by outcome: handled, retried, dead_lettered, skipped, failed.",
            ["topic", "outcome"],
            registry=self.registry,
        )
        self.handler_duration = Histogram(
            "kafka_consumer_handler_duration_seconds",
            "Run time of each receiver call, whether it returned or raised.",
            ["topic", "receiver"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.lag = Gauge(
            "kafka_consumer_lag",
            "Messages between each fetched partition's high watermark and the group's committed offset.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.last_message_timestamp = Gauge(
            "kafka_consumer_last_message_timestamp_seconds",
            "Kafka timestamp of the last message processed (handled, dead-lettered or skipped), in Unix seconds.",
            ["topic"],
            registry=self.registry,
        )
        self.rebalances = Counter(
            "kafka_consumer_rebalances",
            "Rebalance callbacks of this consumer, by kind: assigned, revoked, lost.",
            ["topic", "kind"],
            registry=self.registry,
        )
        self.commit_failures = Counter(
            "kafka_consumer_commit_failures",
            "Synchronous offset commits (on revoke and shutdown) that failed.",
            ["topic"],
            registry=self.registry,
        )
        self._register_worker_metrics()
        ProcessCollector(registry=self.registry)
        # Series that exist from the start read 0 rather than missing, so rate() and alerts work at once.
        # The children are resolved once: labels() takes a lock and a lookup, on every message otherwise.
        self._messages = {outcome: self.messages.labels(topic, outcome) for outcome in OUTCOMES}
        self._rebalances = {kind: self.rebalances.labels(topic, kind) for kind in REBALANCE_KINDS}
        self._commit_failures = self.commit_failures.labels(topic)
        self._last_message_timestamp = self.last_message_timestamp.labels(topic)
        self._durations: dict[str, Any] = {}
        self._lag_partitions: set[int] = set()

    def _register_worker_metrics(self) -> None:
        """The metrics of the worker threads (CONCURRENCY above 1), set by ``after_workers``; then the outage ones."""
        self._busy_seconds = 0.0
        self._worker_partitions: set[int] = set()
        self.in_flight = Gauge(
            "kafka_consumer_in_flight", "Messages in a receiver now.", ["topic"], registry=self.registry
        )
        self.queued = Gauge(
            "kafka_consumer_queued",
            "Messages of the partition taken in and not finished: queued, running or waiting for a retry.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.watermark_behind = Gauge(
            "kafka_consumer_watermark_behind",
            "How far the committed watermark is behind the highest finished offset of the partition.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.worker_threads = Gauge(
            "kafka_consumer_worker_threads", "Worker threads (CONCURRENCY).", ["topic"], registry=self.registry
        )
        self.worker_busy = Counter(
            "kafka_consumer_worker_busy_seconds",
            "Seconds the worker threads spent in receivers, all threads together.",
            ["topic"],
            registry=self.registry,
        )
        self._register_outage_metrics()

    def _register_outage_metrics(self) -> None:
        """The database outage gauge and seconds, set by ``after_database_outage``; 0 from the start."""
        self.database_outage = Gauge(
            "kafka_consumer_database_outage",
            "1 while the consumer waits for an unavailable database, else 0.",
            ["topic"],
            registry=self.registry,
        )
        self.database_outage_seconds = Counter(
            "kafka_consumer_database_outage_seconds",
            "Seconds the consumer waited for an unavailable database, all outages together.",
            ["topic"],
            registry=self.registry,
        )
        self._database_outage = self.database_outage.labels(self.topic)
        self._database_outage.set(0)
        self._database_outage_seconds = self.database_outage_seconds.labels(self.topic)
        self._outage_seconds = 0.0

    def after_database_outage(self, consumer: ConsumerView, outage: OutageState) -> None:
        """Set the outage gauge; add the seconds since the outage's last report to the counter."""
        self._database_outage.set(1 if outage.down else 0)
        self._database_outage_seconds.inc(max(0.0, outage.seconds - self._outage_seconds))
        self._outage_seconds = outage.seconds if outage.down else 0.0

    def after_receiver(self, consumer: ConsumerView, receiver: str, seconds: float, error: Exception | None) -> None:
        """Time the receiver call."""
        histogram = self._durations.get(receiver)
        if histogram is None:
            histogram = self._durations[receiver] = self.handler_duration.labels(self.topic, receiver)
        histogram.observe(seconds)

    def after_message(self, consumer: ConsumerView, raw: KafkaMessage, outcome: str) -> None:
        """Count the attempt; remember the timestamp of a processed message."""
        self._messages[outcome].inc()
        if outcome in PROCESSED:
            kind, milliseconds = raw.timestamp()
            if kind != _TIMESTAMP_NOT_AVAILABLE:
                self._last_message_timestamp.set(milliseconds / 1000)

    def after_assign(self, consumer: ConsumerView, partitions: Sequence[int]) -> None:
        """Count the assignment."""
        self._rebalances["assigned"].inc()

    def after_revoke(self, consumer: ConsumerView, partitions: Sequence[int], lost: bool) -> None:
        """Count the revocation; drop the lag of partitions that now belong to another member."""
        self._rebalances["lost" if lost else "revoked"].inc()
        for partition in partitions:
            self._forget_lag(partition)

    def after_stats(self, consumer: ConsumerView, stats: dict[str, Any]) -> None:
        """Set the lag of every partition this consumer fetches; drop the others."""
        lags = partition_lags(stats, self.topic)
        for partition in self._lag_partitions - set(lags):
            self._forget_lag(partition)
        for partition, lag in lags.items():
            self.lag.labels(self.topic, str(partition)).set(lag)
        self._lag_partitions = set(lags)

    def after_commit_failed(self, consumer: ConsumerView, error: KafkaError | Exception) -> None:
        """Count the failed commit."""
        self._commit_failures.inc()

    def after_workers(self, consumer: ConsumerView, state: WorkersState) -> None:
        """Set the workers' gauges; drop the partitions' series that are no longer queued or behind."""
        self.in_flight.labels(self.topic).set(state.in_flight)
        self.worker_threads.labels(self.topic).set(state.threads)
        self.worker_busy.labels(self.topic).inc(max(0.0, state.busy_seconds - self._busy_seconds))
        self._busy_seconds = state.busy_seconds
        partitions = set(state.queued) | set(state.behind)
        for partition in self._worker_partitions - partitions:
            self.queued.remove(self.topic, str(partition))
            self.watermark_behind.remove(self.topic, str(partition))
        for partition in partitions:
            self.queued.labels(self.topic, str(partition)).set(state.queued.get(partition, 0))
            self.watermark_behind.labels(self.topic, str(partition)).set(state.behind.get(partition, 0))
        self._worker_partitions = partitions

    def _forget_lag(self, partition: int) -> None:
        if partition in self._lag_partitions:
            self.lag.remove(self.topic, str(partition))
            self._lag_partitions.discard(partition)
