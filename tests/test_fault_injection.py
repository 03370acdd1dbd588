"""
Fault injection against the real broker: killed and restarted consumers, a restarted broker,
poison messages, failing receivers, a missing dead-letter topic, and replaying dead letters.

Every scenario prints one line (run pytest with ``-s`` to see it)::

    FIGURES <scenario>: produced=N handled_distinct=N duplicates=N dead_lettered=N lost=N

``lost`` counts produced messages that were neither handled by a receiver nor parked in the
dead-letter topic; at-least-once means it is always 0. ``duplicates`` counts repeated handlings.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage
from django.core.management import call_command

from kafka_consumer_app.engine.dead_letters import (
    HEADER_ATTEMPTS,
    HEADER_EXCEPTION_CLASS,
    HEADER_EXCEPTION_MESSAGE,
    HEADER_GROUP,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_PREFIX,
    HEADER_REASON,
    HEADER_RECEIVERS,
    HEADER_TIMESTAMP,
    HEADER_TOPIC,
)
from kafka_consumer_app.engine.policy import REASON_MALFORMED, REASON_RECEIVER_FAILED
from kafka_consumer_app.exceptions import EXIT_HANDLER_FAILED
from kafka_consumer_app.testing.broker import LocalKafkaBroker

from .kafka_utils import (
    ConsumerProcess,
    Record,
    committed,
    complete_lines,
    duplicates,
    group_assignment,
    produce,
    read_records,
    report_figures,
    settings_env,
    wait_for,
)

pytestmark = pytest.mark.broker

#: A SIGKILLed member keeps its partitions until its session times out; 6 s is the broker's minimum.
SHORT_SESSION = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
#: The dotted name of the test app's topic receiver, as dlt.receivers names it.
TOPIC_RECEIVER = "tests.testapp.kafka_handlers.on_topic_message"
ALL_DLT_HEADERS = (
    HEADER_TOPIC,
    HEADER_PARTITION,
    HEADER_OFFSET,
    HEADER_TIMESTAMP,
    HEADER_GROUP,
    HEADER_RECEIVERS,
    HEADER_EXCEPTION_CLASS,
    HEADER_EXCEPTION_MESSAGE,
    HEADER_ATTEMPTS,
    HEADER_REASON,
)


# -- helpers ------------------------------------------------------------------------------------


def figures(scenario: str, *, produced: int, handled_distinct: int, duplicates: int, dead_lettered: int, lost: int):
    """Report the scenario's one FIGURES line."""
    report_figures(
        f"FIGURES {scenario}: produced={produced} handled_distinct={handled_distinct} "
        f"duplicates={duplicates} dead_lettered={dead_lettered} lost={lost}"
    )


def topic_records(record: Path) -> list[Record]:
    """The record file's lines written by the topic receiver (not by the event one)."""
    return [r for r in read_records(record) if r.kind == "topic"]


def report_every_message_handled(scenario: str, record: Path, wanted: set[int]) -> tuple[list[Record], int]:
    """Report a scenario in which every produced message must be handled; return its records and the lost count."""
    records = topic_records(record)
    handled = {r.id for r in records}
    lost = len(wanted - handled)
    figures(
        scenario,
        produced=len(wanted),
        handled_distinct=len(handled & wanted),
        duplicates=duplicates(records),
        dead_lettered=0,
        lost=lost,
    )
    return records, lost


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[KafkaMessage]:
    """Every message of ``topic`` up to its current end offsets, read without a consumer group."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        remaining = {p for p, end in ends.items() if end > 0}
        messages: list[KafkaMessage] = []
        deadline = time.monotonic() + timeout
        while remaining:
            assert time.monotonic() < deadline, f"timed out reading {topic}: partitions {remaining} not at their end"
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            messages.append(message)
            if message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
        return messages
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The high watermark of every partition: what a group that handled everything has committed."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ends-{uuid.uuid4().hex}"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def headers_of(message: KafkaMessage) -> dict[str, bytes]:
    """A message's headers as a dict (the last value of a repeated name wins)."""
    return dict(message.headers() or [])


