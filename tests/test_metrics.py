"""
What the loop reports about itself: Prometheus metrics on /metrics, APM traces, and log lines.

The metrics are read the way Prometheus reads them: scraped from a running ``consume_events``
process over HTTP and parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from contextlib import contextmanager

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from django.core.management import call_command
from edx_django_utils.monitoring import TelemetryBackend
from prometheus_client.parser import text_string_to_metric_families

from kafka_consumer_app import composition
from kafka_consumer_app.engine.stats import partition_lags, total_lag
from kafka_consumer_app.observers.metrics import ConsumerMetrics
from kafka_consumer_app.observers.monitoring import Monitoring, monitoring_configured
from kafka_consumer_app.settings.topics import get_topic_config
from kafka_consumer_app.signals import topic_signal
from kafka_consumer_app.testing.broker import free_port

from .kafka_utils import committed, read_records, wait_for

RECEIVER = "tests.testapp.kafka_handlers.on_topic_message"


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics on ``port``, keyed by (sample name, labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict, name: str, **labels: str) -> float | None:
    """The value of one sample, or None when it is not exposed."""
    return samples.get((name, frozenset(labels.items())))


def produce_at(servers: str, topic: str, values: list[dict], partition: int = 0) -> list[int]:
    """Produce JSON ``values`` to ``partition`` with timestamps one second apart, from a minute ago; return them."""
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True})
    start_ms = int(time.time() * 1000) - 60_000
    stamps = [start_ms + 1000 * index for index in range(len(values))]
    for value, stamp in zip(values, stamps, strict=True):
        producer.produce(topic, json.dumps(value).encode(), partition=partition, timestamp=stamp)
    assert producer.flush(30) == 0
    return stamps


# -- /metrics of a running consumer ------------------------------------------------------------


@pytest.mark.broker
def test_metric_values_match_handled_retried_and_dead_lettered_messages(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt", 1)
    record = tmp_path / "records.txt"
    stamps = produce_at(servers, topic, [{"id": 0}, {"id": 1}, {"id": 2}, {"id": 3, "fail": True}])
    port = free_port()
    env = {
        "KAFKA_HEALTH_PORT": str(port),
        "KAFKA_FAILURE_POLICY": "dead-letter",
        "KAFKA_RETRY_ATTEMPTS": "2",
        "KAFKA_RETRY_BACKOFF": "0.2",
    }
    process = consumers.start(servers, topic, record, group=group_id, env=env)

    def parked() -> dict | None:
        try:
            samples = scrape(port)
        except OSError:
            return None
        return (
            samples if sample(samples, "kafka_consumer_messages_total", topic=topic, outcome="dead_lettered") else None
        )

    samples = wait_for(parked, 60, "the failing message to be dead-lettered")

    def messages(outcome: str) -> float | None:
        return sample(samples, "kafka_consumer_messages_total", topic=topic, outcome=outcome)

    assert [messages(o) for o in ("handled", "retried", "dead_lettered", "skipped", "failed")] == [3, 1, 1, 0, 0]
    # Three receiver calls that returned, two that raised (the first attempt and the retry).
    assert sample(samples, "kafka_consumer_handler_duration_seconds_count", topic=topic, receiver=RECEIVER) == 5
    assert sample(samples, "kafka_consumer_handler_duration_seconds_sum", topic=topic, receiver=RECEIVER) > 0
    # The last message processed is the dead-lettered one, produced at stamps[3].
    assert sample(samples, "kafka_consumer_last_message_timestamp_seconds", topic=topic) == stamps[3] / 1000
    rebalances = [
        sample(samples, "kafka_consumer_rebalances_total", topic=topic, kind=k) for k in ("assigned", "revoked", "lost")
    ]
    assert rebalances == [1, 0, 0]
    assert sample(samples, "kafka_consumer_commit_failures_total", topic=topic) == 0
    assert sample(samples, "process_resident_memory_bytes") > 0
    assert sorted(r.id for r in read_records(record)) == [0, 1, 2]
    process.send()
    assert process.wait(30) == 0, process.output()


@pytest.mark.broker
def test_the_lag_gauge_is_produced_minus_committed_per_partition_and_the_progress_line_reports_it(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=2)
    # Partition 0: four messages, all handled. Partition 1: two handled, then one whose retry waits five
    # minutes (its partition paused), then three more behind it: 6 produced, 2 consumed, a lag of 4.
    produce_at(servers, topic, [{"id": n} for n in range(4)], partition=0)
    produce_at(
        servers, topic, [{"id": 10}, {"id": 11}, {"id": 12, "fail": True}, {"id": 13}, {"id": 14}, {"id": 15}], 1
    )
    port = free_port()
    env = {
        "KAFKA_HEALTH_PORT": str(port),
        "KAFKA_RETRY_ATTEMPTS": "2",
        "KAFKA_RETRY_BACKOFF": "300",
        "KAFKA_RETRY_MAX_BACKOFF": "300",
        "KAFKA_PROGRESS_INTERVAL": "1",
        "KAFKA_CONSUMER_CONFIG": json.dumps({"statistics.interval.ms": 500, "auto.commit.interval.ms": 500}),
    }
    process = consumers.start(servers, topic, tmp_path / "records.txt", group=group_id, env=env)

    def lags() -> dict[str, float] | None:
        try:
            samples = scrape(port)
        except OSError:
            return None
        found = {
            dict(labels)["partition"]: value
            for (name, labels), value in samples.items()
            if name == "kafka_consumer_lag"
        }
        return found if found == {"0": 0, "1": 4} else None

    wait_for(lags, 60, "kafka_consumer_lag of 0 on partition 0 and 4 on partition 1")

    # The same figures measured independently: the broker's high watermarks minus the group's commits.
    offsets = committed(servers, group_id, topic, 2)
    reader = Consumer({"bootstrap.servers": servers, "group.id": f"{group_id}-watermarks"})
    try:
        highs = {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1)}
    finally:
        reader.close()
    assert {p: highs[p] - offsets[p] for p in (0, 1)} == {0: 0, 1: 4}
    line = wait_for(
        lambda: next((ln for ln in process.output().splitlines() if "total lag 4." in ln), None),
        30,
        "a progress line with the total lag",
    )
    assert "(6 handled, 0 dead-lettered, 0 skipped, 1 retries)" in line
    process.send()
    assert process.wait(30) == 0, process.output()


# -- the metrics hook and the statistics it reads ----------------------------------------------


def test_each_consumer_has_its_own_registry_so_two_never_collide():
    first, second = ConsumerMetrics("orders"), ConsumerMetrics("orders")

    first.messages.labels("orders", "handled").inc()

    assert first.registry is not second.registry
    assert (
        first.registry.get_sample_value("kafka_consumer_messages_total", {"topic": "orders", "outcome": "handled"}) == 1
    )
    assert (
        second.registry.get_sample_value("kafka_consumer_messages_total", {"topic": "orders", "outcome": "handled"})
        == 0
    )


STATS = {
    "topics": {
        "orders": {
            "partitions": {
                "-1": {"consumer_lag": -1, "fetch_state": "none"},
                "0": {"consumer_lag": 5, "fetch_state": "active"},
                "1": {"consumer_lag": -1, "fetch_state": "active"},
                "2": {"consumer_lag": 7, "fetch_state": "stopped"},
                "3": {"consumer_lag": 2, "fetch_state": "offset-query"},
            }
        }
    }
}


def test_partition_lags_leave_out_the_internal_partition_unknown_lags_and_partitions_not_fetched():
    assert partition_lags(STATS, "orders") == {0: 5, 3: 2}
    assert total_lag(STATS, "orders") == 7
    assert total_lag(STATS, "other") is None and total_lag(None, "orders") is None


def test_the_lag_gauge_follows_the_statistics_and_drops_revoked_partitions():
    metrics = ConsumerMetrics("orders")

    def lag(partition: str) -> float | None:
        return metrics.registry.get_sample_value("kafka_consumer_lag", {"topic": "orders", "partition": partition})

    metrics.after_stats(None, STATS)
    assert (lag("0"), lag("3"), lag("1"), lag("2"), lag("-1")) == (5, 2, None, None, None)
    metrics.after_revoke(None, [3], False)
    assert lag("3") is None
    metrics.after_stats(
        None, {"topics": {"orders": {"partitions": {"0": {"consumer_lag": 1, "fetch_state": "active"}}}}}
    )
    assert (lag("0"), lag("3")) == (1, None)


# -- APM monitoring through edx-django-utils ---------------------------------------------------


class RecordingBackend(TelemetryBackend):
    """An edx-django-utils telemetry backend (named in OPENEDX_TELEMETRY) that records spans and attributes."""

    #: Every span opened, in order; the spans open now, innermost last; attributes set outside any span.
    spans: list[dict] = []
    open: list[dict] = []
    outside: dict = {}

    def set_attribute(self, key, value):
        """Record the attribute on the innermost open span, or as set outside of any."""
        target = self.open[-1]["attributes"] if self.open else self.outside
        target[key] = value

    def record_exception(self):
        """Not used by the app."""

    def tag_root_span_with_error(self, exception):
        """Not used by the app."""

    def set_local_root_span_name(self, name, group=None, priority=None):
        """Not used by the app."""

    @contextmanager
    def create_span(self, name, operation_name=None):
        """Open a span named ``name``."""
        span = {"name": name, "attributes": {}}
        self.spans.append(span)
        self.open.append(span)
        try:
            yield span
        finally:
            self.open.pop()


@pytest.fixture
def recording_backend(settings):
    """Make RecordingBackend edx-django-utils' only backend (its cache is reset when settings change)."""
    RecordingBackend.spans, RecordingBackend.open, RecordingBackend.outside = [], [], {}
    settings.OPENEDX_TELEMETRY = [f"{__name__}.RecordingBackend"]
    return RecordingBackend


