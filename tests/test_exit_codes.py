"""
The exit-code table of docs/reference/commands.rst, against a real broker: the codes that no other test file shows.

Codes 0, 1, 2, 3, 5, 130 and 143 are shown where their causes are tested (test_command_errors.py,
test_delivery.py, test_failures.py, test_shutdown.py); this file covers a fatal Kafka client
error (4).
"""

from __future__ import annotations

import signal

import pytest

from kafka_consumer_app.exceptions import EXIT_KAFKA

from .kafka_utils import SHORT_SESSION, settings_env, wait_for

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