@dataclass(frozen=True)
class Try:
    """One try of the test app's topic receiver, from its TESTAPP_TRIES file."""

    pid: int
    partition: int
    offset: int
    id: int | None
    outcome: str
    started: float


def read_tries(path: Path) -> list[Try]:
    """Parse the TESTAPP_TRIES file written by tests/testapp/kafka_handlers.py."""
    tries = []
    for line in complete_lines(path):
        pid, partition, offset, ident, outcome, started = line.split()
        tries.append(
            Try(int(pid), int(partition), int(offset), None if ident == "None" else int(ident), outcome, float(started))
        )
    return tries


class PacedProducer:
    """
    Produces ``{"id": n}`` (n = 0, 1, 2...) at a steady rate from a thread, until stopped.

    ``extra`` is merged into every value, e.g. ``{"sleep": 0.003}`` for a receiver that takes time.

    ``stop()`` ends production once at least ``minimum`` messages were produced (the rest is
    sent at once), waits for every delivery and returns the count.
    """

    def __init__(self, bootstrap: str, topic: str, rate: float, minimum: int = 0, extra: dict | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.rate = rate
        self.minimum = minimum
        self.extra = extra or {}
        self.count = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"paced-producer-{topic}", daemon=True)

    def start(self) -> PacedProducer:
        """Start producing."""
        self._thread.start()
        return self

    def _on_delivery(self, error, _message) -> None:
        if error is not None:
            self.errors.append(str(error))

    def _produce_one(self, producer: Producer) -> None:
        value = json.dumps({"id": self.count, **self.extra}).encode()
        while True:
            try:
                producer.produce(self.topic, value, key=f"key-{self.count}", on_delivery=self._on_delivery)
                break
            except BufferError:  # the local queue is full (the broker is slow or away): wait for room
                producer.poll(0.1)
        self.count += 1

    def _run(self) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "enable.idempotence": True})
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                due = int((time.monotonic() - started) * self.rate) + 1
                while self.count < due:
                    self._produce_one(producer)
                producer.poll(0.02)
            while self.count < self.minimum:
                self._produce_one(producer)
                producer.poll(0)
        except Exception as error:  # reported by stop() in the test's thread
            self.errors.append(f"producer thread failed: {error!r}")
        finally:
            remaining = producer.flush(90)
            if remaining:
                self.errors.append(f"{remaining} message(s) not delivered")

    def halt(self, timeout: float) -> None:
        """Stop producing and wait up to ``timeout`` seconds for the thread, without checking anything."""
        self._stop.set()
        self._thread.join(timeout)

    def stop(self, timeout: float = 120.0) -> int:
        """Stop producing (after ``minimum``), wait for every delivery and return how many were produced."""
        self.halt(timeout)
        assert not self._thread.is_alive(), f"the producer did not finish within {timeout:g}s"
        assert not self.errors, f"producing failed: {self.errors[:3]}"
        return self.count


@pytest.fixture
def paced_producers() -> Iterator[list[PacedProducer]]:
    """A list to put PacedProducers in; those still running at the end of the test are stopped."""
    producers: list[PacedProducer] = []
    try:
        yield producers
    finally:
        for producer in producers:
            producer.halt(30)


@pytest.fixture
def dedicated_broker() -> Iterator[LocalKafkaBroker]:
    """A broker of this test's own, which it may stop and start; removed with its data afterwards."""
    broker = LocalKafkaBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.cleanup()


def handled_ids(record: Path) -> set[int]:
    """The ids of the messages whose topic receiver returned, by any process."""
    return {r.id for r in read_records(record) if r.kind == "topic" and r.id is not None}


def stable_split(bootstrap: str, group: str, topic: str, members: int, partitions: int) -> bool:
    """True when ``members`` members of a stable group each hold partitions, and all are held."""
    assignment = group_assignment(bootstrap, group, topic)
    return bool(
        assignment
        and len(assignment) == members
        and all(assignment)
        and set().union(*assignment) == set(range(partitions))
    )


# -- consumers killed and restarted -------------------------------------------------------------