@pytest.mark.broker
@pytest.mark.django_db
def test_each_message_is_traced_with_its_coordinates_event_type_and_id(kafka_settings, make_topic, recording_backend):
    topic = make_topic()
    producer = Producer({"bootstrap.servers": kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]})
    headers = [("ce_type", b"org.openedx.learning.course.enrollment.created.v1"), ("ce_id", b"7c1c-42")]
    producer.produce(topic, b'{"n": 0}', partition=0, headers=headers)
    producer.produce(topic, b'{"n": 1}', partition=0)
    assert producer.flush(30) == 0
    inside: list[bool] = []

    def receiver(sender, message, **kwargs):
        inside.append(bool(recording_backend.open))

    topic_signal(topic).connect(receiver, weak=False)
    try:
        call_command("consume_events", topic=topic, max_messages=2)
    finally:
        topic_signal(topic).disconnect(receiver)

    assert inside == [True, True], "receivers must run inside the trace"
    assert [span["name"] for span in recording_backend.spans] == ["kafka_consumer_app.dispatch"] * 2
    assert [span["attributes"] for span in recording_backend.spans] == [
        {
            "kafka_topic": topic,
            "kafka_partition": 0,
            "kafka_offset": 0,
            "kafka_event_type": "org.openedx.learning.course.enrollment.created.v1",
            "kafka_message_id": "7c1c-42",
        },
        {"kafka_topic": topic, "kafka_partition": 0, "kafka_offset": 1},
    ]
    assert recording_backend.outside == {}


