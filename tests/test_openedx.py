"""
Open edX interop: events of edx-event-bus-kafka's real producer, via the real broker, to OpenEdxPublicSignal receivers.

The schema registry is a real one too (Apicurio Registry's Confluent API, the ``schema_registry_server``
fixture): the producer registers its schemas over HTTP with its own client, from its own settings
(``EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL``), and ``consume_events`` fetches them by id with its own.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError
from django.dispatch import Signal
from edx_event_bus_kafka.internal import config as edx_config
from edx_event_bus_kafka.internal import producer as edx_producer
from edx_event_bus_kafka.internal.producer import KafkaEventProducer, create_producer
from opaque_keys.edx.keys import CourseKey
from openedx_events.data import EventsMetadata
from openedx_events.learning.data import CourseData, CourseEnrollmentData, UserData, UserPersonalData
from openedx_events.learning.signals import COURSE_ENROLLMENT_CREATED, SESSION_LOGIN_COMPLETED
from openedx_events.management.commands.consume_events import Command as OpenEdxConsumeEvents
from openedx_events.tooling import OpenEdxPublicSignal

from kafka_consumer_app.engine.dead_letters import HEADER_EXCEPTION_MESSAGE, HEADER_REASON, HEADER_RECEIVERS
from kafka_consumer_app.engine.dispatch import Dispatcher
from kafka_consumer_app.exceptions import EXIT_CONFIGURATION, EXIT_HANDLER_FAILED
from kafka_consumer_app.management.commands.consume_events import Command as ConsumeEvents
from kafka_consumer_app.message import Message
from kafka_consumer_app.openedx import OpenEdxEvent
from kafka_consumer_app.settings import topics as topic_settings
from kafka_consumer_app.signals import topic_signal

from .kafka_utils import ROOT, committed, produce, read_topic

pytestmark = pytest.mark.django_db

SECRET = "registry-s3cret"
#: SCHEMA_REGISTRY for the tests that only check settings (nothing connects to it).
REGISTRY = {"URL": "https://schema-registry:8081", "BASIC_AUTH_USER_INFO": f"registry-user:{SECRET}"}

USER = UserData(id=42, is_active=True, pii=UserPersonalData(username="ada", email="ada@example.com", name="Ada"))
ENROLLMENT = CourseEnrollmentData(
    user=USER,
    course=CourseData(
        course_key=CourseKey.from_string("course-v1:edX+DemoX+2026"),
        display_name="Demo course",
        start=datetime(2026, 9, 1, tzinfo=UTC),
        end=datetime(2027, 1, 31, tzinfo=UTC),
    ),
    mode="verified",
    is_active=True,
    creation_date=datetime(2026, 11, 27, 9, 30, 15, 250000, tzinfo=UTC),
    created_by=USER,
)


def event_metadata(signal: OpenEdxPublicSignal, second: int = 0) -> EventsMetadata:
    """Metadata as a producing service makes it, every field set, so that equality means a faithful copy."""
    return EventsMetadata(
        event_type=signal.event_type,
        minorversion=0,
        time=datetime(2026, 11, 27, 9, 30, second, 123456, tzinfo=UTC),
        source="openedx/lms/web",
        sourcehost="lms-7f9c",
        sourcelib=(10, 5, 0),
    )


def configure(settings: Any, topics: dict[str, dict[str, Any]], prefix: str = "", **top: Any) -> None:
    """KAFKA_CONSUMER (with open_edx_settings' SCHEMA_REGISTRY) and these TOPICS; the producer gets the same prefix."""
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "TOPICS": topics,
        "TOPIC_PREFIX": prefix,
        **top,
    }
    settings.EVENT_BUS_TOPIC_PREFIX = prefix or None