def test_sigkilled_and_restarted_consumers_lose_no_message_of_twenty_thousand(
    kafka_broker, make_topic, group_id, tmp_path, consumers, paced_producers
):
    servers = kafka_broker.bootstrap_servers
    partitions = 6
    topic = make_topic(partitions=partitions)
    record = tmp_path / "records.txt"
    env = settings_env(tmp_path, CONSUMER_CONFIG=SHORT_SESSION)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)

    def start() -> ConsumerProcess:
        return consumers.start(servers, topic, record, group=group_id, env=env)

    running = [start() for _ in range(3)]
    producer = PacedProducer(servers, topic, rate=700, minimum=20_000).start()
    paced_producers.append(producer)

    def working() -> list[int]:
        """The slots of the running consumers that have handled messages: the ones worth killing."""
        pids = {r.pid for r in read_records(record)}
        return [slot for slot, process in enumerate(running) if process.pid in pids]

    killed: list[int] = []
    for _ in range(6):
        time.sleep(rng.uniform(2.0, 4.0))
        slot = rng.choice(wait_for(working, timeout=60, what="a consumer handling messages", interval=0.2))
        victim = running[slot]
        victim.send(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        killed.append(victim.pid)
        running[slot] = start()
    produced = producer.stop()
    assert produced >= 20_000

    wanted = set(range(produced))
    ends = end_offsets(servers, topic, partitions)
    wait_for(lambda: wanted <= handled_ids(record), timeout=100, what="every produced id to be handled", interval=1)
    # A killed consumer may have handled the tail of a partition that its successor is handling again.
    wait_for(
        lambda: committed(servers, group_id, topic, partitions) == ends,
        timeout=60,
        what="the group to commit every partition up to its end",
        interval=1,
    )
    for process in running:
        process.send(signal.SIGTERM)
    for process in running:
        assert process.wait(30) == 0, process.output()

    records, lost = report_every_message_handled("sigkill", record, wanted)
    killed_mid_stream = len(set(killed) & {r.pid for r in records})
    print(f"(seed {seed}; {len(killed)} SIGKILLs of consumers handling messages)")
    assert lost == 0
    assert killed_mid_stream == len(killed)
    assert committed(servers, group_id, topic, partitions) == ends


def test_a_rolling_restart_with_sigterm_while_messages_flow_handles_every_message_exactly_once(
    kafka_broker, make_topic, group_id, tmp_path, group_protocol, consumers, paced_producers
):
    servers = kafka_broker.bootstrap_servers
    partitions = 6
    topic = make_topic(partitions=partitions)
    record = tmp_path / "records.txt"

    def start() -> ConsumerProcess:
        return consumers.start(servers, topic, record, group=group_id)

    running = [start() for _ in range(3)]
    producer = PacedProducer(servers, topic, rate=300).start()
    paced_producers.append(producer)
    wait_for(
        lambda: stable_split(servers, group_id, topic, 3, partitions),
        timeout=60,
        what="three members sharing every partition",
        interval=0.5,
    )

    stop_seconds = []
    for slot in range(len(running)):
        old = running[slot]
        assert old.process.poll() is None, old.output()
        old.send(signal.SIGTERM)
        signalled = time.monotonic()
        assert old.wait(15) == 0, old.output()
        stop_seconds.append(time.monotonic() - signalled)
        running[slot] = start()
        wait_for(
            lambda: stable_split(servers, group_id, topic, 3, partitions),
            timeout=60,
            what="the replacement to join and three members to share every partition",
            interval=0.5,
        )
    produced = producer.stop()

    wanted = set(range(produced))
    wait_for(lambda: wanted <= handled_ids(record), timeout=60, what="every produced id to be handled", interval=0.5)
    for process in running:
        process.send(signal.SIGTERM)
    for process in running:
        assert process.wait(15) == 0, process.output()

    records, lost = report_every_message_handled(f"rolling-sigterm ({group_protocol.name})", record, wanted)
    print(f"(stopped {', '.join(f'{s:.1f}s' for s in stop_seconds)} after SIGTERM)")
    assert lost == 0
    assert duplicates(records) == 0
    assert committed(servers, group_id, topic, partitions) == end_offsets(servers, topic, partitions)


#: Seconds between the second member's join and the SIGTERM of the first: inside the rebalance.
REBALANCE_SIGTERM_DELAYS = (1.0, 1.5, 2.0)


@pytest.mark.parametrize("delay", REBALANCE_SIGTERM_DELAYS, ids=lambda delay: f"{delay}s")
def test_a_sigterm_during_a_rebalance_commits_every_handled_offset_so_nothing_is_handled_twice_or_lost(
    kafka_broker, make_topic, group_id, tmp_path, consumers, paced_producers, delay
):
    servers = kafka_broker.bootstrap_servers
    partitions = 6
    topic = make_topic(partitions=partitions)
    record = tmp_path / "records.txt"

    first = consumers.start(servers, topic, record, group=group_id)
    # Receivers take a little time per message, so there is always handled work not committed yet.
    producer = PacedProducer(servers, topic, rate=250, extra={"sleep": 0.002}).start()
    paced_producers.append(producer)
    wait_for(lambda: len(handled_ids(record)) >= 300, timeout=60, what="the first member to handle 300 messages")

    second = consumers.start(servers, topic, record, group=group_id)
    # "Joins" is the second member's first (empty) assignment: the end of the first of the two rounds of a
    # cooperative rebalance. The first member then revokes half its partitions and rejoins at once, and the
    # second round waits for the second member's next heartbeat (3 s): the SIGTERM lands inside it.
    wait_for(lambda: "Assigned partitions" in second.output(), timeout=60, what="the second member to join")
    time.sleep(delay)  # the scenario's input: where in the rebalance the SIGTERM lands
    first.send(signal.SIGTERM)
    assert first.wait(60) == 0, first.output()

    produced = producer.stop()
    wanted = set(range(produced))
    wait_for(lambda: wanted <= handled_ids(record), timeout=90, what="every produced id to be handled", interval=0.5)
    ends = end_offsets(servers, topic, partitions)
    wait_for(
        lambda: committed(servers, group_id, topic, partitions) == ends,
        timeout=60,
        what="the second member to commit every partition up to its end",
        interval=1,
    )
    second.send(signal.SIGTERM)
    assert second.wait(30) == 0, second.output()

    records = topic_records(record)
    handled = {r.id for r in records}
    twice, lost = duplicates(records), len(wanted - handled)
    report_figures(
        f"FIGURES sigterm-during-rebalance delay={delay:g}s: produced={produced} handled_distinct={len(handled)} "
        f"duplicates={twice} lost={lost}"
    )
    print("(first member's commit and revoke lines:)")
    for line in first.output().splitlines():
        if "ommit" in line or "Revoked" in line or "Assigned" in line:
            print("  ", line[:300])
    assert lost == 0
    assert twice == 0


# -- the broker goes away ------------------------------------------------------------------------


def test_a_consumer_survives_a_broker_restart_mid_stream_and_resumes_on_its_own(
    dedicated_broker, group_id, tmp_path, consumers, paced_producers
):
    servers = dedicated_broker.bootstrap_servers
    partitions = 3
    topic = f"broker-restart-{uuid.uuid4().hex[:8]}"
    dedicated_broker.create_topic(topic, partitions)
    record = tmp_path / "records.txt"

    consumer = consumers.start(servers, topic, record, group=group_id)
    producer = PacedProducer(servers, topic, rate=200).start()
    paced_producers.append(producer)
    wait_for(lambda: len(handled_ids(record)) >= 300, timeout=60, what="300 messages handled", interval=0.5)

    stopping = time.monotonic()
    dedicated_broker.stop()
    stopped = time.monotonic()
    time.sleep(10)
    assert consumer.process.poll() is None, f"the consumer exited while the broker was down:\n{consumer.output()}"
    dedicated_broker.start()
    print(
        f"(broker stopped in {stopped - stopping:.1f}s, down 10s, "
        f"back {time.monotonic() - stopped - 10:.1f}s after its restart began)"
    )
    first_after_restart = producer.count
    wait_for(
        lambda: max(handled_ids(record), default=-1) >= first_after_restart + 200,
        timeout=90,
        what="messages produced after the restart to be handled",
        interval=0.5,
    )
    produced = producer.stop()

    wanted = set(range(produced))
    ends = end_offsets(servers, topic, partitions)
    wait_for(lambda: wanted <= handled_ids(record), timeout=90, what="every produced id to be handled", interval=0.5)
    # Had the restart cost the consumer its partitions, it would handle their uncommitted tail again first.
    wait_for(
        lambda: committed(servers, group_id, topic, partitions) == ends,
        timeout=60,
        what="the consumer to commit every partition up to its end",
        interval=1,
    )
    assert consumer.process.poll() is None, consumer.output()
    consumer.send(signal.SIGTERM)
    assert consumer.wait(30) == 0, consumer.output()

    records, lost = report_every_message_handled("broker-restart", record, wanted)
    assert lost == 0
    assert {r.pid for r in records} == {consumer.pid}, "the consumer was replaced, not resumed"
    assert committed(servers, group_id, topic, partitions) == ends


# -- poison messages and failing receivers ------------------------------------------------------

MALFORMED_PAYLOADS = (b"", b"{not json", b"\xff\xfe\x00\x01garbage", b"[1, 2", b"plain text", b"\x00")


def test_malformed_messages_are_dead_lettered_with_their_origin_while_good_ones_are_all_handled(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    partitions = 3
    topic = make_topic(partitions=partitions)
    dlt = f"{topic}-dlt"
    kafka_broker.create_topic(dlt)
    record = tmp_path / "records.txt"
    total = 700
    malformed = {index for index in range(total) if index % 7 == 3}
    values = [
        MALFORMED_PAYLOADS[i % len(MALFORMED_PAYLOADS)] if i in malformed else json.dumps({"id": i}).encode()
        for i in range(total)
    ]
    produced = produce(servers, topic, values, raw=True)

    consumer = consumers.start(
        servers, topic, record, "--idle-timeout", "3", group=group_id, env={"KAFKA_FAILURE_POLICY": "dead-letter"}
    )
    assert consumer.wait(90) == 0, consumer.output()

    source = {m.key().decode(): m for m in read_topic(servers, topic)}
    parked = read_topic(servers, dlt)
    parked_keys = Counter(m.key().decode() for m in parked)
    assert set(parked_keys) == {f"key-{index}" for index in malformed}
    assert max(parked_keys.values()) == 1, "a malformed message was parked twice"
    for message in parked:
        original = source[message.key().decode()]
        headers = headers_of(message)
        assert set(ALL_DLT_HEADERS) <= set(headers), f"missing dlt.* headers: {sorted(headers)}"
        assert message.value() == original.value()
        assert headers[HEADER_REASON] == REASON_MALFORMED.encode()
        assert headers[HEADER_TOPIC] == topic.encode()
        assert headers[HEADER_PARTITION] == str(original.partition()).encode()
        assert headers[HEADER_OFFSET] == str(original.offset()).encode()
        assert headers[HEADER_TIMESTAMP] == str(original.timestamp()[1]).encode()
        assert headers[HEADER_GROUP] == group_id.encode()
        assert headers[HEADER_ATTEMPTS] == b"1"
        assert headers[HEADER_RECEIVERS] == b""
        assert headers[HEADER_EXCEPTION_CLASS] == b"kafka_consumer_app.exceptions.DeserializationError"
        assert headers[HEADER_EXCEPTION_MESSAGE].startswith(b"cannot decode the message value")

    records = topic_records(record)
    good = set(range(total)) - malformed
    handled = {r.id for r in records}
    lost = len(good - handled) + len(malformed - {int(key.split("-")[1]) for key in parked_keys})
    figures(
        "poison-messages",
        produced=produced,
        handled_distinct=len(handled & good),
        duplicates=duplicates(records),
        dead_lettered=len(parked),
        lost=lost,
    )
    assert lost == 0
    assert handled == good
    # Nothing stalled: the consumer reached the end of every partition and committed it.
    assert committed(servers, group_id, topic, partitions) == end_offsets(servers, topic, partitions)


def test_a_receiver_failing_fewer_times_than_attempts_succeeds_and_one_always_failing_is_dead_lettered(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=2)
    dlt = f"{topic}-dlt"
    kafka_broker.create_topic(dlt)
    record = tmp_path / "records.txt"
    tries_file = tmp_path / "tries.txt"
    attempts, backoff, multiplier, max_backoff = 3, 0.8, 2.0, 5.0  # MULTIPLIER is the default
    event_type = "fault.injection.test"
    flaky, broken = 1, 3
    on_0 = [{"id": 0}, {"id": flaky, "fail_times": attempts - 1}, {"id": 2}, {"id": broken, "fail": True}, {"id": 4}]
    on_1 = [{"id": i} for i in range(10, 30)]
    headers = [("ce_type", event_type.encode())]
    produced = produce(servers, topic, on_0, key=lambda i: f"key-{on_0[i]['id']}", headers=headers, partition=0)
    produced += produce(servers, topic, on_1, key=lambda i: f"key-{on_1[i]['id']}", headers=headers, partition=1)

    env = {
        "KAFKA_FAILURE_POLICY": "dead-letter",
        "KAFKA_RETRY_ATTEMPTS": str(attempts),
        "KAFKA_RETRY_BACKOFF": str(backoff),
        "KAFKA_RETRY_MAX_BACKOFF": str(max_backoff),
        "TESTAPP_TRIES": str(tries_file),
        "TESTAPP_EVENT_TYPE": event_type,
    }
    consumer = consumers.start(servers, topic, record, "--idle-timeout", "6", group=group_id, env=env)
    assert consumer.wait(90) == 0, consumer.output()

    tries = read_tries(tries_file)
    records = read_records(record)
    topic_records = [r for r in records if r.kind == "topic"]
    parked = read_topic(servers, dlt)
    all_ids = {v["id"] for v in on_0 + on_1}

    # (a) Failed twice, handled on the third of three attempts, not dead-lettered.
    assert [t.outcome for t in tries if t.id == flaky] == ["failed", "failed", "ok"]
    assert [r.id for r in topic_records].count(flaky) == 1
    # (b) Tried exactly ATTEMPTS times, then dead-lettered with the failure described.
    assert [t.outcome for t in tries if t.id == broken] == ["failed"] * attempts
    assert broken not in {r.id for r in topic_records}
    assert [m.key() for m in parked] == [f"key-{broken}".encode()]
    parked_headers = headers_of(parked[0])
    assert parked_headers[HEADER_REASON] == REASON_RECEIVER_FAILED.encode()
    assert parked_headers[HEADER_ATTEMPTS] == str(attempts).encode()
    assert parked_headers[HEADER_RECEIVERS] == TOPIC_RECEIVER.encode()
    assert parked_headers[HEADER_EXCEPTION_CLASS] == b"RuntimeError"
    assert parked_headers[HEADER_EXCEPTION_MESSAGE] == f"message {broken} asked to fail".encode()
    assert (parked_headers[HEADER_PARTITION], parked_headers[HEADER_OFFSET]) == (b"0", b"3")
    assert parked_headers["ce_type"] == event_type.encode(), "the message's own headers were not kept"
    # The backoff between tries was respected (loosely: jitter is 10%, no upper bound on a busy machine).
    for ident in (flaky, broken):
        starts = [t.started for t in tries if t.id == ident]
        for attempt, (before, after) in enumerate(itertools.pairwise(starts), start=1):
            expected = min(max_backoff, backoff * multiplier ** (attempt - 1))
            assert after - before >= 0.8 * expected, f"id {ident}: try {attempt + 1} came {after - before:.2f}s later"
    # Only the failed receiver was called again: the event receiver saw every message exactly once.
    assert Counter(r.id for r in records if r.kind == "event") == Counter(all_ids)
    # Partition 0 kept its order: nothing after a message being retried was handled before it.
    assert [r.offset for r in topic_records if r.partition == 0] == [0, 1, 2, 4]

    handled = {r.id for r in topic_records}
    lost = len(all_ids - handled - {broken}) + (0 if parked else 1)
    figures(
        "receiver-failures",
        produced=produced,
        handled_distinct=len(handled),
        duplicates=duplicates(topic_records),
        dead_lettered=len(parked),
        lost=lost,
    )
    assert lost == 0
    assert committed(servers, group_id, topic, 2) == {0: 5, 1: 20}


def test_a_partition_revoked_while_its_message_waits_for_a_retry_is_consumed_again_when_assigned_back(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=2)
    record = tmp_path / "records.txt"
    tries_file = tmp_path / "tries.txt"
    # The head of each partition fails once per process, then waits a long backoff with its partition paused.
    per_partition = 10
    values = {p: [{"id": p * 100 + i, "fail_times": 1 if i == 0 else 0} for i in range(per_partition)] for p in (0, 1)}
    produced = sum(
        produce(servers, topic, values[p], key=lambda i, p=p: f"key-{values[p][i]['id']}", partition=p) for p in (0, 1)
    )
    env = {
        "KAFKA_RETRY_ATTEMPTS": "3",
        "KAFKA_RETRY_BACKOFF": "20",
        "KAFKA_RETRY_MAX_BACKOFF": "20",
        "TESTAPP_TRIES": str(tries_file),
    }

    first = consumers.start(servers, topic, record, group=group_id, env=env)
    wait_for(
        lambda: {t.partition for t in read_tries(tries_file) if t.outcome == "failed"} == {0, 1},
        timeout=60,
        what="both partitions' first message to fail and wait for its retry",
    )
    # A second member takes one of the paused partitions away; when it leaves, the partition comes back.
    second = consumers.start(servers, topic, record, group=group_id, env=env)
    wait_for(
        lambda: stable_split(servers, group_id, topic, 2, 2),
        timeout=60,
        what="the second member to take a partition",
        interval=0.5,
    )
    moved = wait_for(
        lambda: {t.partition for t in read_tries(tries_file) if t.pid == second.pid},
        timeout=60,
        what="the second member to try the head of the partition it took",
    )
    second.send(signal.SIGTERM)
    assert second.wait(15) == 0, second.output()
    back_at = time.monotonic()

    # The partition assigned back to the first member must flow again (it would stay paused for good).
    wanted = {v["id"] for p in moved for v in values[p]}
    wait_for(
        lambda: wanted <= handled_ids(record),
        timeout=40,
        what=f"the messages of partition {sorted(moved)}, assigned back to the first member, to be handled",
        interval=0.5,
    )
    print(f"(partition {sorted(moved)} flowed again {time.monotonic() - back_at:.1f}s after being assigned back)")
    everything = {v["id"] for p in (0, 1) for v in values[p]}
    wait_for(lambda: everything <= handled_ids(record), timeout=60, what="every message to be handled", interval=0.5)
    first.send(signal.SIGTERM)
    assert first.wait(15) == 0, first.output()

    records = topic_records(record)
    handled = {r.id for r in records}
    figures(
        "revoked-during-retry",
        produced=produced,
        handled_distinct=len(handled),
        duplicates=duplicates(records),
        dead_lettered=0,
        lost=len(everything - handled),
    )
    assert handled == everything
    assert committed(servers, group_id, topic, 2) == {0: per_partition, 1: per_partition}


def test_when_the_dead_letter_topic_is_missing_the_consumer_exits_3_without_committing_and_parks_after_a_restart(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=1)
    dlt = f"{topic}-dlt"
    record = tmp_path / "records.txt"
    broken = 2
    values = [{"id": i, "fail": i == broken} for i in range(6)]
    produced = produce(servers, topic, values)
    env = {
        "KAFKA_FAILURE_POLICY": "dead-letter",
        "KAFKA_RETRY_ATTEMPTS": "2",
        "KAFKA_RETRY_BACKOFF": "0.2",
        "KAFKA_DLT_TIMEOUT_MS": "3000",
    }

    first = consumers.start(servers, topic, record, group=group_id, env=env)
    assert first.wait(90) == EXIT_HANDLER_FAILED, first.output()
    assert "could not park" in first.output() and dlt in first.output()
    assert committed(servers, group_id, topic, 1) == {0: broken}
    assert sorted(r.id for r in read_records(record)) == [0, 1]

    kafka_broker.create_topic(dlt)
    second = consumers.start(servers, topic, record, "--idle-timeout", "4", group=group_id, env=env)
    assert second.wait(90) == 0, second.output()

    parked = read_topic(servers, dlt)
    assert [(m.key(), m.value()) for m in parked] == [(f"key-{broken}".encode(), json.dumps(values[broken]).encode())]
    headers = headers_of(parked[0])
    assert (headers[HEADER_OFFSET], headers[HEADER_ATTEMPTS]) == (str(broken).encode(), b"2")
    assert headers[HEADER_REASON] == REASON_RECEIVER_FAILED.encode()
    records = topic_records(record)
    handled = {r.id for r in records}
    lost = len(set(range(6)) - handled - {broken}) + (0 if parked else 1)
    figures(
        "failed-dead-letter-write",
        produced=produced,
        handled_distinct=len(handled),
        duplicates=duplicates(records),
        dead_lettered=len(parked),
        lost=lost,
    )
    assert lost == 0
    assert handled == {0, 1, 3, 4, 5}
    assert duplicates(records) == 0
    assert committed(servers, group_id, topic, 1) == {0: 6}


# -- replaying parked messages --------------------------------------------------------------------


def test_replay_dead_letters_republishes_parked_messages_with_their_key_and_headers_once(
    kafka_settings, kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=1)
    dlt = f"{topic}-dlt"
    kafka_broker.create_topic(dlt)
    record = tmp_path / "records.txt"
    failing = {1, 3}
    own_headers = [("trace-id", b"trace-42"), ("origin", b"fault-injection")]
    values = [{"id": i, "fail": i in failing} for i in range(5)]
    produced = produce(servers, topic, values, headers=own_headers)
    env = {"KAFKA_FAILURE_POLICY": "dead-letter", "KAFKA_RETRY_ATTEMPTS": "1"}

    parking = consumers.start(servers, topic, record, "--idle-timeout", "3", group=group_id, env=env)
    assert parking.wait(60) == 0, parking.output()
    assert len(read_topic(servers, dlt)) == len(failing)
    replay_group = f"{dlt}-replay"

    def replay(**options) -> str:
        out = io.StringIO()
        call_command("replay_dead_letters", topic=dlt, stdout=out, **options)
        return out.getvalue()

    dry = replay(dry_run=True)
    assert f"Would replay {len(failing)} message(s) from {dlt}." in dry
    assert end_offsets(servers, topic, 1) == {0: 5}, "a dry run wrote to the topic"
    assert committed(servers, replay_group, dlt, 1) == {0: -1001}, "a dry run committed"

    assert f"Replayed {len(failing)} message(s) from {dlt}." in replay()
    assert committed(servers, replay_group, dlt, 1) == {0: len(failing)}
    copies = [m for m in read_topic(servers, topic) if m.offset() >= 5]
    assert [(m.key(), m.value(), m.headers()) for m in copies] == [
        (f"key-{i}".encode(), json.dumps(values[i]).encode(), own_headers) for i in sorted(failing)
    ]
    assert not any(name.startswith(HEADER_PREFIX) for m in copies for name, _ in m.headers())

    assert "Replayed 0 message(s)" in replay()
    assert "Would replay 0 message(s)" in replay(dry_run=True)
    assert end_offsets(servers, topic, 1) == {0: 5 + len(failing)}, "a second replay republished"

    # The receiver is fixed: the replayed copies are handled like any message.
    fixed = consumers.start(
        servers, topic, record, "--idle-timeout", "3", group=group_id, env={**env, "TESTAPP_FIXED": "1"}
    )
    assert fixed.wait(60) == 0, fixed.output()
    records = topic_records(record)
    handled = {r.id for r in records}
    lost = len(set(range(5)) - handled)
    figures(
        "replay",
        produced=produced,
        handled_distinct=len(handled),
        duplicates=duplicates(records),
        dead_lettered=len(failing),
        lost=lost,
    )
    assert lost == 0
    assert sorted((r.pid, r.offset, r.id) for r in records if r.pid == fixed.pid) == [
        (fixed.pid, 5, 1),
        (fixed.pid, 6, 3),
    ]
