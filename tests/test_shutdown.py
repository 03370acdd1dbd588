"""SIGTERM against a real broker: a clean stop commits what was handled; a second SIGTERM exits at once."""

from __future__ import annotations

import signal
import time

import pytest

from .kafka_utils import (
    SHORT_SESSION,
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


def test_after_sigterm_and_a_restart_no_message_is_handled_twice_and_none_is_lost(
    kafka_broker, make_topic, group_id, tmp_path, group_protocol, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=3)
    record = tmp_path / "records.txt"
    produced = produce(servers, topic, [{"id": i, "sleep": 0.004} for i in range(1500)])

    first = consumers.start(servers, topic, record, group=group_id)
    wait_for(lambda: len(read_records(record)) >= 300, timeout=60, what="300 messages handled")
    first.send(signal.SIGTERM)
    signalled = time.monotonic()
    assert first.wait(15) == 0, first.output()
    stop_seconds = time.monotonic() - signalled

    before_restart = read_records(record)
    assert len(before_restart) < produced, "the consumer finished before it was stopped"
    # Everything handled, and nothing else, was committed on the way out.
    assert committed(servers, group_id, topic, 3) == {
        partition: max((r.offset + 1 for r in before_restart if r.partition == partition), default=-1001)
        for partition in range(3)
    }

    second = consumers.start(servers, topic, record, "--idle-timeout", "3", group=group_id)
    assert second.wait(60) == 0, second.output()

    records = read_records(record)
    handled_ids = {r.id for r in records}
    lost = len(set(range(produced)) - handled_ids)
    report_figures(
        f"SIGTERM then restart ({group_protocol.name}): produced={produced} handled_distinct={len(handled_ids)} "
        f"duplicates={duplicates(records)} lost={lost} (stopped {stop_seconds:.1f}s after SIGTERM)"
    )
    assert duplicates(records) == 0
    assert lost == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM-143", "SIGINT-130"])
def test_a_second_signal_exits_at_once_with_128_plus_its_number_and_the_message_in_hand_is_redelivered(
    signum, kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=1)
    record = tmp_path / "records.txt"
    produce(servers, topic, [{"id": 0, "sleep": 60}])

    # The process exits without leaving the group: a short session lets the restart join without a long wait.
    env = settings_env(tmp_path, CONSUMER_CONFIG=SHORT_SESSION)
    slow = consumers.start(servers, topic, record, group=group_id, env={**env, "TESTAPP_RECORD_STARTS": "1"})
    wait_for(lambda: read_records(record), timeout=60, what="the receiver to start sleeping on the message")
    slow.send(signum)
    # The first signal must have been taken (not merged with the second) before the second is sent.
    name = signal.Signals(signum).name
    wait_for(lambda: f"Received {name}" in slow.output(), timeout=10, what=f"the first {name} to be logged")
    slow.send(signum)
    signalled = time.monotonic()
    assert slow.wait(10) == 128 + signum, slow.output()
    assert time.monotonic() - signalled < 5
    assert finished(read_records(record)) == []
    assert committed(servers, group_id, topic, 1) == {0: -1001}

    restarted = consumers.start(
        servers, topic, record, "--max-messages", "1", group=group_id, env={**env, "TESTAPP_FIXED": "1"}
    )
    assert restarted.wait(60) == 0, restarted.output()
    assert [(r.pid, r.offset, r.id) for r in finished(read_records(record))] == [(restarted.pid, 0, 0)]
    assert committed(servers, group_id, topic, 1) == {0: 1}
