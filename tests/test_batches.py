"""
Batch receivers (``batch_signal``) on the real broker: batch sizes and order, partial batches,
``BatchFailed`` splits, whole-batch retries and give-ups, the startup refusals, and batches of
several partitions in parallel. Plus the pieces that need no broker: the batcher and the split.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kafka_consumer_app.engine.batch_dispatch import split_at
from kafka_consumer_app.engine.batches import REASON_BATCH_FAILED, Batcher
from kafka_consumer_app.engine.consumer import EventConsumer, RunOptions
from kafka_consumer_app.engine.dead_letters import HEADER_ATTEMPTS, HEADER_OFFSET, HEADER_REASON
from kafka_consumer_app.engine.dispatch import ReceiverFailure
from kafka_consumer_app.engine.shutdown import StopRequest
from kafka_consumer_app.engine.tracking import decode_metadata
from kafka_consumer_app.exceptions import BatchFailed
from kafka_consumer_app.settings.topics import get_topic_config
from kafka_consumer_app.signals import batch_signal, topic_signal

from .kafka_utils import committed, produce, read_topic, wait_for
from .test_concurrency import committed_metadata, configure

pytestmark = pytest.mark.django_db


@pytest.fixture
def connect_batch():
    """Connect batch receivers for one test and disconnect them afterwards."""
    connected = []

    def do_connect(topic, function):
        batch_signal(topic).connect(function, weak=False)
        connected.append((topic, function))
        return function

    yield do_connect
    for topic, function in connected:
        batch_signal(topic).disconnect(function)


def offsets(messages):
    return [message.offset for message in messages]


# -- no broker ----------------------------------------------------------------------------------


def test_the_batcher_sends_a_full_batch_at_once_and_a_partial_one_when_its_wait_is_over():
    now = {"t": 0.0}
    batcher = Batcher(size=3, wait=0.5, clock=lambda: now["t"])

    assert [batcher.add(0, offset) for offset in (10, 11)] == [None, None]
    assert batcher.add(1, 20) is None
    assert batcher.add(0, 12) == [10, 11, 12]
    assert batcher.due() == [] and batcher.next_due() == 0.5
    now["t"] = 0.5
    assert batcher.due() == [(1, [20])] and len(batcher) == 0


def test_the_batcher_takes_a_run_of_messages_cuts_full_batches_and_restarts_the_wait_of_the_rest():
    now = {"t": 0.0}
    batcher = Batcher(size=3, wait=0.5, clock=lambda: now["t"])

    assert batcher.extend(0, [1, 2]) == [] and batcher.next_due() == 0.5
    now["t"] = 0.2
    assert batcher.extend(0, [3]) == [[1, 2, 3]] and len(batcher) == 0  # the open batch filled
    assert batcher.extend(0, [4, 5, 6, 7, 8, 9, 10]) == [[4, 5, 6], [7, 8, 9]]
    assert batcher.next_due() == 0.7, "the message after the full batches waits from now"
    now["t"] = 0.4
    assert batcher.extend(0, [11]) == [] and batcher.next_due() == 0.7, "an open batch keeps its wait"
    assert batcher.extend(1, []) == [] and len(batcher) == 1
    now["t"] = 0.7
    assert batcher.due() == [(0, [10, 11])]


def test_a_split_is_the_lowest_index_when_every_failure_is_a_batch_failed_in_range():
    def failure(error):
        return ReceiverFailure(batch_signal("split"), print, error)

    cause = ValueError("bad row")
    assert split_at([failure(BatchFailed(4, cause)), failure(BatchFailed(2, cause))], 5) == 2
    assert split_at([failure(BatchFailed(2, cause)), failure(RuntimeError())], 5) is None
    assert split_at([failure(BatchFailed(5, cause))], 5) is None
    assert split_at([failure(BatchFailed(-1, cause))], 5) is None


def test_a_topic_with_no_receivers_is_refused_naming_both_signals(kafka_settings, make_topic):
    topic = make_topic()

    with pytest.raises(CommandError, match=rf"no receiver is connected for topic '{topic}'") as raised:
        call_command("consume_events", topic=topic, max_messages=1)

    assert f"batch_signal('{topic}')" in str(raised.value) and "--allow-no-handlers" in str(raised.value)


def test_a_topic_with_batch_and_per_message_receivers_is_refused_with_one_line(
    kafka_settings, make_topic, connect_batch
):
    topic = make_topic()
    connect_batch(topic, lambda sender, messages, **kwargs: None)

    def per_message(sender, message, **kwargs):
        pass

    topic_signal(topic).connect(per_message, weak=False)
    try:
        with pytest.raises(CommandError) as raised:
            call_command("consume_events", topic=topic, max_messages=1)
    finally:
        topic_signal(topic).disconnect(per_message)

    text = str(raised.value)
    assert "\n" not in text and f"topic '{topic}'" in text and "batch_signal only" in text, text


# -- against the broker -------------------------------------------------------------------------


@pytest.mark.broker
def test_a_batch_holds_at_most_batch_size_messages_of_one_partition_in_offset_order(
    kafka_settings, kafka_broker, make_topic, connect_batch
):
    topic = make_topic(partitions=2)
    configure(kafka_settings, topic, BATCH_SIZE=40, BATCH_WAIT=2)  # CONCURRENCY 1: the workers run batches too
    batches = []

    def receiver(sender, messages, signal, **kwargs):
        assert signal is batch_signal(topic)
        batches.append(list(messages))

    connect_batch(topic, receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(300)])

    call_command("consume_events", topic=topic, max_messages=300)

    by_partition = defaultdict(list)
    for batch in batches:
        assert 1 <= len(batch) <= 40
        assert len({message.partition for message in batch}) == 1, "a batch mixed partitions"
        assert offsets(batch) == list(range(batch[0].offset, batch[0].offset + len(batch))), "not in offset order"
        by_partition[batch[0].partition].extend(offsets(batch))
    assert sum(len(batch) for batch in batches) == 300
    for partition, seen in by_partition.items():
        assert seen == list(range(len(seen))), f"partition {partition}'s batches came out of order"
    assert max(len(batch) for batch in batches) == 40, "no batch was ever full"


@pytest.mark.broker
def test_a_partial_batch_goes_out_after_batch_wait(kafka_settings, kafka_broker, make_topic, connect_batch):
    topic = make_topic()
    configure(kafka_settings, topic, BATCH_SIZE=100, BATCH_WAIT=0.3)
    batches = []
    connect_batch(topic, lambda sender, messages, **kwargs: batches.append(offsets(messages)))
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(5)])
    stop = StopRequest()
    consumer = EventConsumer(get_topic_config(topic), RunOptions(), stop=stop)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        # Nothing more comes: only BATCH_WAIT sends the batch of five.
        wait_for(lambda: sum(map(len, batches)) >= 5, timeout=30, what="the partial batch")
    finally:
        stop.set("test over")
        thread.join(30)
    assert not thread.is_alive()
    assert sorted(offset for batch in batches for offset in batch) == [0, 1, 2, 3, 4]
    assert all(len(batch) < 100 for batch in batches)


@pytest.mark.broker
def test_batch_failed_commits_the_messages_before_it_retries_its_message_alone_then_sends_the_rest(
    kafka_settings, kafka_broker, make_topic, connect_batch
):
    topic = make_topic()
    servers, group = kafka_broker.bootstrap_servers, kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    configure(kafka_settings, topic, BATCH_SIZE=10, BATCH_WAIT=2, RETRY={"ATTEMPTS": 3, "INITIAL_BACKOFF": 0.2})
    calls: list[list[int]] = []
    commits_seen: list[tuple[int, set[int]]] = []

    def receiver(sender, messages, **kwargs):
        calls.append(offsets(messages))
        values = [message.value["n"] for message in messages]
        if 4 in values and len(messages) > 1:
            raise BatchFailed(values.index(4), ValueError("row 4 is bad"))
        if values == [4]:
            # Retried alone: by now exactly the messages before it are committed, nothing above it.
            def seen():
                offset, metadata = committed_metadata(servers, group, topic, 1)[0]
                commits_seen.append((offset, decode_metadata(offset, metadata)))
                return commits_seen[-1] == (4, set())

            wait_for(seen, timeout=30, what="the commit of the messages before the failed one", interval=0.2)

    connect_batch(topic, receiver)
    produce(servers, topic, [{"n": i} for i in range(10)])

    call_command("consume_events", topic=topic, max_messages=10)

    failing = next(index for index, call in enumerate(calls) if 4 in call and len(call) > 1)
    split = calls[failing].index(4)
    assert calls[failing + 1] == [4], "the failed message was not retried alone"
    assert calls[failing + 2] == calls[failing][split + 1 :], "the rest did not come again as one new batch"
    handled = [offset for call in calls[:failing] for offset in call] + calls[failing][:split]
    handled += [offset for call in calls[failing + 1 :] for offset in call]
    assert sorted(handled) == list(range(10)), "a message was handled twice, or never"
    assert commits_seen[-1] == (4, set())
    assert committed(servers, group, topic, 1) == {0: 10}


@pytest.mark.broker
def test_any_other_exception_retries_the_whole_batch_then_parks_each_message(
    kafka_settings, kafka_broker, make_topic, connect_batch
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    configure(
        kafka_settings,
        topic,
        BATCH_SIZE=6,
        BATCH_WAIT=2,
        FAILURE_POLICY="dead-letter",
        RETRY={"ATTEMPTS": 2, "INITIAL_BACKOFF": 0.2},
    )
    calls = []

    def receiver(sender, messages, **kwargs):
        calls.append(offsets(messages))
        raise RuntimeError("the database is down")

    connect_batch(topic, receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(6)])

    call_command("consume_events", topic=topic, max_messages=6)

    assert len(calls) % 2 == 0 and all(calls[i] == calls[i + 1] for i in range(0, len(calls), 2)), calls
    assert [offset for call in calls[::2] for offset in call] == list(range(6))
    parked = read_topic(kafka_broker.bootstrap_servers, f"{topic}-dlt", 6)
    assert sorted(int(dict(m.headers())[HEADER_OFFSET]) for m in parked) == list(range(6))
    assert {(dict(m.headers())[HEADER_REASON], dict(m.headers())[HEADER_ATTEMPTS]) for m in parked} == {
        (REASON_BATCH_FAILED.encode(), b"2")
    }
    assert committed(kafka_broker.bootstrap_servers, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 6}


@pytest.mark.broker
def test_any_other_exception_retries_the_whole_batch_then_stops_with_nothing_of_it_committed(
    kafka_settings, kafka_broker, make_topic, connect_batch
):
    topic = make_topic()
    configure(kafka_settings, topic, BATCH_SIZE=6, BATCH_WAIT=2, FAILURE_POLICY="stop", RETRY={"ATTEMPTS": 2})
    calls = []

    def receiver(sender, messages, **kwargs):
        calls.append(offsets(messages))
        raise RuntimeError("the database is down")

    connect_batch(topic, receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(6)])

    with pytest.raises(CommandError, match=r"failed on .* after 2 attempt\(s\)"):
        call_command("consume_events", topic=topic, max_messages=6)

    assert len(calls) == 2 and calls[0] == calls[1] and calls[0][0] == 0
    group = kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    offset, metadata = committed_metadata(kafka_broker.bootstrap_servers, group, topic, 1)[0]
    assert offset <= 0 and decode_metadata(max(offset, 0), metadata) == set(), (offset, metadata)


@pytest.mark.broker
def test_batches_of_several_partitions_run_in_parallel_and_one_partition_runs_one_batch_at_a_time(
    kafka_settings, kafka_broker, make_topic, connect_batch
):
    topic = make_topic(partitions=4)
    configure(kafka_settings, topic, CONCURRENCY=4, BATCH_SIZE=20, BATCH_WAIT=0.2)
    lock = threading.Lock()
    state = SimpleNamespace(running=0, most=0, gave_up=False)
    met = threading.Condition(lock)
    runs: dict[int, list[tuple[int, float, float]]] = defaultdict(list)

    def receiver(sender, messages, **kwargs):
        started = time.monotonic()
        with met:
            state.running += 1
            state.most = max(state.most, state.running)
            met.notify_all()
            # Wait (once, a while at most) for a batch of another partition to run alongside this one.
            if not state.gave_up and not met.wait_for(lambda: state.most > 1, timeout=10):
                state.gave_up = True
        time.sleep(0.01)
        ended = time.monotonic()
        with met:
            state.running -= 1
            runs[messages[0].partition].append((messages[0].offset, started, ended))

    connect_batch(topic, receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(400)])

    call_command("consume_events", topic=topic, max_messages=400)

    assert state.most > 1, "no two batches ever ran at once"
    for partition, intervals in runs.items():
        assert [offset for offset, _, _ in intervals] == sorted(offset for offset, _, _ in intervals)
        for (_, _, ended), (_, started, _) in itertools.pairwise(intervals):
            assert started >= ended, f"two batches of partition {partition} overlapped"


def count_pauses(monkeypatch) -> list[int]:
    """Record every partition the workers pause (the engine's own decision, taken before the client's pause)."""
    from kafka_consumer_app.engine.workers import Workers

    paused: list[int] = []
    original = Workers._pause

    def pause(self, client, partition):
        paused.append(partition)
        original(self, client, partition)

    monkeypatch.setattr(Workers, "_pause", pause)
    return paused


@pytest.mark.broker
def test_a_batch_receiver_that_keeps_up_never_has_its_partition_paused(
    kafka_settings, kafka_broker, make_topic, connect_batch, monkeypatch
):
    # The loop takes in the prefetched messages far faster than batches run, so MAX_QUEUED (200) is
    # reached at once, over and over; each time, the workers make room within ROOM_WAIT.
    topic = make_topic()
    configure(kafka_settings, topic, BATCH_SIZE=20, BATCH_WAIT=0.5, MAX_QUEUED=200)
    paused = count_pauses(monkeypatch)
    seen = []
    connect_batch(topic, lambda sender, messages, **kwargs: seen.extend(offsets(messages)))
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(6000)])

    call_command("consume_events", topic=topic, max_messages=6000)

    assert sorted(seen) == list(range(6000))
    # Without the wait, every 100 messages taken in paused the partition (about 60 pauses here).
    assert len(paused) <= 3, f"the partition paused {len(paused)} times under a receiver that keeps up"


@pytest.mark.broker
def test_a_slow_batch_receiver_has_its_partition_paused_at_max_queued(
    kafka_settings, kafka_broker, make_topic, connect_batch, monkeypatch
):
    topic = make_topic()
    configure(kafka_settings, topic, BATCH_SIZE=20, BATCH_WAIT=0.5, MAX_QUEUED=200)
    paused = count_pauses(monkeypatch)

    def slow(sender, messages, **kwargs):
        time.sleep(0.1)  # 20 messages per 0.1 s: a quarter of MAX_QUEUED takes 0.25 s, past ROOM_WAIT

    connect_batch(topic, slow)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(1000)])

    call_command("consume_events", topic=topic, max_messages=600)

    assert paused, "a receiver far slower than the fetches never paused its partition"