@pytest.fixture
def open_edx_settings(kafka_settings: Any, kafka_broker: Any, schema_registry_server: Any) -> Any:
    """The test's KAFKA_CONSUMER with the real registry and credentials, plus what the Open edX producer reads."""
    kafka_settings.KAFKA_CONSUMER = {
        **kafka_settings.KAFKA_CONSUMER,
        "SCHEMA_REGISTRY": {"URL": schema_registry_server.url, "BASIC_AUTH_USER_INFO": f"registry-user:{SECRET}"},
    }
    kafka_settings.EVENT_BUS_KAFKA_BOOTSTRAP_SERVERS = kafka_broker.bootstrap_servers
    kafka_settings.EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL = schema_registry_server.url
    kafka_settings.EVENT_BUS_KAFKA_SCHEMA_REGISTRY_API_KEY = "registry-user"
    kafka_settings.EVENT_BUS_KAFKA_SCHEMA_REGISTRY_API_SECRET = SECRET
    kafka_settings.EVENTS_SERVICE_NAME = "lms"
    return kafka_settings


@pytest.fixture
def open_edx_producer() -> Callable[[], KafkaEventProducer]:
    """
    Make edx-event-bus-kafka's real producer, unchanged, once the test's settings are final.

    Its cached registry client and serializers are dropped first, so that it reads this test's settings.
    """

    def make() -> KafkaEventProducer:
        edx_config.get_schema_registry_client.cache_clear()
        edx_producer.get_serializers.cache_clear()
        producer = create_producer()
        assert producer is not None, "edx-event-bus-kafka could not make its producer from the settings"
        return producer

    return make


def publish(
    producer: KafkaEventProducer,
    topic: str,
    signal: OpenEdxPublicSignal,
    key_field: str,
    data: dict[str, Any],
    metadata: EventsMetadata,
) -> None:
    """Send one event as an Open edX service does, and wait until the broker has it."""
    producer.send(signal=signal, topic=topic, event_key_field=key_field, event_data=data, event_metadata=metadata)
    assert producer.producer.flush(30) == 0, "the producer did not deliver within 30s"


