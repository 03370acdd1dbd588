"""A topic deleted while consume_events runs: readiness fails at once, and the process exits 1 with one line."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient

from kafka_consumer_app.testing.broker import free_port

from .kafka_utils import wait_for
from .test_health_http import answered

pytestmark = pytest.mark.broker

#: A generous bound for the documented ~20 s (a check every 10 s, confirmed 5 s later), on a noisy machine.
EXIT_WITHIN_SECONDS = 60


def test_a_topic_deleted_while_consuming_fails_readiness_then_exits_1_with_one_line(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic()
    port = free_port()
    process = consumers.start(
        servers, topic, tmp_path / "records.txt", group=group_id, env={"KAFKA_HEALTH_PORT": str(port)}
    )
    wait_for(lambda: answered(port, "/readyz", 200), 60, "/readyz to turn 200")

    admin = AdminClient({"bootstrap.servers": servers})  # kept alive until the deletion is confirmed
    admin.delete_topics([topic])[topic].result(timeout=30)
    deleted_at = time.monotonic()
    _status, body = wait_for(lambda: answered(port, "/readyz", 503), 30, "/readyz to turn 503 after the deletion")
    code = process.wait(EXIT_WITHIN_SECONDS)
    elapsed = time.monotonic() - deleted_at
    output = process.output()

    print(f"deleted topic: exit {code} {elapsed:.1f}s after the deletion")
    assert body == f"not ready: topic {topic!r} was deleted (Kafka says it does not exist); the consumer exits\n"
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.startswith("CommandError:")]
    assert lines == [
        f"CommandError: topic {topic!r} was deleted from {servers} while group {group_id} consumed it; "
        "recreate the topic (or remove this consumer), then restart"
    ], output
    assert "Traceback" not in output
