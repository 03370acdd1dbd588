"""Messages reach receivers by topic and by CloudEvents ce_type, through a real broker."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from kafka_consumer_app.message import Message
from kafka_consumer_app.signals import event_signal, topic_signal

from .kafka_utils import produce

pytestmark = [pytest.mark.broker, pytest.mark.django_db]


@pytest.fixture
def received():
    """Connect receivers to a test's signals and disconnect them afterwards; collect what they get."""
    got: dict[str, list[Message]] = {}
    connected = []

    def connect(signal, name):
        def receiver(sender, message, **kwargs):
            got.setdefault(name, []).append(message)

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))

    yield got, connect
    for signal, receiver in connected:
        signal.disconnect(receiver)


def test_topic_receivers_get_every_message_of_their_topic_with_its_coordinates(kafka_settings, make_topic, received):
    got, connect = received
    topic = make_topic()
    connect(topic_signal(topic), "topic")
    produce(kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"], topic, [{"n": i} for i in range(5)])

    call_command("consume_events", topic=topic, max_messages=5)

    messages = got["topic"]
    assert [m.value for m in messages] == [{"n": i} for i in range(5)]
    assert [m.offset for m in messages] == list(range(5))
    assert messages[0].key == "key-0" and messages[0].topic == topic and messages[0].partition == 0
    assert messages[0].timestamp is not None and messages[0].timestamp.tzinfo is not None


def test_event_receivers_get_only_messages_whose_ce_type_matches(kafka_settings, make_topic, received):
    got, connect = received
    topic = make_topic()
    connect(topic_signal(topic), "topic")
    connect(event_signal("test.thing.created.v1"), "created")
    connect(event_signal("test.thing.deleted.v1"), "deleted")
    servers = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    produce(servers, topic, [{"n": 1}], headers=[("ce_type", b"test.thing.created.v1")])
    produce(servers, topic, [{"n": 2}])

    call_command("consume_events", topic=topic, max_messages=2)

    assert [m.value for m in got["topic"]] == [{"n": 1}, {"n": 2}]
    assert [(m.value, m.event_type) for m in got["created"]] == [({"n": 1}, "test.thing.created.v1")]
    assert "deleted" not in got
