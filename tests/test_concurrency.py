"""
CONCURRENCY above 1 on the real broker: key order, offsets (watermark and finished offsets in the
commit metadata), retries that hold back only their key, the watchdog on a worker, and shutdown.

Each scenario that measures something prints one ``FIGURES`` line into the ``make test`` summary.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.core.management import call_command

from kafka_consumer_app.engine.tracking import decode_metadata
from kafka_consumer_app.signals import topic_signal

from .kafka_utils import committed, produce, report_figures

pytestmark = pytest.mark.broker


@pytest.fixture
def connect():
    """Connect receivers for one test and disconnect them afterwards."""
    connected = []

    def do_connect(topic, function):
        topic_signal(topic).connect(function, weak=False)
        connected.append((topic, function))
        return function

    yield do_connect
    for topic, function in connected:
        topic_signal(topic).disconnect(function)


def configure(settings, topic, **overrides):
    """Give ``topic`` its own settings."""
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "TOPICS": {topic: overrides}}


def committed_metadata(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, tuple[int, str]]:
    """Each partition's committed offset and metadata."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
    finally:
        consumer.close()
    return {tp.partition: (tp.offset, tp.metadata or "") for tp in found}


def test_messages_of_one_key_never_overlap_and_run_in_offset_order_while_keys_run_in_parallel(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic(partitions=2)
    configure(kafka_settings, topic, CONCURRENCY=8, ORDERING="key")
    intervals: dict[tuple[int, str], list[tuple[int, float, float]]] = defaultdict(list)
    running = {"now": 0, "most": 0}
    lock = threading.Lock()

    def receiver(sender, message, **kwargs):
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        started = time.monotonic()
        time.sleep(0.005)
        ended = time.monotonic()
        with lock:
            running["now"] -= 1
            intervals[(message.partition, message.key)].append((message.offset, started, ended))

    connect(topic, receiver)
    keys = [f"user-{index % 10}" for index in range(400)]
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(400)], key=lambda index: keys[index])

    call_command("consume_events", topic=topic, max_messages=400)

    assert sum(len(runs) for runs in intervals.values()) == 400
    for lane, runs in intervals.items():
        offsets = [offset for offset, _, _ in runs]
        assert offsets == sorted(offsets), f"{lane} ran out of offset order"
        for (_, _, ended), (_, started, _) in itertools.pairwise(runs):
            assert started >= ended, f"two messages of {lane} overlapped"
    assert running["most"] > 1, "no two messages ever ran at once"
    report_figures(f"FIGURES concurrency key-order: messages=400 keys=10 most_at_once={running['most']}")


def test_the_commit_is_the_lowest_unfinished_offset_with_the_finished_ones_above_it_in_the_metadata(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic(partitions=1)
    configure(kafka_settings, topic, CONCURRENCY=4, ORDERING="none")
    group = kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    servers = kafka_broker.bootstrap_servers
    seen_while_blocked: list[tuple[int, set[int]]] = []
    finished = threading.Event()

    def receiver(sender, message, **kwargs):
        if message.value["n"] != 0:
            return
        # The lowest offset stays unfinished until the commit shows the five above it finished.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            offset, metadata = committed_metadata(servers, group, topic, 1)[0]
            seen_while_blocked.append((offset, decode_metadata(offset, metadata)))
            if seen_while_blocked[-1] == (0, {1, 2, 3, 4, 5}):
                finished.set()
                return
            time.sleep(0.2)

    connect(topic, receiver)
    produce(servers, topic, [{"n": i} for i in range(6)], key=lambda index: None)

    call_command("consume_events", topic=topic, max_messages=6)

    assert finished.is_set(), seen_while_blocked[-3:]
    assert committed(servers, group, topic, 1) == {0: 6}
