"""
The README's exit-code table, against a real broker: the codes that no other test file shows.

Codes 0, 1, 2, 3 and 5 are shown where their causes are tested (test_command_errors.py,
test_delivery.py, test_failures.py, test_shutdown.py); this file covers a fatal Kafka client
error (4) and a second SIGINT (130).
"""

from __future__ import annotations

import signal

import pytest

from kafka_consumer_app.exceptions import EXIT_KAFKA

from .kafka_utils import SHORT_SESSION, committed, finished, produce, read_records, settings_env, wait_for

pytestmark = pytest.mark.broker


def stderr_lines(output: str) -> list[str]:
    """The lines of a process's output that are not log records (which start with a date)."""
    return [line for line in output.splitlines() if line.strip() and not line[:4].isdigit()]


def test_a_member_fenced_by_another_with_its_static_instance_id_exits_4_with_one_line(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=1)
    record = tmp_path / "records.txt"
    # Static membership: a second member with the same group.instance.id replaces the first, whose next
    # request is answered FENCED_INSTANCE_ID, a fatal error that librdkafka cannot recover from.
    env = settings_env(tmp_path, CONSUMER_CONFIG={**SHORT_SESSION, "group.instance.id": f"{group_id}-pod-0"})
    first = consumers.start(servers, topic, record, "--allow-no-handlers", group=group_id, env=env)
    wait_for(lambda: "Assigned partitions [0]" in first.output(), timeout=60, what="the first member's assignment")

    second = consumers.start(servers, topic, record, "--allow-no-handlers", group=group_id, env=env)
    code = first.wait(60)

    assert code == EXIT_KAFKA, first.output()
    lines = stderr_lines(first.output())
    assert len(lines) == 1 and "fatal Kafka error" in lines[0], first.output()
    second.send(signal.SIGTERM)
    assert second.wait(30) == 0, second.output()


def test_a_second_sigint_exits_at_once_with_130_and_commits_nothing(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=1)
    record = tmp_path / "records.txt"
    produce(servers, topic, [{"id": 0, "sleep": 60}])

    env = settings_env(tmp_path, CONSUMER_CONFIG=SHORT_SESSION)
    slow = consumers.start(servers, topic, record, group=group_id, env={**env, "TESTAPP_RECORD_STARTS": "1"})
    wait_for(lambda: read_records(record), timeout=60, what="the receiver to start sleeping on the message")
    slow.send(signal.SIGINT)
    wait_for(lambda: "Received SIGINT" in slow.output(), timeout=10, what="the first SIGINT to be logged")
    slow.send(signal.SIGINT)

    assert slow.wait(10) == 128 + signal.SIGINT, slow.output()
    assert finished(read_records(record)) == []
    assert committed(servers, group_id, topic, 1) == {0: -1001}
