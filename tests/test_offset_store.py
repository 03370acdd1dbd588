"""
OFFSET_STORE "database": the receivers' writes and the partition's position in one transaction.

In-process on the real broker and the suite's SQLite database: rows written exactly once, a failed
attempt rolled back (its retry runs every receiver again), a partition starting at its database
position when that is past Kafka's commit, a reset moving the database positions, and the refusals.
The crash tests against a real PostgreSQL server are in tests/test_offset_store_chaos.py.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from kafka_consumer_app.exceptions import BatchFailed
from kafka_consumer_app.models import ConsumedPosition
from kafka_consumer_app.settings import topics
from tests.testapp.models import HandledRow

from .kafka_utils import committed, produce
from .test_batches import connect_batch
from .test_failures import connect

__all__ = ["connect", "connect_batch"]  # fixtures, used by name

pytestmark = pytest.mark.django_db(transaction=True)


def configure(settings, topic, **overrides):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "TOPICS": {topic: {"OFFSET_STORE": "database", **overrides}}}


def write_row(sender, message, **kwargs):
    HandledRow.objects.create(topic=message.topic, partition=message.partition, offset=message.offset)


def rows(topic):
    return sorted(HandledRow.objects.filter(topic=topic).values_list("partition", "offset"))


def positions(topic):
    return dict(ConsumedPosition.objects.filter(topic=topic).values_list("partition", "next_offset"))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"OFFSET_STORE": "postgres"}, "E030"),
        ({"OFFSET_STORE": "database", "DATABASE": "replica"}, "E031"),
        ({"OFFSET_STORE": "database", "CONCURRENCY": 4}, "E032"),
        ({"OFFSET_STORE": "database", "CONCURRENCY": 4, "ORDERING": "none"}, "E032"),
    ],
)
def test_settings_the_database_store_cannot_honour_are_refused_with_one_line(settings, overrides, expected):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "TOPICS": {"orders": overrides}}
    found = topics.problems(topic="orders")
    assert found and found[0].id == f"kafka_consumer_app.{expected}", found
    assert "\n" not in found[0].one_line()


def test_concurrency_with_partition_ordering_is_accepted(settings):
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "TOPICS": {"orders": {"OFFSET_STORE": "database", "CONCURRENCY": 4, "ORDERING": "partition"}},
    }
    assert topics.problems(topic="orders") == []
    assert topics.get_topic_config("orders").offsets.in_database


@pytest.mark.broker
def test_each_message_writes_its_row_and_moves_its_partition_position_in_one_transaction(
    kafka_settings, kafka_broker, make_topic, connect, group_id
):
    # Worker threads (CONCURRENCY above 1) need a database server: SQLite's shared in-memory database
    # locks whole tables. tests/test_offset_store_chaos.py runs them on PostgreSQL.
    topic = make_topic(partitions=2)
    configure(kafka_settings, topic)
    connect(topic, write_row)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(40)])

    call_command("consume_events", topic=topic, max_messages=40)

    handled = rows(topic)
    assert len(handled) == 40 and len(set(handled)) == 40
    ends = {partition: max(offset for p, offset in handled if p == partition) + 1 for partition, _ in handled}
    assert positions(topic) == ends, "the database position is not one past each partition's last message"
    assert committed(kafka_broker.bootstrap_servers, group_id, topic, 2) == ends, "Kafka's commit is not kept too"


@pytest.mark.broker
def test_a_failed_attempt_rolls_back_every_receivers_writes_and_the_retry_runs_them_all_again(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic()
    configure(kafka_settings, topic, RETRY={"ATTEMPTS": 3, "INITIAL_BACKOFF": 0.1, "JITTER": 0})
    tries = {"n": 0}

    def flaky(sender, message, **kwargs):
        tries["n"] += 1
        if message.offset == 1 and tries["n"] < 4:  # the first try of offset 1 fails, after write_row wrote
            raise RuntimeError("the service's API timed out")

    connect(topic, write_row)
    connect(topic, flaky)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(3)])

    call_command("consume_events", topic=topic, max_messages=3)

    assert rows(topic) == [(0, 0), (0, 1), (0, 2)], "a failed attempt's write was kept, or a retry skipped write_row"
    assert positions(topic) == {0: 3}


@pytest.mark.broker
def test_a_partition_starts_at_its_database_position_when_that_is_past_the_commit_in_kafka(
    kafka_settings, kafka_broker, make_topic, connect, group_id
):
    # As after a crash between the database's commit and Kafka's: the rows of offsets 0-4 were written.
    topic = make_topic()
    configure(kafka_settings, topic)
    ConsumedPosition.objects.create(group=group_id, topic=topic, partition=0, next_offset=5)
    seen = []
    connect(topic, lambda sender, message, **kwargs: seen.append(message.offset))
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(8)])

    call_command("consume_events", topic=topic, max_messages=3)

    assert seen == [5, 6, 7]
    assert positions(topic) == {0: 8}


@pytest.mark.broker
def test_from_beginning_moves_the_database_positions_back_too(
    kafka_settings, kafka_broker, make_topic, connect, group_id
):
    topic = make_topic()
    configure(kafka_settings, topic)
    connect(topic, write_row)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(4)])
    call_command("consume_events", topic=topic, max_messages=4)
    assert positions(topic) == {0: 4}

    call_command("consume_events", topic=topic, max_messages=4, from_beginning=True)

    assert rows(topic) == [(0, 0), (0, 0), (0, 1), (0, 1), (0, 2), (0, 2), (0, 3), (0, 3)]
    assert positions(topic) == {0: 4}


@pytest.mark.broker
def test_reset_only_moves_the_database_positions(kafka_settings, kafka_broker, make_topic, connect, group_id):
    topic = make_topic(partitions=2)
    configure(kafka_settings, topic)
    ConsumedPosition.objects.create(group=group_id, topic=topic, partition=0, next_offset=3)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(6)])

    call_command("consume_events", topic=topic, from_beginning=True, reset_only=True)

    assert positions(topic) == {0: 0, 1: 0}


@pytest.mark.broker
def test_a_batch_writes_its_rows_and_moves_its_partition_position_in_one_transaction(
    kafka_settings, kafka_broker, make_topic, connect_batch
):
    topic = make_topic(partitions=2)
    configure(kafka_settings, topic, BATCH_SIZE=25, BATCH_WAIT=0.2)
    sizes = []

    def bulk(sender, messages, **kwargs):
        sizes.append(len(messages))
        HandledRow.objects.bulk_create(
            HandledRow(topic=m.topic, partition=m.partition, offset=m.offset) for m in messages
        )

    connect_batch(topic, bulk)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(200)])

    call_command("consume_events", topic=topic, max_messages=200)

    handled = rows(topic)
    assert len(handled) == 200 and len(set(handled)) == 200 and max(sizes) == 25
    ends = {partition: max(offset for p, offset in handled if p == partition) + 1 for partition, _ in handled}
    assert positions(topic) == ends


@pytest.mark.broker
def test_batch_failed_rolls_back_the_batch_runs_the_messages_before_it_again_then_retries_it_alone(
    kafka_settings, kafka_broker, make_topic, connect_batch
):
    topic = make_topic()
    configure(kafka_settings, topic, BATCH_SIZE=10, BATCH_WAIT=2, RETRY={"ATTEMPTS": 3, "INITIAL_BACKOFF": 0.1})
    calls = []

    def one_by_one(sender, messages, **kwargs):
        calls.append([m.offset for m in messages])
        for index, message in enumerate(messages):
            if message.offset == 4 and len(calls) == 1:  # offset 4 fails in the first batch only
                raise BatchFailed(index, RuntimeError("the inventory service timed out"))
            HandledRow.objects.create(topic=message.topic, partition=message.partition, offset=message.offset)

    connect_batch(topic, one_by_one)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(10)])

    call_command("consume_events", topic=topic, max_messages=10)

    assert rows(topic) == [(0, offset) for offset in range(10)], "a row was written twice or lost"
    assert calls[:3] == [list(range(10)), [0, 1, 2, 3], [4]], calls
    assert sorted(offset for call in calls[3:] for offset in call) == [5, 6, 7, 8, 9]
    assert positions(topic) == {0: 10}
