"""
Avro topics against a real schema registry (Apicurio Registry's Confluent API) and the real broker:
the registry down when the consumer starts, going down mid-stream, too slow to answer, refusing a
schema id, and a URL that is not the registry's API.

The rule under test (see kafka_consumer_app.engine.avro): a registry that cannot be reached or
does not answer in time, or a URL that is no registry, stops the consumer with one line and
exit 1, the message neither committed nor parked; the registry's own "unknown schema" answer
makes the message malformed (dead-lettered). Schemas already fetched stay cached, so an outage
only matters for new schema ids.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from django.core.management import call_command
from django.core.management.base import CommandError

from kafka_consumer_app.engine.dead_letters import HEADER_EXCEPTION_MESSAGE, HEADER_REASON
from kafka_consumer_app.exceptions import EXIT_CONFIGURATION
from kafka_consumer_app.testing.registry import API_PATH, LocalSchemaRegistry

from .kafka_utils import committed, produce, read_records, read_topic, report_figures, settings_env, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.django_db]

SECRET = "registry-s3cret"


def schema(*extra_fields: dict[str, Any]) -> str:
    """An Order record schema: an ``id`` (which the test app records) and ``extra_fields``."""
    fields = [{"name": "id", "type": "long"}, *extra_fields]
    return json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": fields})


ORDER = schema()
#: A second version of ORDER, with another schema id.
ORDER_V2 = schema({"name": "note", "type": "string", "default": ""})


def serialize(url: str, topic: str, text: str, values: list[dict[str, Any]]) -> list[bytes]:
    """Register ``text`` under the topic's value subject, as a producer does, and serialize ``values`` with it."""
    serializer = AvroSerializer(SchemaRegistryClient({"url": url}), text)
    context = SerializationContext(topic, MessageField.VALUE)
    return [serializer(value, context) for value in values]


def free_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stderr_lines(output: str) -> list[str]:
    """The lines of a process's output that are not log records (which start with a date)."""
    return [line for line in output.splitlines() if line.strip() and not line[:4].isdigit()]


def avro_topics(topic: str) -> dict[str, dict[str, str]]:
    """TOPICS for one Avro topic whose failures are dead-lettered (so that parking would show)."""
    return {topic: {"DESERIALIZER": "avro", "FAILURE_POLICY": "dead-letter"}}