def test_monitoring_is_installed_only_when_edx_django_utils_has_a_backend(settings):
    settings.OPENEDX_TELEMETRY = []
    assert not monitoring_configured()
    assert not any(isinstance(hook, Monitoring) for hook in composition.hooks_for(get_topic_config("orders")))

    settings.OPENEDX_TELEMETRY = ["edx_django_utils.monitoring.DatadogBackend"]
    assert monitoring_configured()
    assert any(isinstance(hook, Monitoring) for hook in composition.hooks_for(get_topic_config("orders")))


# -- log lines ---------------------------------------------------------------------------------


@pytest.fixture
def app_log_level():
    """consume_events -v 2 sets the app's logger to DEBUG; put it back afterwards."""
    app_logger = logging.getLogger("kafka_consumer_app")
    level = app_logger.level
    yield
    app_logger.setLevel(level)


@pytest.mark.broker
@pytest.mark.django_db
def test_a_debug_line_per_message_names_its_coordinates_event_outcome_and_duration_never_its_payload(
    kafka_settings, make_topic, caplog, app_log_level
):
    topic = make_topic()
    producer = Producer({"bootstrap.servers": kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]})
    producer.produce(
        topic,
        b'{"email": "ada@example.com"}',
        key=b"user-ada-1815",
        partition=0,
        headers=[("ce_type", b"user.created")],
    )
    producer.produce(topic, b'{"email": "grace@example.com"}', key=b"user-grace-1906", partition=0)
    assert producer.flush(30) == 0
    topic_signal(topic).connect(lambda sender, message, **kwargs: None, weak=False, dispatch_uid=f"{topic}-noop")
    caplog.set_level(logging.DEBUG, logger="kafka_consumer_app")
    try:
        call_command("consume_events", topic=topic, max_messages=2, verbosity=2)
    finally:
        topic_signal(topic).disconnect(dispatch_uid=f"{topic}-noop")

    lines = [r.getMessage() for r in caplog.records if r.name == "kafka_consumer_app.messages"]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"Message {topic}[0]@0 (event user.created): handled in ")
    assert lines[1].startswith(f"Message {topic}[0]@1 (no event type): handled in ")
    assert all(line.endswith(" ms.") for line in lines)
    everything = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in ("ada@example.com", "grace@example.com", "user-ada-1815", "user-grace-1906"):
        assert secret not in everything
