"""
CONCURRENCY above 1 on the real broker: key order, offsets (watermark and finished offsets in the
commit metadata), retries that hold back only their key, the watchdog on a worker, and shutdown.

Each scenario that measures something prints one ``FIGURES`` line into the ``make test`` summary.
"""

from __future__ import annotations

import itertools
import random
import signal
import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.core.management import call_command
from django.core.management.base import CommandError
from prometheus_client import generate_latest

from kafka_consumer_app.engine.consumer import EventConsumer, RunOptions
from kafka_consumer_app.engine.hooks import ConsumerHooks, WorkersState
from kafka_consumer_app.engine.tracking import decode_metadata
from kafka_consumer_app.observers.metrics import ConsumerMetrics
from kafka_consumer_app.settings.topics import get_topic_config
from kafka_consumer_app.signals import topic_signal

from .kafka_utils import (
    ConsumerProcess,
    committed,
    duplicates,
    produce,
    read_records,
    report_figures,
    settings_env,
    wait_for,
)
from .test_failures import configure, connect
from .test_fault_injection import SHORT_SESSION, PacedProducer, handled_ids, paced_producers, stable_split

__all__ = ["connect", "paced_producers"]  # fixtures, used by name

pytestmark = pytest.mark.broker


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


# -- killed, stopped and rebalanced consumers with messages in flight ---------------------------

#: The comparison run of the SIGKILL test: the commit carries no finished offsets in its metadata.
WITHOUT_METADATA = (
    "\nfrom kafka_consumer_app.engine import tracking\n"
    'tracking.PartitionOffsets.metadata = lambda self, max_bytes=0: ""\n'
)
#: Every 100th message takes two seconds: the watermark waits for it while the others finish above it.
SLOW_SOME = {"sleep": 0.005, "slow_every": 100, "slow": 2.0}


def sigkill_chaos(servers, topic, group, directory, consumers, paced_producers, extra, rounds=4):
    """Three CONCURRENCY=16 consumers, one SIGKILLed and restarted ``rounds`` times; return records and lost."""
    record = directory / f"records-{group}.txt"
    env = settings_env(directory, extra=extra, CONSUMER_CONFIG=SHORT_SESSION, CONCURRENCY=16)

    def start() -> ConsumerProcess:
        return consumers.start(servers, topic, record, group=group, env=env)

    running = [start() for _ in range(3)]
    producer = PacedProducer(servers, topic, rate=500, minimum=8_000, extra=SLOW_SOME).start()
    paced_producers.append(producer)
    rng = random.Random()
    for _ in range(rounds):
        time.sleep(rng.uniform(2.0, 3.0))
        wait_for(lambda: read_records(record), timeout=60, what="a handled message", interval=0.2)
        slot = rng.randrange(len(running))
        running[slot].send(signal.SIGKILL)
        assert running[slot].wait(10) == -signal.SIGKILL
        running[slot] = start()
    produced = producer.stop()
    wanted = set(range(produced))
    wait_for(lambda: wanted <= handled_ids(record), timeout=120, what="every produced id to be handled", interval=1)
    for process in running:
        process.send(signal.SIGTERM)
    for process in running:
        assert process.wait(30) == 0, process.output()
    records = [r for r in read_records(record) if r.kind == "topic"]
    return records, len(wanted - {r.id for r in records}), produced


def test_sigkilled_and_restarted_concurrent_consumers_lose_no_message(
    kafka_broker, make_topic, group_id, tmp_path, consumers, paced_producers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=6)
    records, lost, produced = sigkill_chaos(servers, topic, group_id, tmp_path, consumers, paced_producers, "")
    report_figures(
        f"FIGURES concurrency sigkill CONCURRENCY=16 chaos: produced={produced} duplicates={duplicates(records)} "
        f"lost={lost}"
    )
    assert lost == 0