def size(bootstrap: str, topic: str) -> int:
    """How many messages partition 0 of ``topic`` holds."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"size-{uuid.uuid4().hex[:6]}"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=20)[1])
    finally:
        consumer.close()


@pytest.fixture
def own_registry() -> Iterator[LocalSchemaRegistry]:
    """A registry of this test's own, which the test may stop (the session's registry stays up)."""
    registry = LocalSchemaRegistry()
    try:
        registry.start()
        yield registry
    finally:
        registry.cleanup()


def test_a_consumer_started_while_the_registry_is_down_exits_1_with_one_line_and_parks_nothing(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    url = f"http://127.0.0.1:{free_port()}{API_PATH}"  # the registry's address, nothing answering there
    env = settings_env(
        tmp_path, SCHEMA_REGISTRY={"URL": url, "BASIC_AUTH_USER_INFO": f"user:{SECRET}"}, TOPICS=avro_topics(topic)
    )
    produce(kafka_broker.bootstrap_servers, topic, [b"\x00\x00\x00\x00\x07\x02"], raw=True)
    started = time.monotonic()

    consumer = consumers.start(kafka_broker.bootstrap_servers, topic, tmp_path / "records.txt", group=group_id, env=env)
    code = consumer.wait(90)

    report_figures(f"FIGURES registry-down-at-start: seconds_to_exit={time.monotonic() - started:.1f}")
    lines = stderr_lines(consumer.output())
    assert code == EXIT_CONFIGURATION, consumer.output()
    assert len(lines) == 1 and "schema registry is unreachable" in lines[0], consumer.output()
    assert "Traceback" not in consumer.output() and SECRET not in consumer.output()
    assert committed(kafka_broker.bootstrap_servers, group_id, topic, 1) == {0: -1001}
    assert size(kafka_broker.bootstrap_servers, f"{topic}-dlt") == 0


def test_when_the_registry_goes_down_mid_stream_seen_schema_ids_still_decode_and_a_new_one_stops_the_consumer(
    kafka_broker, own_registry, make_topic, group_id, tmp_path, consumers
):
    topic, bootstrap = make_topic(), kafka_broker.bootstrap_servers
    kafka_broker.create_topic(f"{topic}-dlt")
    seen = serialize(own_registry.url, topic, ORDER, [{"id": index} for index in range(3)])
    (unseen,) = serialize(own_registry.url, topic, ORDER_V2, [{"id": 9, "note": "new version"}])
    env = settings_env(tmp_path, SCHEMA_REGISTRY={"URL": own_registry.url}, TOPICS=avro_topics(topic))
    record = tmp_path / "records.txt"
    produce(bootstrap, topic, seen[:1], raw=True)
    consumer = consumers.start(bootstrap, topic, record, group=group_id, env=env)
    wait_for(lambda: [r.id for r in read_records(record)] == [0], timeout=60, what="the first message, handled")

    own_registry.stop()
    assert not own_registry.answers()
    produce(bootstrap, topic, seen[1:], raw=True)
    wait_for(
        lambda: [r.id for r in read_records(record)] == [0, 1, 2],
        timeout=30,
        what="the messages of the schema id already fetched, handled with the registry down",
    )
    produce(bootstrap, topic, [unseen], raw=True)
    code = consumer.wait(60)

    lines = stderr_lines(consumer.output())
    report_figures(
        f"FIGURES registry-down-mid-stream: handled_from_cache={len(read_records(record)) - 1} "
        f"parked={size(bootstrap, f'{topic}-dlt')}"
    )
    assert code == EXIT_CONFIGURATION, consumer.output()
    assert len(lines) == 1 and "schema registry is unreachable" in lines[0], consumer.output()
    assert committed(bootstrap, group_id, topic, 1) == {0: 3}, "the new schema id's message was committed"
    assert size(bootstrap, f"{topic}-dlt") == 0, "a good message was parked for the registry's outage"


def test_a_schema_id_the_registry_does_not_know_is_dead_lettered_and_the_next_message_is_handled(
    kafka_settings, kafka_broker, schema_registry_server, make_topic, received
):
    topic, bootstrap = make_topic(), kafka_broker.bootstrap_servers
    kafka_broker.create_topic(f"{topic}-dlt")
    kafka_settings.KAFKA_CONSUMER = {
        **kafka_settings.KAFKA_CONSUMER,
        "SCHEMA_REGISTRY": {"URL": schema_registry_server.url},
        "TOPICS": avro_topics(topic),
    }
    (valid,) = serialize(schema_registry_server.url, topic, ORDER, [{"id": 1}])
    unknown_id = b"\x00" + (987654).to_bytes(4, "big") + valid[5:]
    unknown_guid = b"\x01" + uuid.UUID(int=5).bytes + valid[5:]  # a schema GUID (framing version 1)
    produce(bootstrap, topic, [unknown_id, unknown_guid, valid], raw=True)
    got = received(topic)

    call_command("consume_events", topic=topic, max_messages=3, idle_timeout=20)

    parked = [dict(message.headers()) for message in read_topic(bootstrap, f"{topic}-dlt", 2)]
    assert [headers[HEADER_REASON] for headers in parked] == [b"malformed", b"malformed"]
    assert b"987654" in parked[0][HEADER_EXCEPTION_MESSAGE] and b"40403" in parked[0][HEADER_EXCEPTION_MESSAGE]
    assert [message.value for message in got] == [{"id": 1}]
    assert committed(bootstrap, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 3}


def test_a_registry_url_without_the_api_path_stops_the_consumer_instead_of_parking_every_message(
    kafka_settings, kafka_broker, schema_registry_server, make_topic, received
):
    topic, bootstrap = make_topic(), kafka_broker.bootstrap_servers
    kafka_broker.create_topic(f"{topic}-dlt")
    (valid,) = serialize(schema_registry_server.url, topic, ORDER, [{"id": 1}])
    kafka_settings.KAFKA_CONSUMER = {
        **kafka_settings.KAFKA_CONSUMER,
        "SCHEMA_REGISTRY": {"URL": schema_registry_server.url.removesuffix(API_PATH)},
        "TOPICS": avro_topics(topic),
    }
    produce(bootstrap, topic, [valid], raw=True)
    got = received(topic)

    with pytest.raises(CommandError, match="API's path") as raised:
        call_command("consume_events", topic=topic, max_messages=1, idle_timeout=20)

    assert raised.value.returncode == EXIT_CONFIGURATION and "\n" not in str(raised.value)
    assert got == []
    assert committed(bootstrap, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: -1001}
    assert size(bootstrap, f"{topic}-dlt") == 0


def test_a_registry_that_does_not_answer_in_time_stops_the_consumer_without_parking_the_message(
    kafka_settings, kafka_broker, schema_registry_server, make_topic, received
):
    topic, bootstrap = make_topic(), kafka_broker.bootstrap_servers
    kafka_broker.create_topic(f"{topic}-dlt")
    (valid,) = serialize(schema_registry_server.url, topic, ORDER, [{"id": 1}])
    kafka_settings.KAFKA_CONSUMER = {
        **kafka_settings.KAFKA_CONSUMER,
        "SCHEMA_REGISTRY": {"URL": schema_registry_server.url, "CONFIG": {"timeout": 1, "max.retries": 0}},
        "TOPICS": avro_topics(topic),
    }
    produce(bootstrap, topic, [valid], raw=True)
    got = received(topic)
    assert schema_registry_server.process is not None
    schema_registry_server.process.send_signal(signal.SIGSTOP)  # it accepts connections and never answers
    try:
        with pytest.raises(CommandError, match="unreachable") as raised:
            call_command("consume_events", topic=topic, max_messages=1, idle_timeout=20)
    finally:
        schema_registry_server.process.send_signal(signal.SIGCONT)

    assert raised.value.returncode == EXIT_CONFIGURATION and "Timeout" in str(raised.value)
    assert got == []
    assert committed(bootstrap, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: -1001}
    assert size(bootstrap, f"{topic}-dlt") == 0
    wait_for(schema_registry_server.answers, timeout=30, what="the registry, answering again")
