"""
Settings for kafka_consumer_app, read from the ``KAFKA_CONSUMER`` dict at call time.

Nothing here reads settings at import time, so ``override_settings`` works in tests.
Every key of ``KAFKA_CONSUMER`` is documented in ``SETTINGS_DOC`` below and in the README::

    KAFKA_CONSUMER = {
        "BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092",
        "GROUP_ID": "credentials-service",
        "TOPIC_PREFIX": "prod",
        "CONSUMER_CONFIG": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", ...},
        "TOPICS": {
            "user-events": {"GROUP_ID": "credentials-user-events", "DESERIALIZER": "json"},
        },
    }

Validation lives in :func:`problems` so that the Django system checks and the
``consume_events`` command report the same thing, with the same id and hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.serialization import deserializer_problem

#: Documentation of every top-level key: (default, description).
SETTINGS_DOC: dict[str, tuple[Any, str]] = {
    "BOOTSTRAP_SERVERS": (
        None,
        "Required. Comma-separated host:port list (or a list of strings) of the Kafka brokers.",
    ),
    "GROUP_ID": (
        None,
        "Consumer group used for every topic without its own GROUP_ID and when --group-id is not given.",
    ),
    "TOPIC_PREFIX": (
        "",
        "Environment prefix. When set, --topic X consumes the Kafka topic '<prefix>-X' "
        "(the Open edX convention). Receivers still use the unprefixed name X.",
    ),
    "CONSUMER_CONFIG": (
        {},
        "librdkafka options passed through verbatim: security.protocol, sasl.*, ssl.*, timeouts, "
        "auto.offset.reset... Options the app manages itself (see MANAGED_OPTIONS) are refused.",
    ),
    "TOPICS": (
        {},
        "Per-topic overrides keyed by the unprefixed topic name; see TOPIC_SETTINGS_DOC.",
    ),
    "POLL_TIMEOUT": (
        1.0,
        "Seconds one poll() waits for a message. Bounds how fast SIGTERM and --idle-timeout are noticed.",
    ),
    "CONNECT_TIMEOUT": (
        30.0,
        "Seconds to wait at startup for the cluster's metadata before giving up with a non-zero exit.",
    ),
    "PROGRESS_INTERVAL": (
        60.0,
        "Seconds between INFO progress lines (messages handled and rate).",
    ),
}

#: Documentation of every per-topic key under ``TOPICS[<topic>]``.
TOPIC_SETTINGS_DOC: dict[str, tuple[Any, str]] = {
    "GROUP_ID": (None, "Consumer group for this topic; overrides the top-level GROUP_ID."),
    "DESERIALIZER": (
        "json",
        "How message values are decoded: 'json', 'str', 'bytes', or a dotted path to a "
        "callable taking the raw bytes and returning the value.",
    ),
    "KEY_DESERIALIZER": ("str", "How message keys are decoded; same choices as DESERIALIZER."),
    "CONSUMER_CONFIG": ({}, "librdkafka options for this topic only, merged over the top-level ones."),
}

#: librdkafka options the app sets itself; letting users override them would break its guarantees.
MANAGED_OPTIONS: dict[str, str] = {
    "bootstrap.servers": "set KAFKA_CONSUMER['BOOTSTRAP_SERVERS'] instead",
    "group.id": "set KAFKA_CONSUMER['GROUP_ID'], TOPICS[<topic>]['GROUP_ID'] or --group-id instead",
    "enable.auto.offset.store": "offsets are stored only after every receiver returned (at-least-once)",
    "enable.auto.commit": "stored offsets are committed automatically and on revoke and shutdown",
}

_NUMBER_SETTINGS = ("POLL_TIMEOUT", "CONNECT_TIMEOUT", "PROGRESS_INTERVAL")


@dataclass(frozen=True)
class Problem:
    """One invalid or missing setting: a stable check id, what is wrong, and how to fix it."""

    id: str
    msg: str
    hint: str

    def one_line(self) -> str:
        """Render the problem as the single line ``consume_events`` prints before exiting."""
        return f"{self.msg} ({self.id}). {self.hint}"


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


def raw_settings() -> dict[str, Any]:
    """Return ``settings.KAFKA_CONSUMER`` as read right now (an empty dict when unset)."""
    value = getattr(settings, "KAFKA_CONSUMER", None)
    return value if isinstance(value, dict) else {}


def bootstrap_servers() -> str | None:
    """Return the brokers as one comma-separated string, or None when unset."""
    value = raw_settings().get("BOOTSTRAP_SERVERS")
    if isinstance(value, (list, tuple)):
        value = ",".join(str(item) for item in value)
    return value or None


def topic_prefix() -> str:
    """Return the environment prefix ('' when unset)."""
    return raw_settings().get("TOPIC_PREFIX") or ""


def kafka_topic_name(topic: str) -> str:
    """Return the Kafka topic that ``--topic topic`` consumes, with the prefix applied."""
    prefix = topic_prefix()
    return f"{prefix}-{topic}" if prefix else topic


def topic_overrides(topic: str) -> dict[str, Any]:
    """Return the ``TOPICS[topic]`` dict (empty when the topic has no overrides)."""
    topics = raw_settings().get("TOPICS") or {}
    value = topics.get(topic) if isinstance(topics, dict) else None
    return value if isinstance(value, dict) else {}


def group_id(topic: str, override: str | None = None) -> str | None:
    """Return the consumer group for ``topic``: ``--group-id``, then the topic's, then the default."""
    return override or topic_overrides(topic).get("GROUP_ID") or raw_settings().get("GROUP_ID") or None