def killed_once(servers, topic, group, directory, consumers, extra):
    """One CONCURRENCY=16 consumer SIGKILLed after 3,000 messages, then a second one to the end; records, lost."""
    record = directory / f"records-{group}.txt"
    env = settings_env(
        directory,
        extra=extra,
        CONCURRENCY=16,
        CONSUMER_CONFIG={**SHORT_SESSION, "auto.commit.interval.ms": 200},
    )
    first = consumers.start(servers, topic, record, group=group, env=env)
    wait_for(lambda: len(read_records(record)) >= 3_000, timeout=120, what="3,000 handled messages", interval=0.05)
    first.send(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    second = consumers.start(servers, topic, record, group=group, env=env)
    wait_for(lambda: set(range(8_000)) <= handled_ids(record), timeout=180, what="every message", interval=0.5)
    second.send(signal.SIGTERM)
    assert second.wait(30) == 0, second.output()
    records = [r for r in read_records(record) if r.kind == "topic"]
    return records, len(set(range(8_000)) - {r.id for r in records})


def test_after_a_sigkill_the_finished_offsets_in_the_metadata_are_not_run_again(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    found = {}
    for name, extra in (("with-metadata", ""), ("without-metadata", WITHOUT_METADATA)):
        topic = make_topic(partitions=2, suffix=name)
        produce(servers, topic, [{"id": i, **SLOW_SOME} for i in range(8_000)])
        records, lost = killed_once(servers, topic, f"{group_id}-{name}", tmp_path, consumers, extra)
        found[name] = duplicates(records)
        report_figures(
            f"FIGURES concurrency sigkill-restart CONCURRENCY=16 {name}: produced=8000 "
            f"duplicates={found[name]} lost={lost}"
        )
        assert lost == 0
    assert found["with-metadata"] < found["without-metadata"], found


def test_a_restart_skips_exactly_the_messages_the_committed_metadata_names(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic(partitions=1)
    configure(kafka_settings, topic, CONCURRENCY=4, ORDERING="none", FAILURE_POLICY="stop", RETRY={"ATTEMPTS": 1})
    group = kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    servers = kafka_broker.bootstrap_servers
    runs: list[list[int]] = [[], []]
    seen: list[bool] = []

    def first_run(sender, message, **kwargs):
        runs[0].append(message.value["n"])
        if message.value["n"] == 0:
            # Fail the lowest offset once the commit names the five above it as finished: the run stops there.
            deadline = time.monotonic() + 30
            while not committed_above_zero() and time.monotonic() < deadline:
                time.sleep(0.2)
            seen.append(committed_above_zero())
            raise RuntimeError("the first run stops on message 0")

    def committed_above_zero() -> bool:
        offset, metadata = committed_metadata(servers, group, topic, 1)[0]
        return offset == 0 and decode_metadata(0, metadata) == {1, 2, 3, 4, 5}

    connect(topic, first_run)
    produce(servers, topic, [{"n": i} for i in range(6)], key=lambda index: None)
    with pytest.raises(CommandError):
        call_command("consume_events", topic=topic, max_messages=6)
    topic_signal(topic).disconnect(first_run)
    connect(topic, lambda sender, message, **kwargs: runs[1].append(message.value["n"]))

    call_command("consume_events", topic=topic, max_messages=1, idle_timeout=5)

    assert sorted(runs[0]) == [0, 1, 2, 3, 4, 5] and seen == [True]
    assert runs[1] == [0], "the second run ran again messages the metadata names as finished"
    assert committed(servers, group, topic, 1) == {0: 6}


def test_a_rolling_sigterm_with_messages_in_flight_handles_every_message_exactly_once(
    kafka_broker, make_topic, group_id, tmp_path, consumers, paced_producers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=6)
    record = tmp_path / "records.txt"
    env = settings_env(tmp_path, CONCURRENCY=16)

    def start() -> ConsumerProcess:
        return consumers.start(servers, topic, record, group=group_id, env=env)

    running = [start() for _ in range(3)]
    producer = PacedProducer(servers, topic, rate=400, extra=SLOW_SOME).start()
    paced_producers.append(producer)
    wait_for(lambda: stable_split(servers, group_id, topic, 3, 6), timeout=60, what="three members", interval=0.5)
    stop_seconds = []
    for slot in range(len(running)):
        old = running[slot]
        old.send(signal.SIGTERM)
        signalled = time.monotonic()
        assert old.wait(30) == 0, old.output()
        stop_seconds.append(time.monotonic() - signalled)
        running[slot] = start()
        wait_for(lambda: stable_split(servers, group_id, topic, 3, 6), timeout=60, what="three members", interval=0.5)
    produced = producer.stop()
    wanted = set(range(produced))
    wait_for(lambda: wanted <= handled_ids(record), timeout=90, what="every produced id to be handled", interval=0.5)
    for process in running:
        process.send(signal.SIGTERM)
    for process in running:
        assert process.wait(30) == 0, process.output()
    records = [r for r in read_records(record) if r.kind == "topic"]
    lost = len(wanted - {r.id for r in records})
    report_figures(
        f"FIGURES concurrency rolling-sigterm CONCURRENCY=16: produced={produced} duplicates={duplicates(records)} "
        f"lost={lost} (stopped {', '.join(f'{s:.1f}s' for s in stop_seconds)} after SIGTERM)"
    )
    assert lost == 0
    assert duplicates(records) == 0


def test_a_member_joining_while_messages_are_in_flight_loses_none(
    kafka_broker, make_topic, group_id, tmp_path, consumers, paced_producers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=6)
    record = tmp_path / "records.txt"
    env = settings_env(tmp_path, CONCURRENCY=8)
    first = consumers.start(servers, topic, record, group=group_id, env=env)
    producer = PacedProducer(servers, topic, rate=300, extra={"sleep": 0.05}).start()
    paced_producers.append(producer)
    wait_for(lambda: len(read_records(record)) > 50, timeout=60, what="messages in flight", interval=0.2)
    second = consumers.start(servers, topic, record, group=group_id, env=env)
    wait_for(lambda: stable_split(servers, group_id, topic, 2, 6), timeout=60, what="two members", interval=0.5)
    time.sleep(2)  # let both members run messages side by side for a while
    produced = producer.stop()
    wanted = set(range(produced))
    wait_for(lambda: wanted <= handled_ids(record), timeout=90, what="every produced id to be handled", interval=0.5)
    for process in (first, second):
        process.send(signal.SIGTERM)
    for process in (first, second):
        assert process.wait(30) == 0, process.output()
    records = [r for r in read_records(record) if r.kind == "topic"]
    lost = len(wanted - {r.id for r in records})
    report_figures(
        f"FIGURES concurrency rebalance-in-flight CONCURRENCY=8: produced={produced} "
        f"duplicates={duplicates(records)} lost={lost}"
    )
    assert lost == 0


def test_sigterm_with_sixteen_twenty_millisecond_receivers_in_flight_exits_within_seconds(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=2)
    record = tmp_path / "records.txt"
    produce(servers, topic, [{"id": i, "sleep": 0.02} for i in range(3000)])
    process = consumers.start(servers, topic, record, group=group_id, env=settings_env(tmp_path, CONCURRENCY=16))
    wait_for(lambda: len(read_records(record)) > 200, timeout=60, what="messages in flight", interval=0.2)
    process.send(signal.SIGTERM)
    signalled = time.monotonic()
    assert process.wait(20) == 0, process.output()
    seconds = time.monotonic() - signalled
    handled = len(read_records(record))
    report_figures(f"FIGURES concurrency sigterm-exit CONCURRENCY=16 receiver=20ms: exit {seconds:.1f}s after SIGTERM")
    assert handled < 3000, "the SIGTERM came after the backlog was done"
    # The final commit covers exactly what was handled: each partition's watermark plus the finished offsets above it.
    records = read_records(record)
    for partition, (offset, metadata) in committed_metadata(servers, group_id, topic, 2).items():
        mine = {r.offset for r in records if r.partition == partition}
        assert mine == set(range(offset)) | decode_metadata(offset, metadata), partition


# -- failures hold back only their key, the watchdog watches workers, and what operators see ------


def test_a_key_that_fails_and_retries_does_not_delay_the_other_keys_of_its_partition(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic(partitions=1)
    configure(kafka_settings, topic, CONCURRENCY=4, RETRY={"ATTEMPTS": 3, "INITIAL_BACKOFF": 1.0, "JITTER": 0})
    tries: list[float] = []
    others: dict[int, float] = {}

    def receiver(sender, message, **kwargs):
        if message.key == "bad":
            tries.append(time.monotonic())
            if len(tries) < 3:
                raise ConnectionError("the service behind this key is down")
            return
        others[message.offset] = time.monotonic()

    connect(topic, receiver)
    keys = ["bad"] + [f"good-{index % 7}" for index in range(1, 60)]
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(60)], key=lambda index: keys[index])

    call_command("consume_events", topic=topic, max_messages=60)

    assert len(tries) == 3 and len(others) == 59
    assert max(others.values()) < tries[1], "the other keys waited for the failing key's retry"
    # Measured from the failing key's first try: the other 59 messages were fetched with it.
    latencies = sorted(at - tries[0] for at in others.values())
    report_figures(
        f"FIGURES concurrency retrying-key: the other keys' 59 messages finished "
        f"p50={latencies[len(latencies) // 2]:.3f}s max={latencies[-1]:.3f}s after the failing key's first try; "
        "its retries came at "
        f"+{tries[1] - tries[0]:.2f}s and +{tries[2] - tries[0]:.2f}s"
    )
    assert committed(kafka_broker.bootstrap_servers, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 60}


def test_the_watchdog_names_the_worker_thread_and_the_message_of_a_stalled_receiver(
    kafka_settings, kafka_broker, make_topic, connect, caplog
):
    topic = make_topic(partitions=1)
    configure(kafka_settings, topic, CONCURRENCY=3, HANDLER_SOFT_TIMEOUT=0.5)

    def receiver(sender, message, **kwargs):
        if message.value["n"] == 1:
            time.sleep(1.6)

    connect(topic, receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(3)])

    with caplog.at_level("WARNING", logger="kafka_consumer_app.engine.watchdog"):
        call_command("consume_events", topic=topic, max_messages=3)

    stalled = [r.getMessage() for r in caplog.records if "soft limit" in r.getMessage()]
    assert stalled, "the watchdog did not report the stalled worker"
    assert f"{topic}[0]@1 (thread kafka-consumer-worker-" in stalled[0]
    assert "time.sleep(1.6)" in stalled[0], "the stack of the worker thread is missing"


def test_the_progress_line_and_the_metrics_report_the_workers(
    kafka_settings, kafka_broker, make_topic, connect, caplog
):
    topic = make_topic(partitions=2)
    configure(kafka_settings, topic, CONCURRENCY=4)
    kafka_settings.KAFKA_CONSUMER = {**kafka_settings.KAFKA_CONSUMER, "PROGRESS_INTERVAL": 0.5}
    connect(topic, lambda sender, message, **kwargs: time.sleep(0.05))  # 200 of them take 2.5 s on 4 threads
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(200)])
    metrics = ConsumerMetrics(topic)
    states: list[WorkersState] = []

    class Recording(ConsumerHooks):
        def after_workers(self, consumer, state):
            states.append(state)

    config = get_topic_config(topic)
    with caplog.at_level("INFO", logger="kafka_consumer_app.engine.progress"):
        EventConsumer(config, RunOptions(max_messages=200), hooks=[metrics, Recording()]).run()

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Processed ")]
    assert any("workers " in line and "of 4 busy" in line and "utilised" in line for line in lines), lines
    assert states and all(state.threads == 4 for state in states)
    assert any(state.in_flight > 0 for state in states), "no state saw a message in flight"
    text = generate_latest(metrics.registry).decode()
    assert f'kafka_consumer_worker_threads{{topic="{topic}"}} 4.0' in text
    busy = [line for line in text.splitlines() if line.startswith("kafka_consumer_worker_busy_seconds_total")]
    assert busy and float(busy[0].split()[-1]) > 0


def test_a_message_waiting_for_its_retry_is_not_idleness_for_idle_timeout(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic(partitions=1)
    configure(kafka_settings, topic, CONCURRENCY=2, RETRY={"ATTEMPTS": 2, "INITIAL_BACKOFF": 4.0, "JITTER": 0})
    tries: list[int] = []

    def receiver(sender, message, **kwargs):
        tries.append(message.offset)
        if len(tries) == 1:
            raise ConnectionError("down for a moment")

    connect(topic, receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": 0}])

    # The retry comes 4 s after the failure, later than --idle-timeout's 2 s: the wait is not idleness.
    call_command("consume_events", topic=topic, idle_timeout=2)

    assert tries == [0, 0]
    assert committed(kafka_broker.bootstrap_servers, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 1}
