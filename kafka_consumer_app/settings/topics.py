"""
The topics: TOPICS and its per-topic keys, the resolved ``TopicConfig``, and :func:`problems`.

Every key of ``KAFKA_CONSUMER`` lives in the module of its subject (see the settings layer in
``docs/decisions/0005-layers.rst``); this one assembles their tables into ``SETTINGS_DOC`` and
``TOPIC_SETTINGS_DOC``, resolves one topic from all of them (:func:`get_topic_config`) and
validates the whole dict (:func:`problems`), walking ``TOPICS`` once::

    KAFKA_CONSUMER = {
        "BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092",
        "GROUP_ID": "credentials-service",
        "TOPIC_PREFIX": "prod",
        "CONSUMER_CONFIG": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", ...},
        "TOPICS": {
            "user-events": {"GROUP_ID": "credentials-user-events", "DESERIALIZER": "json"},
        },
    }

The Django system checks and the commands report the same problems, with the same id and hint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.serialization import deserializer_problem
from kafka_consumer_app.settings import (
    concurrency,
    connection,
    control,
    failures,
    group_protocol,
    health,
    manifests,
    offset_store,
    outages,
    schema_registry,
    share_groups,
    tracing,
)
from kafka_consumer_app.settings.base import DocTable, Problem, raw_settings, topic_overrides, topic_where
from kafka_consumer_app.settings.concurrency import ConcurrencyConfig
from kafka_consumer_app.settings.control import ControlConfig
from kafka_consumer_app.settings.failures import FailureConfig
from kafka_consumer_app.settings.health import HealthConfig
from kafka_consumer_app.settings.offset_store import OffsetStoreConfig
from kafka_consumer_app.settings.outages import OutageConfig
from kafka_consumer_app.settings.tracing import TracingConfig
from kafka_consumer_app.validation import MAX_TOPIC_LENGTH, key_list, topic_name_problem

#: The top-level key of this subject: (default, description).
SETTINGS: DocTable = {
    "TOPICS": (
        {},
        "Per-topic overrides keyed by the unprefixed topic name; see TOPIC_SETTINGS_DOC.",
    ),
}

#: The per-topic keys of this subject, under ``TOPICS[<topic>]``.
TOPIC_SETTINGS: DocTable = {
    "DESERIALIZER": (
        "json",
        "How message values are decoded: 'json', 'str', 'bytes', 'avro' (Confluent wire format, with "
        "SCHEMA_REGISTRY; a record becomes a dict), or a dotted path to a callable taking the raw bytes and "
        "returning the value. A tombstone (no value) reaches receivers as None.",
    ),
    "KEY_DESERIALIZER": (
        "str",
        "How message keys are decoded; same choices as DESERIALIZER. Default 'avro' on OPENEDX_EVENTS topics.",
    ),
    "OPENEDX_EVENTS": (
        False,
        "True for a topic that Open edX services produce to (openedx-events, edx-event-bus-kafka): values are "
        "decoded per ce_type with the OpenEdxPublicSignal's Avro schema, and that signal is sent too. Needs "
        "SCHEMA_REGISTRY and the openedx extra; excludes DESERIALIZER.",
    ),
}

#: Documentation of every top-level key, gathered from the subject modules: (default, description).
SETTINGS_DOC: DocTable = {
    **connection.SETTINGS,
    **SETTINGS,
    **concurrency.SETTINGS,
    **offset_store.SETTINGS,
    **failures.SETTINGS,
    **outages.SETTINGS,
    **control.SETTINGS,
    **health.SETTINGS,
    **tracing.SETTINGS,
    **manifests.SETTINGS,
    **schema_registry.SETTINGS,
}
#: Documentation of every per-topic key under ``TOPICS[<topic>]``, gathered from the subject modules.
TOPIC_SETTINGS_DOC: DocTable = {
    **connection.TOPIC_SETTINGS,
    **TOPIC_SETTINGS,
    **concurrency.SETTINGS,
    **offset_store.SETTINGS,
    **failures.TOPIC_SETTINGS,
    **manifests.TOPIC_SETTINGS,
    **share_groups.TOPIC_SETTINGS,
}

#: The value deserializer of OPENEDX_EVENTS topics (needs the openedx extra).
OPENEDX_DESERIALIZER = "kafka_consumer_app.engine.openedx.decode_event"

_Check = Callable[[dict[str, Any]], list[Problem]]
_TopicCheck = Callable[[dict[str, Any], Any, dict[str, Any]], list[Problem]]


@dataclass(frozen=True)
class TopicConfig:
    """Everything ``EventConsumer`` needs to know about the one topic it consumes."""

    topic: str
    kafka_topic: str
    group_id: str
    bootstrap_servers: str
    deserializer: str = "json"
    key_deserializer: str = "str"
    consumer_config: Mapping[str, Any] = field(default_factory=dict)
    poll_timeout: float = 1.0
    connect_timeout: float = 30.0
    progress_interval: float = 60.0
    failure: FailureConfig = field(default_factory=FailureConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    #: Open edX events: values decode to OpenEdxEvent and their OpenEdxPublicSignal is sent (OPENEDX_EVENTS).
    openedx_events: bool = False
    concurrency: ConcurrencyConfig = field(default_factory=ConcurrencyConfig)
    outage: OutageConfig = field(default_factory=OutageConfig)
    offsets: OffsetStoreConfig = field(default_factory=OffsetStoreConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    #: Experimental: consumed through a share group (SHARE_GROUP, or --share-group).
    share_group: bool = False


def get_topic_config(topic: str, group_override: str | None = None, openedx_events: bool | None = None) -> TopicConfig:
    """
    Resolve the settings for one topic.

    ``openedx_events=True`` makes it an OPENEDX_EVENTS topic whatever its settings say (the
    openedx-events EVENT_BUS_CONSUMER plug does). Raises ConfigurationError, naming the first
    problem and its fix, when settings are invalid.
    """
    found = problems(topic=topic, group_override=group_override, openedx_events=openedx_events)
    if found:
        raise ConfigurationError(found[0].one_line())
    top = raw_settings()
    overrides = topic_overrides(topic)
    openedx = overrides.get("OPENEDX_EVENTS") is True if openedx_events is None else openedx_events
    merged = connection.consumer_config(top, overrides)
    kafka_topic = connection.kafka_topic_name(topic)
    return TopicConfig(
        topic=topic,
        kafka_topic=kafka_topic,
        group_id=connection.group_id(topic, group_override) or "",
        bootstrap_servers=connection.bootstrap_servers() or "",
        deserializer=OPENEDX_DESERIALIZER if openedx else overrides.get("DESERIALIZER", "json"),
        key_deserializer=overrides.get("KEY_DESERIALIZER", "avro" if openedx else "str"),
        consumer_config=merged,
        poll_timeout=connection.seconds(top, "POLL_TIMEOUT"),
        connect_timeout=connection.seconds(top, "CONNECT_TIMEOUT"),
        progress_interval=connection.seconds(top, "PROGRESS_INTERVAL"),
        failure=failures.failure_config(top, overrides, kafka_topic, merged),
        health=health.health_config(top, topic),
        openedx_events=openedx,
        concurrency=concurrency.concurrency_config(top, overrides),
        outage=outages.outage_config(top),
        offsets=offset_store.offset_store_config(top, overrides),
        control=control.control_config(top),
        tracing=tracing.tracing_config(top),
        share_group=overrides.get("SHARE_GROUP") is True,
    )


def problems(
    topic: str | None = None, group_override: str | None = None, openedx_events: bool | None = None
) -> list[Problem]:
    """
    Return every problem with the settings, in a stable order: the first one is what commands print.

    The command's options first, then each subject's top-level keys, then every topic of TOPICS
    (each subject's per-topic check in turn), then whether the command's topic has a group.
    With ``topic`` it also checks that a group id resolves for that topic, as the command needs
    (and, with ``openedx_events=True``, that the topic can be consumed as an OPENEDX_EVENTS topic).
    """
    value = getattr(settings, "KAFKA_CONSUMER", None)
    if value is None:
        return [
            Problem(
                "kafka_consumer_app.E001",
                "settings.KAFKA_CONSUMER is not set",
                "Add KAFKA_CONSUMER = {'BOOTSTRAP_SERVERS': 'host:9092', 'GROUP_ID': '<service>'} to settings.",
            )
        ]
    if not isinstance(value, dict):
        return [
            Problem(
                "kafka_consumer_app.E002",
                f"settings.KAFKA_CONSUMER must be a dict, not {type(value).__name__}",
                "Define KAFKA_CONSUMER as a dict of the keys documented in docs/reference/settings.rst.",
            )
        ]
    found = _topic_option_problems(topic) + connection.group_override_problems(group_override)
    found += _unknown_key_problems(value)
    for check in _SUBJECT_CHECKS:
        found += check(value)
    found += _walk_topics(value, topic if openedx_events else None)
    return found + connection.resolved_group_problems(topic, group_override)


def _topic_option_problems(topic: Any) -> list[Problem]:
    """``--topic`` reaches librdkafka as it is, with the prefix: E050 when Kafka would refuse the name."""
    problem = topic_name_problem(topic) if topic is not None else None
    length = len(connection.kafka_topic_name(topic)) if isinstance(topic, str) else 0
    if problem is None and length > MAX_TOPIC_LENGTH:
        problem = f"with TOPIC_PREFIX makes a name of {length} characters, more than Kafka's {MAX_TOPIC_LENGTH}"
    if not problem:
        return []
    return [Problem("kafka_consumer_app.E050", f"--topic {problem}", "Name an existing Kafka topic.")]


def _unknown_key_problems(value: dict[str, Any]) -> list[Problem]:
    unknown = key_list(set(value) - set(SETTINGS_DOC))
    if not unknown:
        return []
    return [
        Problem(
            "kafka_consumer_app.E003",
            f"unknown key(s) in KAFKA_CONSUMER: {unknown}",
            f"Valid keys are {', '.join(SETTINGS_DOC)}; librdkafka options go in CONSUMER_CONFIG.",
        )
    ]


def _topics_type_problems(value: dict[str, Any]) -> list[Problem]:
    topics = value.get("TOPICS")
    if topics is None or (isinstance(topics, dict) and all(isinstance(item, dict) for item in topics.values())):
        return []
    return [
        Problem(
            "kafka_consumer_app.E009",
            "KAFKA_CONSUMER['TOPICS'] must map topic names to dicts of overrides",
            "Write TOPICS = {'my-topic': {'GROUP_ID': '...', 'DESERIALIZER': 'json'}}.",
        )
    ]


def _walk_topics(value: dict[str, Any], forced_openedx_topic: str | None) -> list[Problem]:
    """
    The one pass over TOPICS: each topic's dict goes to each subject's per-topic check in turn.

    ``forced_openedx_topic`` is consumed as OPENEDX_EVENTS whatever its settings say, listed in
    TOPICS or not; the topics that decode Avro need SCHEMA_REGISTRY (E081, after the pass).
    """
    topics = value.get("TOPICS")
    scopes = {
        name: item for name, item in (topics if isinstance(topics, dict) else {}).items() if isinstance(item, dict)
    }
    found: list[Problem] = []
    avro_topics = []
    for name, overrides in scopes.items():
        for check in _TOPIC_CHECKS:
            found += check(value, name, overrides)
        decoded = {**overrides, "OPENEDX_EVENTS": True} if name == forced_openedx_topic else overrides
        found += _openedx_problems(topic_where(name), decoded)
        if schema_registry.decodes_avro(decoded):
            avro_topics.append(name)
    if forced_openedx_topic is not None and forced_openedx_topic not in scopes:
        found += _openedx_problems(topic_where(forced_openedx_topic), {"OPENEDX_EVENTS": True})
        avro_topics.append(forced_openedx_topic)
    return found + schema_registry.registry_needed_problems(value, avro_topics)


def _own_topic_problems(top: dict[str, Any], name: Any, overrides: dict[str, Any]) -> list[Problem]:
    """The topic's name and keys, and its deserializers."""
    found = []
    unknown = key_list(set(overrides) - set(TOPIC_SETTINGS_DOC))
    if unknown:
        found.append(
            Problem(
                "kafka_consumer_app.E011",
                f"unknown key(s) in KAFKA_CONSUMER['TOPICS'][{name!r}]: {unknown}",
                f"Valid per-topic keys are {', '.join(TOPIC_SETTINGS_DOC)}.",
            )
        )
    for key in ("DESERIALIZER", "KEY_DESERIALIZER"):
        message = deserializer_problem(overrides[key]) if key in overrides else None
        if message:
            found.append(
                Problem(
                    "kafka_consumer_app.E012",
                    f"KAFKA_CONSUMER['TOPICS'][{name!r}]['{key}'] {message}",
                    "Use 'json', 'str', 'bytes', or the dotted path of an importable callable.",
                )
            )
    if topic_name_problem(name):
        found.append(
            Problem(
                "kafka_consumer_app.E045",
                f"KAFKA_CONSUMER['TOPICS'] has the key {name!r}, which {topic_name_problem(name)}",
                "Key TOPICS by the topic's name as given to --topic: letters, digits, '.', '_' and '-'.",
            )
        )
    return found


def _openedx_problems(where: str, overrides: dict[str, Any]) -> list[Problem]:
    """OPENEDX_EVENTS: a bool, without DESERIALIZER (E083), and with openedx-events installed (E082)."""
    openedx = overrides.get("OPENEDX_EVENTS", False)
    if not isinstance(openedx, bool):
        return [
            Problem(
                "kafka_consumer_app.E083",
                f"{where}['OPENEDX_EVENTS'] must be True or False, not {openedx!r}",
                "Set True for a topic that Open edX services produce to, or remove it.",
            )
        ]
    found = []
    if openedx and "DESERIALIZER" in overrides:
        found.append(
            Problem(
                "kafka_consumer_app.E083",
                f"{where} sets both OPENEDX_EVENTS and DESERIALIZER",
                "Remove DESERIALIZER: an OPENEDX_EVENTS topic decodes each value with its event type's schema.",
            )
        )
    if openedx:
        try:
            import_string(OPENEDX_DESERIALIZER)
        except ImportError as error:
            found.append(
                Problem(
                    "kafka_consumer_app.E082",
                    f"{where}['OPENEDX_EVENTS'] needs openedx-events and Avro support, which are not "
                    f"installed ({error})",
                    "pip install kafka_consumer_app[openedx]",
                )
            )
    return found


#: Each subject's check of its top-level keys, in the order their problems are reported.
_SUBJECT_CHECKS: tuple[_Check, ...] = (
    connection.problems,
    group_protocol.problems,
    health.problems,
    _topics_type_problems,
    manifests.problems,
    failures.problems,
    outages.problems,
    control.problems,
    tracing.problems,
    schema_registry.problems,
    concurrency.problems,
    offset_store.problems,
)
#: Each subject's check of one topic's dict, in the order their problems are reported.
_TOPIC_CHECKS: tuple[_TopicCheck, ...] = (
    _own_topic_problems,
    connection.topic_problems,
    group_protocol.topic_problems,
    failures.topic_problems,
    manifests.topic_problems,
    concurrency.topic_problems,
    offset_store.topic_problems,
    share_groups.topic_problems,
)