def get_topic_config(topic: str, group_override: str | None = None) -> TopicConfig:
    """
    Resolve the settings for one topic.

    Raises ConfigurationError, naming the first problem and its fix, when settings are invalid.
    """
    found = problems(topic=topic, group_override=group_override)
    if found:
        raise ConfigurationError(found[0].one_line())
    top = raw_settings()
    overrides = topic_overrides(topic)
    merged = {**(top.get("CONSUMER_CONFIG") or {}), **(overrides.get("CONSUMER_CONFIG") or {})}
    return TopicConfig(
        topic=topic,
        kafka_topic=kafka_topic_name(topic),
        group_id=group_id(topic, group_override) or "",
        bootstrap_servers=bootstrap_servers() or "",
        deserializer=overrides.get("DESERIALIZER", "json"),
        key_deserializer=overrides.get("KEY_DESERIALIZER", "str"),
        consumer_config=merged,
        poll_timeout=float(top.get("POLL_TIMEOUT", 1.0)),
        connect_timeout=float(top.get("CONNECT_TIMEOUT", 30.0)),
        progress_interval=float(top.get("PROGRESS_INTERVAL", 60.0)),
    )


def problems(topic: str | None = None, group_override: str | None = None) -> list[Problem]:
    """
    Return every problem with the settings, in a stable order.

    With ``topic`` it also checks that a group id resolves for that topic, as the command needs.
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
                "Define KAFKA_CONSUMER as a dict of the keys documented in the README.",
            )
        ]
    found = _top_level_problems(value)
    found += _consumer_config_problems(value.get("CONSUMER_CONFIG"), "KAFKA_CONSUMER['CONSUMER_CONFIG']")
    found += _topics_problems(value.get("TOPICS"))
    if topic is not None and not group_id(topic, group_override):
        found.append(
            Problem(
                "kafka_consumer_app.E010",
                f"no consumer group is configured for topic {topic!r}",
                "Set KAFKA_CONSUMER['GROUP_ID'], KAFKA_CONSUMER['TOPICS'][topic]['GROUP_ID'], or pass --group-id.",
            )
        )
    return found


def _top_level_problems(value: dict[str, Any]) -> list[Problem]:
    found = []
    unknown = sorted(set(value) - set(SETTINGS_DOC))
    if unknown:
        found.append(
            Problem(
                "kafka_consumer_app.E003",
                f"unknown key(s) in KAFKA_CONSUMER: {', '.join(unknown)}",
                f"Valid keys are {', '.join(SETTINGS_DOC)}; librdkafka options go in CONSUMER_CONFIG.",
            )
        )
    servers = value.get("BOOTSTRAP_SERVERS")
    if not servers or not isinstance(servers, (str, list, tuple)):
        found.append(
            Problem(
                "kafka_consumer_app.E004",
                "KAFKA_CONSUMER['BOOTSTRAP_SERVERS'] is missing or empty",
                "Set it to the brokers' 'host:port' list, e.g. 'kafka-1:9092,kafka-2:9092'.",
            )
        )
    for key in _NUMBER_SETTINGS:
        number = value.get(key, 1.0)
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number <= 0:
            found.append(
                Problem(
                    "kafka_consumer_app.E005",
                    f"KAFKA_CONSUMER['{key}'] must be a positive number of seconds, not {number!r}",
                    f"Remove {key} to use the default of {SETTINGS_DOC[key][0]}s, or set a positive number.",
                )
            )
    for key in ("GROUP_ID", "TOPIC_PREFIX"):
        text = value.get(key)
        if text is not None and not isinstance(text, str):
            found.append(
                Problem(
                    "kafka_consumer_app.E006",
                    f"KAFKA_CONSUMER['{key}'] must be a string, not {type(text).__name__}",
                    f"Set {key} to a string or remove it.",
                )
            )
    return found


def _consumer_config_problems(config: Any, where: str) -> list[Problem]:
    if config is None:
        return []
    if not isinstance(config, dict):
        return [
            Problem(
                "kafka_consumer_app.E007",
                f"{where} must be a dict of librdkafka options, not {type(config).__name__}",
                "Use librdkafka property names as keys, e.g. {'security.protocol': 'SASL_SSL'}.",
            )
        ]
    return [
        Problem(
            "kafka_consumer_app.E008",
            f"{where} sets {option!r}, which kafka_consumer_app manages",
            f"Remove it: {reason}.",
        )
        for option, reason in MANAGED_OPTIONS.items()
        if option in config
    ]


def _topics_problems(topics: Any) -> list[Problem]:
    if topics is None:
        return []
    if not isinstance(topics, dict) or not all(isinstance(item, dict) for item in topics.values()):
        return [
            Problem(
                "kafka_consumer_app.E009",
                "KAFKA_CONSUMER['TOPICS'] must map topic names to dicts of overrides",
                "Write TOPICS = {'my-topic': {'GROUP_ID': '...', 'DESERIALIZER': 'json'}}.",
            )
        ]
    found = []
    for name, overrides in topics.items():
        unknown = sorted(set(overrides) - set(TOPIC_SETTINGS_DOC))
        if unknown:
            found.append(
                Problem(
                    "kafka_consumer_app.E011",
                    f"unknown key(s) in KAFKA_CONSUMER['TOPICS'][{name!r}]: {', '.join(unknown)}",
                    f"Valid per-topic keys are {', '.join(TOPIC_SETTINGS_DOC)}.",
                )
            )
        for key in ("DESERIALIZER", "KEY_DESERIALIZER"):
            if key in overrides:
                message = deserializer_problem(overrides[key])
                if message:
                    found.append(
                        Problem(
                            "kafka_consumer_app.E012",
                            f"KAFKA_CONSUMER['TOPICS'][{name!r}]['{key}'] {message}",
                            "Use 'json', 'str', 'bytes', or the dotted path of an importable callable.",
                        )
                    )
        found += _consumer_config_problems(
            overrides.get("CONSUMER_CONFIG"), f"KAFKA_CONSUMER['TOPICS'][{name!r}]['CONSUMER_CONFIG']"
        )
    return found
