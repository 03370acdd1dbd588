"""Delivery guarantees against a real broker: at-least-once, failed messages, run limits, empty values."""

from __future__ import annotations

import signal
import time

import pytest
from django.core.management import call_command

from kafka_consumer_app.exceptions import EXIT_HANDLER_FAILED
from kafka_consumer_app.message import Message
from kafka_consumer_app.signals import topic_signal

from .kafka_utils import (
    committed,
    duplicates,
    finished,
    produce,
    read_records,
    report_figures,
    settings_env,
    wait_for,
)

pytestmark = pytest.mark.broker


def test_every_message_is_handled_at_least_once_when_the_consumer_is_killed_mid_stream(
    kafka_broker, make_topic, group_id, tmp_path, group_protocol, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=3)
    record = tmp_path / "records.txt"
    # The restarted consumer has to wait for the killed member's session (10 s) to expire, far longer than its
    # --idle-timeout: that wait must not count as an idle topic.
    env = settings_env(tmp_path, CONSUMER_CONFIG=group_protocol.short_session(servers, group_id))
    produced = produce(servers, topic, [{"id": i, "sleep": 0.004} for i in range(3000)])

    first = consumers.start(servers, topic, record, group=group_id, env=env)
    # Kill it mid-stream, once some hundreds are handled and the background auto-commit has run.
    wait_for(
        lambda: len(read_records(record)) >= 300 and max(committed(servers, group_id, topic, 3).values()) > 0,
        timeout=60,
        what="some hundreds of messages handled and some offsets auto-committed",
        interval=0.5,
    )
    first.send(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL

    before_restart = finished(read_records(record))
    assert len({r.id for r in before_restart}) < produced, "the consumer finished before it was killed"
    # The at-least-once invariant: nothing was committed that had not been handled.
    offsets_at_kill = committed(servers, group_id, topic, 3)
    for partition, offset in offsets_at_kill.items():
        handled_offsets = {r.offset for r in before_restart if r.partition == partition}
        assert set(range(max(offset, 0))) <= handled_offsets, f"partition {partition} committed unhandled offsets"

    second = consumers.start(servers, topic, record, "--idle-timeout", "3", group=group_id, env=env)
    assert second.wait(120) == 0, second.output()

    records = finished(read_records(record))
    handled_ids = {r.id for r in records}
    lost = len(set(range(produced)) - handled_ids)
    report_figures(
        f"at-least-once under SIGKILL ({group_protocol.name}): produced={produced} handled_distinct={len(handled_ids)} "
        f"duplicates={duplicates(records)} lost={lost}"
    )
    assert lost == 0, second.output()
    assert {r.pid for r in records} == {first.pid, second.pid}


def test_a_failing_receiver_stops_the_consumer_and_leaves_its_message_uncommitted_for_redelivery(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=1)
    record = tmp_path / "records.txt"
    produce(servers, topic, [{"id": i, "fail": i == 3} for i in range(6)])

    failing = consumers.start(servers, topic, record, group=group_id)
    assert failing.wait(60) == EXIT_HANDLER_FAILED, failing.output()
    assert f"{topic}[0]@3" in failing.output()
    assert [r.offset for r in finished(read_records(record))] == [0, 1, 2]
    assert committed(servers, group_id, topic, 1) == {0: 3}

    fixed = consumers.start(servers, topic, record, "--max-messages", "3", group=group_id, env={"TESTAPP_FIXED": "1"})
    assert fixed.wait(60) == 0, fixed.output()
    assert [(r.offset, r.id) for r in finished(read_records(record)) if r.pid == fixed.pid] == [(3, 3), (4, 4), (5, 5)]
    assert committed(servers, group_id, topic, 1) == {0: 6}


def test_max_messages_stops_cleanly_after_committing_exactly_that_many_and_the_next_run_continues_from_there(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=1)
    record = tmp_path / "records.txt"
    produce(servers, topic, [{"id": i} for i in range(10)])

    first = consumers.start(servers, topic, record, "--max-messages", "4", group=group_id)
    assert first.wait(60) == 0, first.output()
    assert committed(servers, group_id, topic, 1) == {0: 4}
    assert [r.offset for r in read_records(record)] == [0, 1, 2, 3]

    second = consumers.start(servers, topic, record, "--max-messages", "6", group=group_id)
    assert second.wait(60) == 0, second.output()
    assert committed(servers, group_id, topic, 1) == {0: 10}
    records = read_records(record)
    assert [r.offset for r in records if r.pid == second.pid] == [4, 5, 6, 7, 8, 9]
    assert duplicates(records) == 0


def test_idle_timeout_stops_cleanly_on_an_empty_topic(kafka_broker, make_topic, group_id, tmp_path, consumers):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=1)
    record = tmp_path / "records.txt"

    started = time.monotonic()
    process = consumers.start(servers, topic, record, "--idle-timeout", "2", group=group_id)
    assert process.wait(60) == 0, process.output()
    assert time.monotonic() - started >= 2
    assert "--idle-timeout" in process.output()
    assert read_records(record) == []
    assert committed(servers, group_id, topic, 1) == {0: -1001}


@pytest.mark.django_db
@pytest.mark.parametrize(("deserializer", "empty", "other"), [("str", "", "x"), ("bytes", b"", b"x")])
def test_empty_values_and_tombstones_are_delivered_to_receivers_not_skipped(
    kafka_settings, make_topic, group_id, deserializer, empty, other
):
    topic = make_topic(partitions=1)
    kafka_settings.KAFKA_CONSUMER = {
        **kafka_settings.KAFKA_CONSUMER,
        "TOPICS": {topic: {"DESERIALIZER": deserializer}},
    }
    servers = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    produce(servers, topic, [b"", None, b"x"], raw=True)
    got: list[Message] = []

    def receiver(sender, message, **kwargs):
        got.append(message)

    topic_signal(topic).connect(receiver, weak=False)
    try:
        # If a message were skipped, --max-messages 3 would never be reached and the idle timeout would stop it.
        call_command("consume_events", topic=topic, max_messages=3, idle_timeout=15)
    finally:
        topic_signal(topic).disconnect(receiver)

    assert [(m.offset, m.value) for m in got] == [(0, empty), (1, None), (2, other)]
    assert type(got[0].value) is type(empty)
    assert committed(servers, group_id, topic, 1) == {0: 3}