def topic_size(bootstrap: str, topic: str) -> int:
    """How many messages partition 0 of ``topic`` holds (its high watermark)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"size-{topic}"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=20)[1]
    finally:
        consumer.close()


@pytest.fixture
def connect() -> Iterator[Callable[[Signal, Callable[..., Any]], None]]:
    """Connect receivers for one test (strongly) and disconnect them afterwards."""
    connected: list[tuple[Signal, Callable[..., Any]]] = []

    def do_connect(signal: Signal, receiver: Callable[..., Any]) -> None:
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))

    yield do_connect
    for signal, receiver in connected:
        signal.disconnect(receiver)


def login_headers(event_type: str = SESSION_LOGIN_COMPLETED.event_type) -> list[tuple[str, bytes]]:
    """CloudEvents headers as edx-event-bus-kafka writes them, for hand-made messages."""
    return [("ce_type", event_type.encode()), ("ce_id", b"2d7c3f0e-8a5b-11ef-9c1d-0242ac120002")]


# -- through the real broker --------------------------------------------------------------------


@pytest.mark.broker
def test_events_of_the_open_edx_producer_reach_open_edx_receivers_with_equal_data_and_metadata(
    open_edx_settings, kafka_broker, make_topic, connect, open_edx_producer, caplog
):
    topic = make_topic()
    kafka_broker.create_topic(f"stage-{topic}")
    configure(open_edx_settings, {topic: {"OPENEDX_EVENTS": True}}, prefix="stage")
    logins: list[dict[str, Any]] = []
    enrollments: list[dict[str, Any]] = []
    messages: list[Message] = []
    connect(SESSION_LOGIN_COMPLETED, lambda **kwargs: logins.append(kwargs))
    connect(COURSE_ENROLLMENT_CREATED, lambda **kwargs: enrollments.append(kwargs))
    connect(topic_signal(topic), lambda message, **kwargs: messages.append(message))
    login_metadata, enrollment_metadata = (
        event_metadata(SESSION_LOGIN_COMPLETED),
        event_metadata(COURSE_ENROLLMENT_CREATED, 1),
    )
    producer = open_edx_producer()
    publish(producer, topic, SESSION_LOGIN_COMPLETED, "user.pii.username", {"user": USER}, login_metadata)
    publish(
        producer,
        topic,
        COURSE_ENROLLMENT_CREATED,
        "enrollment.course.course_key",
        {"enrollment": ENROLLMENT},
        enrollment_metadata,
    )
    assert topic_size(kafka_broker.bootstrap_servers, f"stage-{topic}") == 2

    call_command("consume_events", topic=topic, max_messages=2, idle_timeout=20)

    assert [(kw["signal"], kw["sender"], kw["user"], kw["metadata"], kw["from_event_bus"]) for kw in logins] == [
        (SESSION_LOGIN_COMPLETED, None, USER, login_metadata, True)
    ]
    assert [(kw["enrollment"], kw["metadata"], kw["from_event_bus"]) for kw in enrollments] == [
        (ENROLLMENT, enrollment_metadata, True)
    ]
    assert [(m.key, type(m.value), m.value.event_type) for m in messages] == [
        ("ada", OpenEdxEvent, SESSION_LOGIN_COMPLETED.event_type),
        (str(ENROLLMENT.course.course_key), OpenEdxEvent, COURSE_ENROLLMENT_CREATED.event_type),
    ]
    group = open_edx_settings.KAFKA_CONSUMER["GROUP_ID"]
    assert committed(kafka_broker.bootstrap_servers, group, f"stage-{topic}", 1) == {0: 2}
    assert SECRET not in caplog.text


@pytest.mark.broker
def test_a_failing_open_edx_receiver_is_retried_alone_and_its_message_is_never_committed_as_handled(
    open_edx_settings, kafka_broker, make_topic, connect, open_edx_producer
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    retry = {"ATTEMPTS": 2, "INITIAL_BACKOFF": 0.2, "JITTER": 0}
    configure(open_edx_settings, {topic: {"OPENEDX_EVENTS": True, "RETRY": retry}})  # FAILURE_POLICY 'stop'
    calls = {"steady": 0, "broken": 0}

    def steady(**kwargs: Any) -> None:
        calls["steady"] += 1

    def broken(**kwargs: Any) -> None:
        calls["broken"] += 1
        raise ConnectionError("the credentials service is down")

    connect(SESSION_LOGIN_COMPLETED, steady)
    connect(SESSION_LOGIN_COMPLETED, broken)
    publish(
        open_edx_producer(),
        topic,
        SESSION_LOGIN_COMPLETED,
        "user.pii.username",
        {"user": USER},
        event_metadata(SESSION_LOGIN_COMPLETED),
    )
    bootstrap, group = kafka_broker.bootstrap_servers, open_edx_settings.KAFKA_CONSUMER["GROUP_ID"]

    with pytest.raises(CommandError, match="broken") as raised:
        call_command("consume_events", topic=topic, max_messages=1, idle_timeout=20)

    assert raised.value.returncode == EXIT_HANDLER_FAILED
    assert calls == {"steady": 1, "broken": 2}, "the retry called a receiver that had succeeded"
    assert committed(bootstrap, group, topic, 1) == {0: -1001}

    configure(open_edx_settings, {topic: {"OPENEDX_EVENTS": True, "RETRY": retry, "FAILURE_POLICY": "dead-letter"}})
    call_command("consume_events", topic=topic, max_messages=1, idle_timeout=20)

    parked = dict(read_topic(bootstrap, f"{topic}-dlt", 1)[0].headers())
    assert calls == {"steady": 2, "broken": 4}
    assert parked[HEADER_REASON] == b"receiver-failed" and parked[HEADER_RECEIVERS].endswith(b".broken")
    assert committed(bootstrap, group, topic, 1) == {0: 1}


@pytest.mark.broker
def test_poison_avro_is_dead_lettered_as_malformed_and_the_next_event_is_handled(
    open_edx_settings, kafka_broker, make_topic, connect, open_edx_producer
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    configure(open_edx_settings, {topic: {"OPENEDX_EVENTS": True, "FAILURE_POLICY": "dead-letter"}})
    logins: list[dict[str, Any]] = []
    connect(SESSION_LOGIN_COMPLETED, lambda **kwargs: logins.append(kwargs))
    bootstrap = kafka_broker.bootstrap_servers
    unknown_schema_id = b"\x00" + (987654).to_bytes(4, "big") + b"\x54\x02\x06ada"
    not_avro = b'{"user": "ada"}'
    produce(bootstrap, topic, [unknown_schema_id, not_avro], key=lambda _: None, raw=True, headers=login_headers())
    publish(
        open_edx_producer(),
        topic,
        SESSION_LOGIN_COMPLETED,
        "user.pii.username",
        {"user": USER},
        event_metadata(SESSION_LOGIN_COMPLETED),
    )

    call_command("consume_events", topic=topic, max_messages=3, idle_timeout=20)

    parked = [dict(message.headers()) for message in read_topic(bootstrap, f"{topic}-dlt", 2)]
    assert [headers[HEADER_REASON] for headers in parked] == [b"malformed", b"malformed"]
    # The registry's own answer: Confluent's error code for an unknown schema id.
    assert b"987654" in parked[0][HEADER_EXCEPTION_MESSAGE] and b"40403" in parked[0][HEADER_EXCEPTION_MESSAGE]
    assert b"magic byte" in parked[1][HEADER_EXCEPTION_MESSAGE].lower()
    assert [kwargs["user"] for kwargs in logins] == [USER]
    assert committed(bootstrap, open_edx_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 3}


@pytest.mark.broker
def test_an_unknown_ce_type_is_malformed_so_it_is_parked_for_a_replay_after_an_upgrade(
    open_edx_settings, kafka_broker, make_topic, connect, open_edx_producer
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    configure(open_edx_settings, {topic: {"OPENEDX_EVENTS": True, "FAILURE_POLICY": "dead-letter"}})
    logins: list[dict[str, Any]] = []
    connect(SESSION_LOGIN_COMPLETED, lambda **kwargs: logins.append(kwargs))
    producer = open_edx_producer()
    metadata = event_metadata(SESSION_LOGIN_COMPLETED)
    publish(producer, topic, SESSION_LOGIN_COMPLETED, "user.pii.username", {"user": USER}, metadata)
    bootstrap = kafka_broker.bootstrap_servers
    # The same Avro bytes as a newer producer's event type: valid, but of a type this service does not know.
    valid = read_topic(bootstrap, topic, 1)[0]
    valid_value = valid.value()
    newer = "org.openedx.learning.auth.session.logout.completed.v9"
    produce(bootstrap, topic, [valid_value], key=lambda _: valid.key(), raw=True, headers=login_headers(newer))
    publish(producer, topic, SESSION_LOGIN_COMPLETED, "user.pii.username", {"user": USER}, metadata)

    call_command("consume_events", topic=topic, max_messages=3, idle_timeout=20)

    parked = read_topic(bootstrap, f"{topic}-dlt", 1)[0]
    headers = dict(parked.headers())
    assert headers[HEADER_REASON] == b"malformed" and newer.encode() in headers[HEADER_EXCEPTION_MESSAGE]
    assert parked.value() == valid_value and headers["ce_type"] == newer.encode()
    assert len(logins) == 2
    assert committed(bootstrap, open_edx_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 3}


@pytest.mark.broker
def test_the_options_of_open_edx_consume_events_work_on_this_command(kafka_settings, kafka_broker, make_topic, connect):
    topic = make_topic()
    bootstrap = kafka_broker.bootstrap_servers
    got: list[Any] = []
    connect(topic_signal(topic), lambda message, **kwargs: got.append(message.value))
    produce(bootstrap, topic, [{"n": 0}])
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    produce(bootstrap, topic, [{"n": 1}])
    group = f"{kafka_settings.KAFKA_CONSUMER['GROUP_ID']}-cli"

    call_command(
        "consume_events",
        "-t",
        topic,
        "-g",
        group,
        "--extra",
        json.dumps({"offset_time": between.isoformat()}),
        "--max-messages",
        "1",
        "--idle-timeout",
        "20",
    )

    assert got == [{"n": 1}], "--extra offset_time did not rewind to the given time"
    assert committed(bootstrap, group, topic, 1) == {0: 2}, "-g did not name the consumer group"


@pytest.mark.broker
def test_open_edx_consume_events_runs_this_consumer_behind_event_bus_consumer(
    open_edx_settings, kafka_broker, make_topic, group_id, connect, open_edx_producer
):
    topic = make_topic()
    configure(open_edx_settings, {})  # no TOPICS entry: the plug consumes its topic as an OPENEDX_EVENTS topic
    open_edx_settings.EVENT_BUS_CONSUMER = "kafka_consumer_app.openedx.EventBusConsumer"
    logins: list[dict[str, Any]] = []
    connect(SESSION_LOGIN_COMPLETED, lambda **kwargs: logins.append(kwargs))
    metadata = event_metadata(SESSION_LOGIN_COMPLETED)
    publish(open_edx_producer(), topic, SESSION_LOGIN_COMPLETED, "user.pii.username", {"user": USER}, metadata)

    # openedx-events' own command: it logs and swallows exceptions, so the test checks what was delivered.
    call_command(
        OpenEdxConsumeEvents(), "-t", topic, "-g", group_id, "--extra", '{"max_messages": 1, "idle_timeout": 20}'
    )

    assert [(kw["user"], kw["metadata"], kw["from_event_bus"]) for kw in logins] == [(USER, metadata, True)]
    assert committed(kafka_broker.bootstrap_servers, group_id, topic, 1) == {0: 1}


@pytest.mark.broker
def test_an_unreachable_schema_registry_stops_the_consumer_without_committing_or_parking(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kafka_settings.KAFKA_CONSUMER = {
        **kafka_settings.KAFKA_CONSUMER,
        "SCHEMA_REGISTRY": {
            "URL": f"http://127.0.0.1:{port}",
            "BASIC_AUTH_USER_INFO": f"registry-user:{SECRET}",
            "CONFIG": {"max.retries": 0},
        },
        "TOPICS": {topic: {"DESERIALIZER": "avro", "FAILURE_POLICY": "dead-letter"}},
    }
    connect(topic_signal(topic), lambda **kwargs: None)
    produce(kafka_broker.bootstrap_servers, topic, [b"\x00\x00\x00\x00\x07\x06ada"], raw=True)

    with pytest.raises(CommandError, match="unreachable") as raised:
        call_command("consume_events", topic=topic, max_messages=1, idle_timeout=20)

    assert raised.value.returncode == EXIT_CONFIGURATION
    assert SECRET not in str(raised.value)
    group = kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    assert committed(kafka_broker.bootstrap_servers, group, topic, 1) == {0: -1001}
    assert topic_size(kafka_broker.bootstrap_servers, f"{topic}-dlt") == 0


# -- no broker ----------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["openedx_events", "kafka_consumer_app"])
def test_the_first_installed_app_with_a_consume_events_command_provides_it(settings, first):
    both = ["openedx_events", "kafka_consumer_app"]
    settings.INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", first] + [
        app for app in both if app != first
    ]

    assert get_commands()["consume_events"] == first


def test_the_open_edx_option_spellings_parse_to_this_commands_options():
    parser = ConsumeEvents().create_parser("manage.py", "consume_events")

    options = parser.parse_args(["-t", "t", "--group_id", "g", "--extra", '{"offset_time": "2026-11-27T09:30:00"}'])

    assert (options.topic, options.group_id, options.extra) == ("t", "g", {"offset_time": "2026-11-27T09:30:00"})
    assert parser.parse_args(["--topic", "t", "--group-id", "g"]).group_id == "g"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--extra", '{"check_backlog": true}'], "check_backlog"),
        (["--extra", "[1]"], "JSON object"),
        (["--extra", '{"offset_time": "2026-11-27"}', "--from-beginning"], "only one of"),
    ],
)
def test_extra_options_this_consumer_cannot_honour_are_refused(settings, arguments, error):
    with pytest.raises(CommandError, match=error):
        call_command("consume_events", "-t", "never-consumed", *arguments)


def test_a_fatal_error_under_open_edx_consume_events_exits_with_this_apps_code(settings):
    settings.EVENT_BUS_CONSUMER = "kafka_consumer_app.openedx.EventBusConsumer"
    settings.KAFKA_CONSUMER = {k: v for k, v in settings.KAFKA_CONSUMER.items() if k != "SCHEMA_REGISTRY"}

    with pytest.raises(SystemExit) as raised:
        call_command(OpenEdxConsumeEvents(), "-t", "never-consumed", "-g", "g")

    assert raised.value.code == EXIT_CONFIGURATION  # no SCHEMA_REGISTRY: exit 1, not openedx-events' silent 0


def test_with_debug_a_send_that_raises_is_one_failure_and_the_retry_sends_the_signal_again(settings, connect):
    settings.DEBUG = True  # openedx-events then uses send(), which raises, instead of send_robust()
    tries: list[bool] = []

    def flaky(**kwargs: Any) -> None:
        tries.append(kwargs["from_event_bus"])
        if len(tries) == 1:
            raise ConnectionError("first try fails")

    connect(SESSION_LOGIN_COMPLETED, flaky)
    event = OpenEdxEvent(SESSION_LOGIN_COMPLETED, {"user": USER}, event_metadata(SESSION_LOGIN_COMPLETED))
    message = Message("t", 0, 0, None, event, (), None, SESSION_LOGIN_COMPLETED.event_type)
    dispatcher = Dispatcher("t", sender=object())

    first = dispatcher.dispatch(message)
    again = dispatcher.redispatch(message, first.failures)

    assert [failure.receiver_name for failure in first.failures] == [
        f"openedx_events.tooling.OpenEdxPublicSignal[{SESSION_LOGIN_COMPLETED.event_type}]"
        ".send_event_with_custom_metadata"
    ]
    assert again.ok and tries == [True, True]


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"TOPICS": {"t": {"OPENEDX_EVENTS": True}}}, "kafka_consumer_app.E081"),
        ({"TOPICS": {"t": {"KEY_DESERIALIZER": "avro"}}}, "kafka_consumer_app.E081"),
        ({"SCHEMA_REGISTRY": {"URL": f"https://key:{SECRET}@registry:8081"}}, "kafka_consumer_app.E080"),
        (
            {"SCHEMA_REGISTRY": {"URL": "https://registry:8081", "BASIC_AUTH_USER_INFO": SECRET}},
            "kafka_consumer_app.E080",
        ),
        ({"SCHEMA_REGISTRY": REGISTRY, "TOPICS": {"t": {"OPENEDX_EVENTS": "yes"}}}, "kafka_consumer_app.E083"),
        (
            {"SCHEMA_REGISTRY": REGISTRY, "TOPICS": {"t": {"OPENEDX_EVENTS": True, "DESERIALIZER": "json"}}},
            "kafka_consumer_app.E083",
        ),
    ],
)
def test_avro_and_open_edx_settings_are_checked_without_quoting_credentials(settings, overrides, check_id):
    settings.KAFKA_CONSUMER = {
        **{k: v for k, v in settings.KAFKA_CONSUMER.items() if k != "SCHEMA_REGISTRY"},
        **overrides,
    }

    found = [problem for problem in topic_settings.problems() if problem.id.startswith("kafka_consumer_app.E08")]

    assert [problem.id for problem in found] == [check_id]
    assert SECRET not in found[0].msg + found[0].hint


def test_an_open_edx_topic_is_configured_as_one(settings):
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "SCHEMA_REGISTRY": REGISTRY,
        "TOPICS": {"t": {"OPENEDX_EVENTS": True}},
    }

    config, plain = topic_settings.get_topic_config("t"), topic_settings.get_topic_config("other")

    assert (config.openedx_events, config.deserializer, config.key_deserializer) == (
        True,
        topic_settings.OPENEDX_DESERIALIZER,
        "avro",
    )
    assert (plain.openedx_events, plain.deserializer, plain.key_deserializer) == (False, "json", "str")
    assert (
        topic_settings.get_topic_config("other", openedx_events=True).deserializer
        == topic_settings.OPENEDX_DESERIALIZER
    )


def test_the_open_edx_guide_documents_the_schema_registry_and_the_open_edx_plug():
    # The SCHEMA_REGISTRY keys themselves are rendered from SCHEMA_REGISTRY_DOC, which tests/test_docs.py checks.
    guide = (ROOT / "docs" / "how-to" / "openedx.rst").read_text(encoding="utf-8")

    assert '"SCHEMA_REGISTRY": {' in guide
    for key in ["OPENEDX_EVENTS", "EVENT_BUS_CONSUMER"]:
        assert f"``{key}``" in guide
