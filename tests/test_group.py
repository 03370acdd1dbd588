"""Several consume_events processes in one consumer group, against a real broker."""

from __future__ import annotations

import itertools
import signal

import pytest

from .kafka_utils import (
    duplicates,
    group_assignment,
    produce,
    read_records,
    wait_for,
)

pytestmark = pytest.mark.broker

PARTITIONS = 4
PER_PARTITION = 25


def test_two_consumers_split_the_partitions_and_the_survivor_takes_over_when_one_is_stopped(
    kafka_broker, make_topic, group_id, tmp_path, group_protocol, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=PARTITIONS)
    record = tmp_path / "records.txt"
    ids = itertools.count()

    def produce_batch() -> set[int]:
        """Produce PER_PARTITION messages on every partition; return their ids."""
        batch = set()
        for partition in range(PARTITIONS):
            values = [{"id": next(ids)} for _ in range(PER_PARTITION)]
            produce(servers, topic, values, partition=partition)
            batch |= {value["id"] for value in values}
        return batch

    def handled(batch: set[int]) -> list:
        return [r for r in read_records(record) if r.id in batch]

    first = consumers.start(servers, topic, record, group=group_id)
    second = consumers.start(servers, topic, record, group=group_id)

    def split_evenly():
        assignment = group_assignment(servers, group_id, topic)
        return assignment and len(assignment) == 2 and all(assignment) and set.union(*assignment) == set(range(4))

    wait_for(split_evenly, timeout=60, what="both members to hold partitions in a stable group", interval=0.5)

    steady = produce_batch()
    wait_for(lambda: {r.id for r in handled(steady)} == steady, timeout=60, what="the first batch to be handled")
    partitions_by_pid = {
        pid: {r.partition for r in records}
        for pid, records in itertools.groupby(sorted(handled(steady), key=lambda r: r.pid), key=lambda r: r.pid)
    }
    assert set(partitions_by_pid) == {first.pid, second.pid}
    assert partitions_by_pid[first.pid].isdisjoint(partitions_by_pid[second.pid])
    assert partitions_by_pid[first.pid] | partitions_by_pid[second.pid] == set(range(PARTITIONS))

    first.send(signal.SIGTERM)
    assert first.wait(15) == 0, first.output()

    after = produce_batch()
    # The stopped member left the group, so the survivor takes over at once, well before the 45 s session
    # timeout after which a member that vanished without leaving would be evicted.
    wait_for(
        lambda: {r.id for r in handled(after)} == after, timeout=20, what="the survivor to handle the second batch"
    )
    assert {r.pid for r in handled(after)} == {second.pid}
    assert {r.partition for r in handled(after)} == set(range(PARTITIONS))

    second.send(signal.SIGTERM)
    assert second.wait(15) == 0, second.output()
    records = read_records(record)
    assert {r.id for r in records} == steady | after
    assert duplicates(records) == 0
