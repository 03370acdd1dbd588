"""One-time replays: --from-beginning, --offset-time and --reset-only, against the real broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer
from django.core.management import call_command
from django.core.management.base import CommandError

from kafka_consumer_app.signals import topic_signal

from .kafka_utils import committed

pytestmark = [pytest.mark.broker, pytest.mark.django_db]

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def topic_with_history(kafka_settings, kafka_broker, request):
    """A 2-partition topic holding messages n=0..5, produced at START + n hours, and a receiver recording n."""
    # Kept whatever their age: the test broker deletes messages older than 2 hours (log.retention.hours) at
    # its next retention check, and these are months old, so a check between producing and consuming
    # left the consumer nothing to read.
    topic = f"{request.node.name.replace('_', '-')[:60]}-{uuid.uuid4().hex[:6]}"
    kafka_broker.create_topic(topic, 2, config={"retention.ms": "-1"})
    producer = Producer({"bootstrap.servers": kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]})
    for n in range(6):
        stamp = int((START + timedelta(hours=n)).timestamp() * 1000)
        producer.produce(topic, f'{{"n": {n}}}'.encode(), partition=n % 2, timestamp=stamp)
    assert producer.flush(30) == 0
    received: list[int] = []

    def receiver(sender, message, **kwargs):
        received.append(message.value["n"])

    topic_signal(topic).connect(receiver, weak=False)
    yield topic, received
    topic_signal(topic).disconnect(receiver)


def test_offset_time_redelivers_exactly_the_messages_from_that_time_on(topic_with_history):
    topic, received = topic_with_history
    call_command("consume_events", topic=topic, max_messages=6)
    received.clear()

    call_command("consume_events", topic=topic, offset_time=(START + timedelta(hours=3)).isoformat(), idle_timeout=3)

    assert sorted(received) == [3, 4, 5]


def test_from_beginning_replays_everything_once_then_consumes_normally(topic_with_history):
    topic, received = topic_with_history
    call_command("consume_events", topic=topic, max_messages=6)
    received.clear()

    call_command("consume_events", topic=topic, from_beginning=True, max_messages=6)
    call_command("consume_events", topic=topic, idle_timeout=3)

    assert sorted(received) == [0, 1, 2, 3, 4, 5]


def test_reset_only_commits_the_new_positions_and_handles_nothing(topic_with_history, kafka_settings):
    topic, received = topic_with_history
    group = kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    call_command("consume_events", topic=topic, max_messages=6)
    received.clear()

    call_command("consume_events", topic=topic, offset_time="2026-01-01T16:00:00", reset_only=True)

    # n=4 (partition 0, offset 2) and n=5 (partition 1, offset 2) are at or after 16:00 UTC.
    assert committed(kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"], group, topic, 2) == {0: 2, 1: 2}
    assert received == []


def test_reset_only_without_a_position_is_refused_with_one_line(kafka_settings, topic_with_history):
    topic, _ = topic_with_history

    with pytest.raises(CommandError, match="--reset-only needs --from-beginning or --offset-time") as raised:
        call_command("consume_events", topic=topic, reset_only=True)

    assert raised.value.returncode == 1


def test_an_offset_time_that_is_not_iso_8601_is_refused_with_one_line(kafka_settings, topic_with_history):
    topic, _ = topic_with_history

    with pytest.raises(CommandError, match="is not an ISO 8601 time") as raised:
        call_command("consume_events", topic=topic, offset_time="yesterday")

    assert raised.value.returncode == 1 and "\n" not in str(raised.value)
