"""
Share groups (experimental, KIP-932) on the real broker: several consume_events processes share one partition.

Each test runs ``consume_events --share-group`` processes with the test app's recording receiver
(tests/testapp/kafka_handlers.py) and checks what share groups promise: every message handled at
least once, a failing one retried by redelivery and parked then rejected, and a SIGTERM that drains.
Throughput with 1 and 3 consumers of one partition is printed as FIGURES lines, never asserted.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from kafka_consumer_app.engine.dead_letters import HEADER_ATTEMPTS
from kafka_consumer_app.testing.broker import LocalKafkaBroker, share_groups
from tests.kafka_utils import (
    ConsumerProcesses,
    complete_lines,
    duplicates,
    finished,
    produce,
    read_records,
    read_topic,
    report_figures,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.share_groups]

#: Receivers sleep this long per message, so that sharing a partition shows in the throughput.
SLEEP = 0.005


@pytest.fixture
def share_broker(kafka_broker: LocalKafkaBroker) -> LocalKafkaBroker:
    """The suite's broker, whose release has share groups (tests marked share_groups run on 4.2 and later only)."""
    assert share_groups(kafka_broker.version), "tests/conftest.py deselects share-group tests before Kafka 4.2"
    return kafka_broker


def start(consumers: ConsumerProcesses, broker: LocalKafkaBroker, topic: str, record: Path, group: str, **env: str):
    """One ``consume_events --share-group`` process that stops after 8 idle seconds, taking 20 messages a poll."""
    env = {"KAFKA_CONSUMER_CONFIG": '{"max.poll.records": 20}', **env}
    return consumers.start(
        broker.bootstrap_servers, topic, record, "--share-group", "--idle-timeout", "8", group=group, env=env
    )


def produce_in_small_batches(bootstrap: str, topic: str, count: int) -> None:
    """
    ``{"id": i, "sleep": SLEEP}`` for i below ``count``, in record batches of at most 10: the broker hands out
    whole batches (max.poll.records is a soft limit, and librdkafka has no share.acquire.mode), so one big
    batch would go to one consumer.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.num.messages": 10})
    for index in range(count):
        producer.produce(topic, json.dumps({"id": index, "sleep": SLEEP}).encode())
        producer.poll(0)
    assert producer.flush(30) == 0, "some messages were not delivered"


def joined(process) -> bool:
    """Whether the process subscribed (its startup line is out)."""
    return "as share group" in process.output()


@pytest.mark.parametrize("replicas", [1, 3])
def test_share_group_consumers_of_one_partition_handle_every_message(
    share_broker, make_topic, group_id, consumers, tmp_path, replicas
):
    topic = make_topic(1)
    record = tmp_path / "record.txt"
    processes = [start(consumers, share_broker, topic, record, group_id) for _ in range(replicas)]
    wait_for(lambda: all(map(joined, processes)), 60, "every consumer to join the share group")
    count = 600
    produce_in_small_batches(share_broker.bootstrap_servers, topic, count)
    wait_for(lambda: read_records(record), 60, "the first message handled")
    began = time.monotonic()  # from the first handled: a share consumer's first fetch takes seconds
    wait_for(lambda: len({r.id for r in finished(read_records(record))}) >= count, 60, "every message handled")
    seconds = time.monotonic() - began
    for process in processes:
        process.send(signal.SIGTERM)
    for process in processes:
        assert process.wait(30) == 0, process.output()
    records = finished(read_records(record))
    lost = set(range(count)) - {r.id for r in records}
    per_process = sorted(sum(1 for r in records if r.pid == p.pid) for p in processes)
    report_figures(
        f"FIGURES share-group consumers={replicas} partitions=1 messages={count} receiver_sleep={SLEEP * 1000:g}ms "
        f"seconds={seconds:.2f} rate={count / seconds:.0f}/s duplicates={duplicates(records)} lost={len(lost)} "
        f"per_consumer={per_process}"
    )
    assert not lost


def test_a_failing_message_is_redelivered_then_parked_and_rejected(
    share_broker, make_topic, group_id, consumers, tmp_path
):
    topic = make_topic(1)
    dead_letters = topic + "-dlt"  # DEAD_LETTER_TOPIC's default
    share_broker.create_topic(dead_letters, 1)
    record, tries = tmp_path / "record.txt", tmp_path / "tries.txt"
    env = {
        "KAFKA_FAILURE_POLICY": "dead-letter",
        "KAFKA_RETRY_ATTEMPTS": "3",
        "KAFKA_RETRY_BACKOFF": "0",
        "TESTAPP_TRIES": str(tries),
    }
    processes = [start(consumers, share_broker, topic, record, group_id, **env) for _ in range(2)]
    wait_for(lambda: all(map(joined, processes)), 60, "both consumers to join the share group")
    produce(share_broker.bootstrap_servers, topic, [{"id": 1, "fail": True}, {"id": 2}])
    (parked,) = read_topic(share_broker.bootstrap_servers, dead_letters, 1, timeout=60)
    for process in processes:
        assert process.wait(30) == 0, process.output()  # idle for 8 s after the park: nothing came back
    failed_tries = [line.split() for line in complete_lines(tries) if line.split()[3] == "1"]
    assert dict(parked.headers())[HEADER_ATTEMPTS] == b"3"
    assert [line[4] for line in failed_tries] == ["failed"] * 3  # three deliveries, then rejected for good
    assert {r.id for r in finished(read_records(record))} >= {2}


def test_sigterm_drains_a_share_group_consumer_and_nothing_is_lost(
    share_broker, make_topic, group_id, consumers, tmp_path
):
    topic = make_topic(1)
    record = tmp_path / "record.txt"
    processes = [start(consumers, share_broker, topic, record, group_id) for _ in range(2)]
    wait_for(lambda: all(map(joined, processes)), 60, "both consumers to join the share group")
    count = 200
    produce(share_broker.bootstrap_servers, topic, ({"id": i, "sleep": 0.02} for i in range(count)))
    first = wait_for(lambda: read_records(record), 60, "the first message handled")[0]
    # The consumer that handles first holds the messages it acquired: stopping it must hand them back.
    leaving, staying = sorted(processes, key=lambda process: process.pid != first.pid)
    leaving.send(signal.SIGTERM)
    assert leaving.wait(30) == 0, leaving.output()
    wait_for(lambda: len({r.id for r in finished(read_records(record))}) >= count, 60, "every message handled")
    staying.send(signal.SIGTERM)
    assert staying.wait(30) == 0, staying.output()
    records = finished(read_records(record))
    report_figures(
        f"FIGURES share-group sigterm-drain messages={count} lost={count - len({r.id for r in records})} "
        f"duplicates={duplicates(records)} by_leaving={sum(1 for r in records if r.pid == leaving.pid)}"
    )
