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

import errno
import math
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.heartbeat import default_heartbeat_file
from kafka_consumer_app.serialization import deserializer_problem
from kafka_consumer_app.validation import (
    KAFKA_TOPIC_NAME,
    MAX_TOPIC_LENGTH,
    group_id_problem,
    key_list,
    librdkafka_value_problem,
    path_problem,
    seconds_problem,
    text_problem,
    topic_name_problem,
    valid_port,
)

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
    "MANIFESTS": (
        {},
        "Options of consumer_manifests (the Kubernetes manifests): service-wide keys in MANIFESTS_DOC, "
        "and defaults of the per-topic manifest keys (REPLICAS, MEMORY_REQUEST...) for every topic.",
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
    "RETRY": (
        {},
        "Default retry policy of every topic; keys in RETRY_DOC. A topic's RETRY is merged over it.",
    ),
    "FAILURE_POLICY": (
        None,
        "What happens to a message after its last attempt: 'dead-letter' (the default when the "
        "topic has a dead-letter topic), 'stop' (exit non-zero without committing; the default "
        "otherwise) or 'skip' (log and commit; only when chosen explicitly).",
    ),
    "CIRCUIT_BREAKER": (
        5,
        "Exit non-zero after this many consecutive messages failed their last attempt, so that "
        "Kubernetes restarts the pod (for example while a database is down). None disables it.",
    ),
    "HANDLER_SOFT_TIMEOUT": (
        60.0,
        "Seconds after which a receiver still running is logged, with its stack, as stalled.",
    ),
    "HANDLER_HARD_TIMEOUT": (
        None,
        "Seconds after which a stalled receiver makes the process exit non-zero (code 5), so the "
        "message is redelivered. Default: 90% of max.poll.interval.ms; must stay below it.",
    ),
    "HEARTBEAT_FILE": (
        None,
        "File touched after every poll (at most once a second) for the liveness probe. Default: "
        "'<tmp>/kafka-consumer-<topic>.heartbeat'. False disables it.",
    ),
    "HEARTBEAT_MAX_AGE": (
        60.0,
        "Seconds without a poll after which the loop counts as stalled (liveness probe, /healthz).",
    ),
    "HEALTH_PORT": (
        None,
        "Port of the HTTP server of /healthz, /readyz and /metrics, run while the loop runs. None (the "
        "default) turns it off; consume_events --health-port overrides it.",
    ),
    "HEALTH_HOST": (
        "0.0.0.0",
        "Address the health server binds: '0.0.0.0' (every IPv4 interface, for Kubernetes probes and "
        "Prometheus), '127.0.0.1', '::', or a host name.",
    ),
    "PRODUCER_CONFIG": (
        {},
        "librdkafka options of the dead-letter producer. The security.*, sasl.*, ssl.* and other "
        "connection options of CONSUMER_CONFIG are copied to it; these override them.",
    ),
    "SCHEMA_REGISTRY": (
        None,
        "The Confluent schema registry that Avro messages (DESERIALIZER 'avro', OPENEDX_EVENTS topics) are "
        "decoded with; keys in SCHEMA_REGISTRY_DOC. Its credentials are never logged.",
    ),
}

#: Documentation of the keys of a RETRY dict (top level or per topic).
RETRY_DOC: dict[str, tuple[Any, str]] = {
    "ATTEMPTS": (3, "Tries in all, the first one included; 1 means no retry."),
    "INITIAL_BACKOFF": (1.0, "Seconds before the second try."),
    "MAX_BACKOFF": (30.0, "Upper bound of any backoff, in seconds."),
    "MULTIPLIER": (2.0, "Each backoff is the previous one times this."),
    "JITTER": (0.1, "Each backoff is randomised by up to this fraction, up or down."),
    "NOT_RETRIED": (
        [],
        "Dotted paths of exception classes never retried: a message failing with one goes "
        "straight to the failure policy.",
    ),
}

#: Documentation of the keys of the SCHEMA_REGISTRY dict.
SCHEMA_REGISTRY_DOC: dict[str, tuple[Any, str]] = {
    "URL": (None, "Required. The registry's URL, without credentials in it, e.g. 'https://schema-registry:8081'."),
    "BASIC_AUTH_USER_INFO": (
        None,
        "'<key>:<secret>' for HTTP basic authentication (e.g. a Confluent Cloud API key); read it from the "
        "environment. Never logged.",
    ),
    "CONFIG": (
        {},
        "More confluent-kafka SchemaRegistryClient options: 'ssl.ca.location', 'timeout', 'max.retries'...",
    ),
}

#: The value deserializer of OPENEDX_EVENTS topics (needs the openedx extra).
OPENEDX_DESERIALIZER = "kafka_consumer_app.engine.openedx.decode_event"

#: Documentation of every per-topic key under ``TOPICS[<topic>]``.
TOPIC_SETTINGS_DOC: dict[str, tuple[Any, str]] = {
    "GROUP_ID": (None, "Consumer group for this topic; overrides the top-level GROUP_ID."),
    "DESERIALIZER": (
        "json",
        "How message values are decoded: 'json', 'str', 'bytes', 'avro' (Confluent wire format, with "
        "SCHEMA_REGISTRY), or a dotted path to a callable taking the raw bytes and returning the value.",
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
    "CONSUMER_CONFIG": ({}, "librdkafka options for this topic only, merged over the top-level ones."),
    "RETRY": ({}, "This topic's retry policy, merged key by key over the top-level RETRY."),
    "FAILURE_POLICY": (None, "This topic's failure policy; overrides the top-level one."),
    "DEAD_LETTER_TOPIC": (
        "<kafka topic>-dlt",
        "Where failed and malformed messages are parked. None disables dead-lettering.",
    ),
    "CIRCUIT_BREAKER": (5, "This topic's circuit breaker threshold; overrides the top-level one."),
    "HANDLER_SOFT_TIMEOUT": (60.0, "This topic's soft receiver time limit, in seconds."),
    "HANDLER_HARD_TIMEOUT": (None, "This topic's hard receiver time limit, in seconds."),
    # Read only by consumer_manifests (operations.manifests); each may also be set in MANIFESTS for every topic.
    "REPLICAS": (1, "Replicas of the topic's Deployment when KEDA does not scale it; at most PARTITIONS."),
    "PARTITIONS": (
        None,
        "The topic's partition count: the most replicas that get work. Caps REPLICAS and KEDA's "
        "maxReplicaCount; required with KEDA.",
    ),
    "KEDA": (
        False,
        "Scale the topic's Deployment on consumer lag with a KEDA ScaledObject; the Deployment then has no "
        "replicas field. consumer_manifests --keda sets it for every topic rendered.",
    ),
    "MIN_REPLICAS": (1, "KEDA's minReplicaCount; 0 lets KEDA scale the consumer to zero while there is no lag."),
    "MAX_REPLICAS": (None, "KEDA's maxReplicaCount. Default, and upper bound: PARTITIONS."),
    "LAG_THRESHOLD": (100, "KEDA's lagThreshold: the consumer lag per replica that KEDA scales towards."),
    "MEMORY_REQUEST": ("256Mi", "The consumer container's memory request (a Kubernetes quantity)."),
    "MEMORY_LIMIT": (
        None,
        "The consumer container's memory limit. Default: MEMORY_REQUEST, so the pod is never evicted for "
        "using memory it was not guaranteed.",
    ),
    "CPU_REQUEST": ("100m", "The consumer container's CPU request. No CPU limit is set: throttling stalls the loop."),
}

#: The suffix of the default dead-letter topic: ``<kafka topic>-dlt``.
DEAD_LETTER_SUFFIX = "-dlt"
FAILURE_POLICIES = ("dead-letter", "stop", "skip")

#: librdkafka options the app sets itself; letting users override them would break its guarantees.
MANAGED_OPTIONS: dict[str, str] = {
    "bootstrap.servers": "set KAFKA_CONSUMER['BOOTSTRAP_SERVERS'] instead",
    "group.id": "set KAFKA_CONSUMER['GROUP_ID'], TOPICS[<topic>]['GROUP_ID'] or --group-id instead",
    "enable.auto.offset.store": "offsets are stored only after every receiver returned (at-least-once)",
    "enable.auto.commit": "stored offsets are committed automatically and on revoke and shutdown",
}

_NUMBER_SETTINGS = ("POLL_TIMEOUT", "CONNECT_TIMEOUT", "PROGRESS_INTERVAL", "HEARTBEAT_MAX_AGE")


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
class RetryConfig:
    """How often and how patiently a failed message is tried again (see RETRY_DOC)."""

    attempts: int = 3
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1
    not_retried: tuple[str, ...] = ()


@dataclass(frozen=True)
class FailureConfig:
    """What happens to a message whose receivers fail, and the limits that keep the loop alive."""

    retry: RetryConfig = field(default_factory=RetryConfig)
    policy: str = "stop"
    dead_letter_topic: str | None = None
    circuit_breaker: int | None = 5
    soft_timeout: float | None = 60.0
    hard_timeout: float = 270.0
    producer_config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthConfig:
    """Where the loop reports that it is alive, how stale is too stale, and where probes and metrics are served."""

    heartbeat_file: str | None = None
    max_age: float = 60.0
    #: The health server's port; None when it is off.
    port: int | None = None
    host: str = "0.0.0.0"


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
    if override is not None:  # an explicit value, even an empty one (refused by problems()), is never replaced
        return override
    return topic_overrides(topic).get("GROUP_ID") or raw_settings().get("GROUP_ID") or None


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
    merged = {**(top.get("CONSUMER_CONFIG") or {}), **(overrides.get("CONSUMER_CONFIG") or {})}
    return TopicConfig(
        topic=topic,
        kafka_topic=kafka_topic_name(topic),
        group_id=group_id(topic, group_override) or "",
        bootstrap_servers=bootstrap_servers() or "",
        deserializer=OPENEDX_DESERIALIZER if openedx else overrides.get("DESERIALIZER", "json"),
        key_deserializer=overrides.get("KEY_DESERIALIZER", "avro" if openedx else "str"),
        consumer_config=merged,
        poll_timeout=float(top.get("POLL_TIMEOUT", 1.0)),
        connect_timeout=float(top.get("CONNECT_TIMEOUT", 30.0)),
        progress_interval=float(top.get("PROGRESS_INTERVAL", 60.0)),
        failure=_failure_config(top, overrides, kafka_topic_name(topic), merged),
        health=_health_config(top, topic),
        openedx_events=openedx,
    )


def _health_config(top: dict[str, Any], topic: str) -> HealthConfig:
    heartbeat = top.get("HEARTBEAT_FILE")
    if heartbeat is None:
        heartbeat = default_heartbeat_file(topic)
    return HealthConfig(
        heartbeat_file=heartbeat or None,
        max_age=float(top.get("HEARTBEAT_MAX_AGE", 60.0)),
        port=top.get("HEALTH_PORT") or None,
        host=top.get("HEALTH_HOST") or SETTINGS_DOC["HEALTH_HOST"][0],
    )


def _setting(top: dict[str, Any], overrides: dict[str, Any], key: str) -> Any:
    """A failure-handling setting: the topic's value, else the top-level one, else the default."""
    if key in overrides:
        return overrides[key]
    if key in top:
        return top[key]
    return SETTINGS_DOC[key][0]


def max_poll_interval(consumer_config: Mapping[str, Any]) -> float:
    """librdkafka's max.poll.interval.ms, in seconds (300 when unset)."""
    return float(consumer_config.get("max.poll.interval.ms", 300000)) / 1000


def _retry_config(top: dict[str, Any], overrides: dict[str, Any]) -> RetryConfig:
    values = {key: default for key, (default, _doc) in RETRY_DOC.items()}
    values.update(top.get("RETRY") or {})
    values.update(overrides.get("RETRY") or {})
    return RetryConfig(
        attempts=int(values["ATTEMPTS"]),
        initial_backoff=float(values["INITIAL_BACKOFF"]),
        max_backoff=float(values["MAX_BACKOFF"]),
        multiplier=float(values["MULTIPLIER"]),
        jitter=float(values["JITTER"]),
        not_retried=tuple(values["NOT_RETRIED"]),
    )


def _failure_config(
    top: dict[str, Any], overrides: dict[str, Any], kafka_topic: str, consumer_config: Mapping[str, Any]
) -> FailureConfig:
    dlt = (
        overrides["DEAD_LETTER_TOPIC"] or None if "DEAD_LETTER_TOPIC" in overrides else kafka_topic + DEAD_LETTER_SUFFIX
    )
    policy = _setting(top, overrides, "FAILURE_POLICY") or ("dead-letter" if dlt else "stop")
    hard = _setting(top, overrides, "HANDLER_HARD_TIMEOUT")
    return FailureConfig(
        retry=_retry_config(top, overrides),
        policy=policy,
        dead_letter_topic=dlt,
        circuit_breaker=_setting(top, overrides, "CIRCUIT_BREAKER") or None,
        soft_timeout=_setting(top, overrides, "HANDLER_SOFT_TIMEOUT"),
        hard_timeout=float(hard) if hard else 0.9 * max_poll_interval(consumer_config),
        producer_config=dict(top.get("PRODUCER_CONFIG") or {}),
    )


def problems(
    topic: str | None = None, group_override: str | None = None, openedx_events: bool | None = None
) -> list[Problem]:
    """
    Return every problem with the settings, in a stable order.

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
                "Define KAFKA_CONSUMER as a dict of the keys documented in the README.",
            )
        ]
    found = _option_problems(topic, group_override)
    found += _top_level_problems(value)
    found += _consumer_config_problems(value.get("CONSUMER_CONFIG"), "KAFKA_CONSUMER['CONSUMER_CONFIG']")
    found += _topics_problems(value.get("TOPICS"))
    found += _manifests_problems(value)
    found += _failure_problems(value, "KAFKA_CONSUMER", value.get("CONSUMER_CONFIG"))
    if value.get("PRODUCER_CONFIG") is not None and not isinstance(value.get("PRODUCER_CONFIG"), dict):
        found.append(
            Problem(
                "kafka_consumer_app.E018",
                "KAFKA_CONSUMER['PRODUCER_CONFIG'] must be a dict of librdkafka options",
                "Use librdkafka property names as keys, e.g. {'linger.ms': 0}.",
            )
        )
    found += _coverage_problems(value)
    found += _avro_problems(value, topic if openedx_events else None)
    if topic is not None and not group_id(topic, group_override):
        found.append(
            Problem(
                "kafka_consumer_app.E010",
                f"no consumer group is configured for topic {topic!r}",
                "Set KAFKA_CONSUMER['GROUP_ID'], KAFKA_CONSUMER['TOPICS'][topic]['GROUP_ID'], or pass --group-id.",
            )
        )
    return found


def _option_problems(topic: Any, group_override: Any) -> list[Problem]:
    """The topic and group a command was given (``--topic``, ``--group-id``), which reach librdkafka as they are."""
    found = []
    problem = topic_name_problem(topic) if topic is not None else None
    length = len(kafka_topic_name(topic)) if isinstance(topic, str) else 0
    if problem is None and length > MAX_TOPIC_LENGTH:
        problem = f"with TOPIC_PREFIX makes a name of {length} characters, more than Kafka's {MAX_TOPIC_LENGTH}"
    if problem:
        found.append(Problem("kafka_consumer_app.E050", f"--topic {problem}", "Name an existing Kafka topic."))
    if group_override is not None and group_id_problem(group_override):
        found.append(
            Problem(
                "kafka_consumer_app.E051",
                f"--group-id {group_id_problem(group_override)}",
                "Give a consumer group name, or leave --group-id out to use the group of the settings.",
            )
        )
    return found


def _group_id_problems(value: dict[str, Any]) -> list[Problem]:
    """The top-level GROUP_ID: a string that librdkafka accepts (an empty or blank one aborts its client)."""
    group = value.get("GROUP_ID")
    if not isinstance(group, str) or not group_id_problem(group):
        return []  # None: unset; another type: E006
    return [
        Problem(
            "kafka_consumer_app.E046",
            f"KAFKA_CONSUMER['GROUP_ID'] {group_id_problem(group)}",
            "Set the service's consumer group name, or remove GROUP_ID and name a group per topic or with --group-id.",
        )
    ]


def _top_level_problems(value: dict[str, Any]) -> list[Problem]:
    found = []
    unknown = key_list(set(value) - set(SETTINGS_DOC))
    if unknown:
        found.append(
            Problem(
                "kafka_consumer_app.E003",
                f"unknown key(s) in KAFKA_CONSUMER: {unknown}",
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
        problem = seconds_problem(value.get(key, 1.0))  # NaN, infinities and bools too
        if problem:
            found.append(
                Problem(
                    "kafka_consumer_app.E005",
                    f"KAFKA_CONSUMER['{key}'] {problem}",
                    f"Remove {key} to use the default of {SETTINGS_DOC[key][0]}s, or set a positive number.",
                )
            )
    heartbeat = value.get("HEARTBEAT_FILE")
    if heartbeat is not None and heartbeat is not False and path_problem(heartbeat):
        found.append(
            Problem(
                "kafka_consumer_app.E019",
                f"KAFKA_CONSUMER['HEARTBEAT_FILE'] must be a file path or False, not {heartbeat!r}",
                "Remove it for the default under the temporary directory, or set False to disable the heartbeat.",
            )
        )
    found += _group_id_problems(value)
    found += _health_server_problems(value)
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
        found += _failure_problems(overrides, f"KAFKA_CONSUMER['TOPICS'][{name!r}]", _merged_consumer_config(overrides))
        found += _dead_letter_problems(name, overrides)
    return found


def _failure_problems(scope: dict[str, Any], where: str, consumer_config: Any) -> list[Problem]:
    """Problems with the failure-handling keys of the top level or of one topic."""
    found = _retry_problems(scope.get("RETRY"), f"{where}['RETRY']")
    policy = scope.get("FAILURE_POLICY")
    if policy is not None and policy not in FAILURE_POLICIES:
        found.append(
            Problem(
                "kafka_consumer_app.E014",
                f"{where}['FAILURE_POLICY'] is {policy!r}",
                f"Use one of {', '.join(FAILURE_POLICIES)}, or remove it for the default.",
            )
        )
    breaker = scope.get("CIRCUIT_BREAKER")
    if breaker is not None and (isinstance(breaker, bool) or not isinstance(breaker, int) or breaker < 1):
        found.append(
            Problem(
                "kafka_consumer_app.E016",
                f"{where}['CIRCUIT_BREAKER'] must be a positive integer or None, not {breaker!r}",
                "Set the number of consecutive failed messages that stops the consumer, or None to disable it.",
            )
        )
    found += _timeout_problems(scope, where, consumer_config)
    return found


def _positive(value: Any) -> bool:
    """A finite number of seconds above zero, at most librdkafka's longest timeout (no bool, NaN or infinity)."""
    return seconds_problem(value) is None


def _non_negative(value: Any) -> bool:
    """As _positive, zero included."""
    return seconds_problem(value, allow_zero=True) is None


def _timeout_problems(scope: dict[str, Any], where: str, consumer_config: Any) -> list[Problem]:
    found = []
    for key in ("HANDLER_SOFT_TIMEOUT", "HANDLER_HARD_TIMEOUT"):
        if scope.get(key) is not None and not _positive(scope[key]):
            found.append(
                Problem(
                    "kafka_consumer_app.E017",
                    f"{where}['{key}'] must be a positive number of seconds or None, not {scope[key]!r}",
                    f"Remove {key} for the default, or set a positive number.",
                )
            )
    hard = scope.get("HANDLER_HARD_TIMEOUT")
    config = consumer_config if isinstance(consumer_config, dict) else {}
    if _positive(hard) and _valid_max_poll_interval(config) and hard >= max_poll_interval(config):
        found.append(
            Problem(
                "kafka_consumer_app.E017",
                f"{where}['HANDLER_HARD_TIMEOUT'] ({hard:g}s) is not below max.poll.interval.ms "
                f"({max_poll_interval(config):g}s), so the broker would evict the consumer first",
                "Lower HANDLER_HARD_TIMEOUT or raise max.poll.interval.ms in CONSUMER_CONFIG.",
            )
        )
    return found


def _retry_problems(retry: Any, where: str) -> list[Problem]:
    if retry is None:
        return []
    hint = "See RETRY in the README: ATTEMPTS >= 1, backoffs >= 0, MULTIPLIER >= 1, 0 <= JITTER <= 1."
    if not isinstance(retry, dict):
        return [Problem("kafka_consumer_app.E013", f"{where} must be a dict, not {type(retry).__name__}", hint)]
    found = []
    unknown = key_list(set(retry) - set(RETRY_DOC))
    if unknown:
        found.append(Problem("kafka_consumer_app.E013", f"unknown key(s) in {where}: {unknown}", hint))
    checks = {
        "ATTEMPTS": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "INITIAL_BACKOFF": _non_negative,
        "MAX_BACKOFF": _non_negative,
        "MULTIPLIER": lambda v: _positive(v) and v >= 1,
        "JITTER": lambda v: _non_negative(v) and v <= 1,
    }
    for key, valid in checks.items():
        if key in retry and not valid(retry[key]):
            found.append(Problem("kafka_consumer_app.E013", f"{where}['{key}'] is invalid: {retry[key]!r}", hint))
    not_retried = retry.get("NOT_RETRIED", [])
    if not isinstance(not_retried, (list, tuple)):  # None too: the resolved config iterates it
        found.append(
            Problem(
                "kafka_consumer_app.E047",
                f"{where}['NOT_RETRIED'] must be a list of dotted paths, not {type(not_retried).__name__}",
                "Write NOT_RETRIED = ['json.JSONDecodeError'], a list even for one exception class.",
            )
        )
        not_retried = []
    for path in not_retried:
        problem = exception_class_problem(path)
        if problem:
            found.append(
                Problem(
                    "kafka_consumer_app.E013",
                    f"{where}['NOT_RETRIED'] entry {path!r} {problem}",
                    "List dotted paths of exception classes, e.g. 'json.JSONDecodeError'.",
                )
            )
    return found


def exception_class_problem(path: Any) -> str | None:
    """Return why ``path`` is not the dotted path of an exception class, or None when it is."""
    if not isinstance(path, str) or "." not in path:
        return "is not a dotted path"
    try:
        loaded = import_string(path)
    except ImportError as error:
        return f"cannot be imported: {error}"
    if not (isinstance(loaded, type) and issubclass(loaded, BaseException)):
        return "is not an exception class"
    return None


def _dead_letter_problems(name: str, overrides: dict[str, Any]) -> list[Problem]:
    found = []
    where = f"KAFKA_CONSUMER['TOPICS'][{name!r}]"
    dlt = overrides.get("DEAD_LETTER_TOPIC")
    # An explicitly empty name would silently disable dead-lettering: None (or False) says so on purpose.
    if dlt is not None and dlt is not False and (not isinstance(dlt, str) or dlt == name or not dlt.strip()):
        found.append(
            Problem(
                "kafka_consumer_app.E015",
                f"{where}['DEAD_LETTER_TOPIC'] must be another topic's name or None, not {dlt!r}",
                f"Remove it for the default '{name}{DEAD_LETTER_SUFFIX}', or set None to disable dead-lettering.",
            )
        )
    policy = overrides.get("FAILURE_POLICY")
    if "DEAD_LETTER_TOPIC" in overrides and not dlt and policy == "dead-letter":
        found.append(
            Problem(
                "kafka_consumer_app.E014",
                f"{where} sets FAILURE_POLICY 'dead-letter' but disables DEAD_LETTER_TOPIC",
                "Name a DEAD_LETTER_TOPIC, or choose FAILURE_POLICY 'stop' or 'skip'.",
            )
        )
    return found


def _health_server_problems(value: dict[str, Any]) -> list[Problem]:
    found = []
    port = value.get("HEALTH_PORT")
    if port is not None and not valid_port(port):
        found.append(
            Problem(
                "kafka_consumer_app.E020",
                f"KAFKA_CONSUMER['HEALTH_PORT'] must be a port number from 1 to 65535 or None, not {port!r}",
                "Set the port of /healthz, /readyz and /metrics, e.g. 9100, or None to turn the health server off.",
            )
        )
    host = value.get("HEALTH_HOST")
    if host is not None and (text_problem(host, "an address") or len(host) > 253 or not host.isascii()):
        found.append(
            Problem(
                "kafka_consumer_app.E021",
                f"KAFKA_CONSUMER['HEALTH_HOST'] must be an address or host name, not {host!r}",
                "Remove it to bind every interface ('0.0.0.0'), or set e.g. '127.0.0.1' or '::'.",
            )
        )
    return found


def describe_bind_error(host: str, port: int, error: OSError) -> str:
    """One line saying why the health server cannot bind ``host:port``, and what to do."""
    where = f"{host}:{port}"
    fix = "choose another port with --health-port or KAFKA_CONSUMER['HEALTH_PORT']"
    if error.errno == errno.EADDRINUSE:
        return f"cannot serve /healthz, /readyz and /metrics: port {port} ({where}) is already in use; {fix}"
    if error.errno == errno.EACCES:
        return (
            f"cannot serve /healthz, /readyz and /metrics on {where}: permission denied "
            f"(ports below 1024 need privileges); {fix}"
        )
    return (
        f"cannot serve /healthz, /readyz and /metrics on {where} ({error.strerror or error}); check "
        f"KAFKA_CONSUMER['HEALTH_HOST'] or {fix}"
    )


def bind_error(host: str, port: int) -> OSError | None:
    """Try to bind ``host:port`` as the health server would (then release it); return the error, or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As http.server does: a port left in TIME_WAIT by a previous run is free, one with a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        return error
    return None


def health_port_problems() -> list[Problem]:
    """
    The deployment check of the health server: can ``HEALTH_HOST:HEALTH_PORT`` be bound here, now?

    It binds the port and releases it at once. Registered as a deployment check
    (``manage.py check --deploy``), not a default one: on a machine where the consumer is
    already running, its own server holds the port, and ``migrate`` or ``runserver`` must not
    fail for that. ``--health-port`` is not seen by checks; ``consume_events`` fails the same
    way at startup, with the same line, for whichever port it is given.
    """
    value = raw_settings()
    port, host = value.get("HEALTH_PORT"), value.get("HEALTH_HOST") or SETTINGS_DOC["HEALTH_HOST"][0]
    if not valid_port(port) or not isinstance(host, str):
        return []
    error = bind_error(host, port)
    if error is None:
        return []
    return [
        Problem(
            "kafka_consumer_app.E022",
            describe_bind_error(host, port, error),
            "Stop the process holding the port (see `ss -ltnp`), or set another KAFKA_CONSUMER['HEALTH_PORT'].",
        )
    ]


# -- settings coverage: types, names and the security pass-through (E040 and up) -----------

#: librdkafka's security.protocol values (it accepts any case).
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: librdkafka's sasl.mechanism values (case-sensitive).
SASL_MECHANISMS = ("GSSAPI", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
#: Mechanisms that authenticate with sasl.username and sasl.password.
PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: Librdkafka options of the dead-letter producer that the app sets itself.
MANAGED_PRODUCER_OPTIONS: dict[str, str] = {
    "bootstrap.servers": "the producer uses KAFKA_CONSUMER['BOOTSTRAP_SERVERS']",
}


def _merged_consumer_config(overrides: dict[str, Any]) -> dict[str, Any]:
    """A topic's CONSUMER_CONFIG over the top-level one, ignoring either when it is not a dict."""
    top = raw_settings().get("CONSUMER_CONFIG")
    own = overrides.get("CONSUMER_CONFIG")
    return {**(top if isinstance(top, dict) else {}), **(own if isinstance(own, dict) else {})}


def _valid_max_poll_interval(config: Mapping[str, Any]) -> bool:
    value = config.get("max.poll.interval.ms", 300000)
    if isinstance(value, bool):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number > 0


def _coverage_problems(value: dict[str, Any]) -> list[Problem]:
    """Problems the older checks miss: entry types, topic names, librdkafka option types and security."""
    found = _bootstrap_entry_problems(value.get("BOOTSTRAP_SERVERS"))
    prefix = value.get("TOPIC_PREFIX")
    if isinstance(prefix, str) and prefix and not KAFKA_TOPIC_NAME.match(f"{prefix}-x"):
        found.append(
            Problem(
                "kafka_consumer_app.E045",
                f"KAFKA_CONSUMER['TOPIC_PREFIX'] {prefix!r} would make illegal Kafka topic names",
                "Use letters, digits, '.', '_' and '-' only (Kafka's rule for topic names).",
            )
        )
    found += _librdkafka_options_problems(value.get("CONSUMER_CONFIG"), "KAFKA_CONSUMER['CONSUMER_CONFIG']")
    found += _librdkafka_options_problems(value.get("PRODUCER_CONFIG"), "KAFKA_CONSUMER['PRODUCER_CONFIG']")
    producer = value.get("PRODUCER_CONFIG")
    if isinstance(producer, dict):
        found += [
            Problem(
                "kafka_consumer_app.E008",
                f"KAFKA_CONSUMER['PRODUCER_CONFIG'] sets {option!r}, which kafka_consumer_app manages",
                f"Remove it: {reason}.",
            )
            for option, reason in MANAGED_PRODUCER_OPTIONS.items()
            if option in producer
        ]
    top_config = value.get("CONSUMER_CONFIG")
    if top_config is None or isinstance(top_config, dict):
        found += _credentials_problems(top_config or {}, "KAFKA_CONSUMER['CONSUMER_CONFIG']")
    topics = value.get("TOPICS")
    if isinstance(topics, dict) and all(isinstance(item, dict) for item in topics.values()):
        for name, overrides in topics.items():
            found += _topic_coverage_problems(value, name, overrides)
    return found


def _bootstrap_entry_problems(servers: Any) -> list[Problem]:
    if not servers or not isinstance(servers, (str, list, tuple)):
        return []  # missing, empty or of the wrong type: E004
    entries = servers.split(",") if isinstance(servers, str) else servers
    if all(isinstance(entry, str) and not text_problem(entry.strip(), "a broker") for entry in entries):
        return []
    return [
        Problem(
            "kafka_consumer_app.E040",
            "KAFKA_CONSUMER['BOOTSTRAP_SERVERS'] has an empty, non-string or unprintable entry",
            "List the brokers as 'host:port' strings, e.g. 'kafka-1:9092,kafka-2:9092' or ['kafka-1:9092'].",
        )
    ]


def _librdkafka_options_problems(config: Any, where: str) -> list[Problem]:
    """Types of one dict of librdkafka options, and the values of its security options. Never quotes a value."""
    if not isinstance(config, dict):
        return []  # E007 / E018
    found = []
    for key, option in config.items():
        if text_problem(key, "an option name"):
            found.append(
                Problem(
                    "kafka_consumer_app.E041",
                    f"{where} has the key {key!r}; librdkafka option names are printable strings",
                    "Use librdkafka property names as keys, e.g. 'security.protocol'.",
                )
            )
        elif librdkafka_value_problem(key, option):
            found.append(
                Problem(
                    "kafka_consumer_app.E041",
                    f"{where}[{key!r}] {librdkafka_value_problem(key, option)}",
                    "librdkafka would receive its Python repr; set a string or number, or remove the option.",
                )
            )
    protocol = config.get("security.protocol")
    if isinstance(protocol, str) and protocol.upper() not in SECURITY_PROTOCOLS:
        found.append(
            Problem(
                "kafka_consumer_app.E042",
                f"{where}['security.protocol'] is {protocol!r}",
                f"Use one of {', '.join(SECURITY_PROTOCOLS)}.",
            )
        )
    for key in ("sasl.mechanism", "sasl.mechanisms"):
        mechanism = config.get(key)
        if isinstance(mechanism, str) and mechanism not in SASL_MECHANISMS:
            found.append(
                Problem(
                    "kafka_consumer_app.E043",
                    f"{where}[{key!r}] is {mechanism!r}, which librdkafka does not support",
                    f"Use one of {', '.join(SASL_MECHANISMS)} (upper case, as written here).",
                )
            )
    if not _valid_max_poll_interval(config):
        found.append(
            Problem(
                "kafka_consumer_app.E048",
                f"{where}['max.poll.interval.ms'] must be a positive number of milliseconds",
                "Set it to an integer such as 300000, or remove it for librdkafka's default (300000).",
            )
        )
    return found


def _credentials_problems(config: Mapping[str, Any], where: str) -> list[Problem]:
    """SASL PLAIN and SCRAM need a username and a password; say so before librdkafka refuses to start."""
    protocol = config.get("security.protocol")
    mechanism = config.get("sasl.mechanism", config.get("sasl.mechanisms"))
    if not (isinstance(protocol, str) and protocol.upper().startswith("SASL_") and mechanism in PASSWORD_MECHANISMS):
        return []
    missing = [key for key in ("sasl.username", "sasl.password") if not config.get(key)]
    if not missing:
        return []
    return [
        Problem(
            "kafka_consumer_app.E044",
            f"{where} uses SASL {mechanism} without {' and '.join(missing)}",
            "Set sasl.username and sasl.password, read from the environment, e.g. os.environ['KAFKA_PASSWORD'].",
        )
    ]


def _topic_coverage_problems(top: dict[str, Any], name: Any, overrides: dict[str, Any]) -> list[Problem]:
    where = f"KAFKA_CONSUMER['TOPICS'][{name!r}]"
    found = []
    if topic_name_problem(name):
        found.append(
            Problem(
                "kafka_consumer_app.E045",
                f"KAFKA_CONSUMER['TOPICS'] has the key {name!r}, which {topic_name_problem(name)}",
                "Key TOPICS by the topic's name as given to --topic: letters, digits, '.', '_' and '-'.",
            )
        )
    group = overrides.get("GROUP_ID")
    if "GROUP_ID" in overrides and group is not None and group_id_problem(group):
        found.append(
            Problem(
                "kafka_consumer_app.E046",
                f"{where}['GROUP_ID'] {group_id_problem(group)}",
                "Set the topic's consumer group name, or remove GROUP_ID to use the top-level one.",
            )
        )
    found += _librdkafka_options_problems(overrides.get("CONSUMER_CONFIG"), f"{where}['CONSUMER_CONFIG']")
    merged = _merged_consumer_config(overrides)
    if isinstance(overrides.get("CONSUMER_CONFIG"), dict):
        found += _credentials_problems(merged, f"{where}['CONSUMER_CONFIG'] (merged over the top level)")
    found += _dead_letter_coverage_problems(top, name, overrides, where)
    # The top-level hard limit applies to this topic too: it must stay below this topic's max.poll.interval.ms.
    hard = top.get("HANDLER_HARD_TIMEOUT")
    if (
        "HANDLER_HARD_TIMEOUT" not in overrides
        and _positive(hard)
        and _valid_max_poll_interval(merged)
        and hard >= max_poll_interval(merged)
    ):
        found.append(
            Problem(
                "kafka_consumer_app.E017",
                f"KAFKA_CONSUMER['HANDLER_HARD_TIMEOUT'] ({hard:g}s) is not below {where}'s max.poll.interval.ms "
                f"({max_poll_interval(merged):g}s), so the broker would evict that topic's consumer first",
                "Set a lower HANDLER_HARD_TIMEOUT for the topic, or raise its max.poll.interval.ms.",
            )
        )
    return found


def _dead_letter_coverage_problems(
    top: dict[str, Any], name: Any, overrides: dict[str, Any], where: str
) -> list[Problem]:
    found = []
    dlt = overrides.get("DEAD_LETTER_TOPIC")
    if isinstance(dlt, str) and dlt.strip():
        if topic_name_problem(dlt):
            found.append(
                Problem(
                    "kafka_consumer_app.E045",
                    f"{where}['DEAD_LETTER_TOPIC'] {topic_name_problem(dlt)}",
                    "Use letters, digits, '.', '_' and '-' only, at most 249 characters.",
                )
            )
        prefix = top.get("TOPIC_PREFIX")
        if isinstance(name, str) and isinstance(prefix, str) and prefix and dlt == f"{prefix}-{name}":
            found.append(
                Problem(
                    "kafka_consumer_app.E015",
                    f"{where}['DEAD_LETTER_TOPIC'] is the topic itself ({dlt!r}, with TOPIC_PREFIX)",
                    f"Remove it for the default '{dlt}{DEAD_LETTER_SUFFIX}', or set None to disable dead-lettering.",
                )
            )
    inherits_policy = "FAILURE_POLICY" not in overrides and top.get("FAILURE_POLICY") == "dead-letter"
    if "DEAD_LETTER_TOPIC" in overrides and not dlt and inherits_policy:
        found.append(
            Problem(
                "kafka_consumer_app.E014",
                f"{where} disables DEAD_LETTER_TOPIC but inherits FAILURE_POLICY 'dead-letter' from the top level",
                "Name a DEAD_LETTER_TOPIC, or set the topic's FAILURE_POLICY to 'stop' or 'skip'.",
            )
        )
    return found


# -- Kubernetes manifests: MANIFESTS and the per-topic manifest keys (E060 and up) ------------

#: Documentation of the service-wide keys of ``KAFKA_CONSUMER['MANIFESTS']``, read by ``consumer_manifests``.
MANIFESTS_DOC: dict[str, tuple[Any, str]] = {
    "APP_NAME": (
        "kafka-consumer",
        "The service's name: the app.kubernetes.io/name label, the name of the shared objects and the prefix of "
        "each topic's objects ('<APP_NAME>-<topic>'). A DNS label of at most 40 characters.",
    ),
    "NAMESPACE": (None, "Namespace of every object; --namespace overrides it. None leaves it to kubectl."),
    "ENV": (
        {},
        "Environment variables of the consumers that are not secret, rendered into the service's ConfigMap "
        "(envFrom). Put here every variable your settings read, with the value it has where you render, so "
        "the pods resolve the settings the manifests were rendered from. DJANGO_SETTINGS_MODULE is added.",
    ),
    "SECRET": (
        "<APP_NAME>-secrets",
        "Name of the Secret whose keys become environment variables (envFrom) and feed KEDA_AUTH. It is not "
        "rendered: create it with kubectl or your secret manager.",
    ),
    "KEDA_AUTH": (
        {},
        "KEDA Kafka scaler authentication parameters mapped to keys of SECRET, e.g. {'username': "
        "'KAFKA_USERNAME', 'password': 'KAFKA_PASSWORD'}: rendered as a TriggerAuthentication. sasl and tls "
        "are derived from CONSUMER_CONFIG unless mapped here.",
    ),
    "KEDA_SCALER": (
        "kafka",
        "KEDA trigger type: 'kafka' (KEDA's stable Apache Kafka scaler) or 'apache-kafka' (its experimental "
        "kafka-go based one). Both take the same metadata here.",
    ),
    "RUN_AS_USER": (10001, "UID and GID of the container: the restricted Pod Security profile needs non-root."),
}

#: The per-topic keys that only consumer_manifests reads; ``MANIFESTS`` may set a default for each.
MANIFEST_TOPIC_KEYS = (
    "REPLICAS",
    "PARTITIONS",
    "KEDA",
    "MIN_REPLICAS",
    "MAX_REPLICAS",
    "LAG_THRESHOLD",
    "MEMORY_REQUEST",
    "MEMORY_LIMIT",
    "CPU_REQUEST",
)
KEDA_SCALERS = ("kafka", "apache-kafka")
#: Parameters of KEDA's Kafka scalers that a TriggerAuthentication may take from a Secret.
KEDA_AUTH_PARAMETERS = (
    "sasl",
    "tls",
    "username",
    "password",
    "ca",
    "cert",
    "key",
    "keyPassword",
    "oauthTokenEndpointUri",
    "scopes",
    "oauthExtensions",
    "keytab",
    "realm",
    "kerberosConfig",
    "kerberosServiceName",
)
#: librdkafka's auto.offset.reset values, as KEDA's offsetResetPolicy (librdkafka's 'error' has no equivalent).
OFFSET_RESET_POLICIES = {
    "smallest": "earliest",
    "earliest": "earliest",
    "beginning": "earliest",
    "largest": "latest",
    "latest": "latest",
    "end": "latest",
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+\Z")
MAX_APP_NAME = 40
MEMORY_QUANTITY = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?\Z")
CPU_QUANTITY = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?m?\Z")
_MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def manifests_settings() -> dict[str, Any]:
    """``KAFKA_CONSUMER['MANIFESTS']`` as read now (an empty dict when unset)."""
    value = raw_settings().get("MANIFESTS")
    return value if isinstance(value, dict) else {}


def manifests_option(key: str) -> Any:
    """A service-wide MANIFESTS option, or its default (SECRET defaults to '<APP_NAME>-secrets')."""
    options = manifests_settings()
    if key in options:
        return options[key]
    if key == "SECRET":
        return f"{manifests_option('APP_NAME')}-secrets"
    return MANIFESTS_DOC[key][0]


def manifest_setting(topic: str, key: str) -> Any:
    """A per-topic manifest key: the topic's value, else the MANIFESTS default, else the documented default."""
    return _manifest_value(raw_settings(), topic_overrides(topic), key)


def _manifest_value(top: dict[str, Any], overrides: dict[str, Any], key: str) -> Any:
    manifests = top.get("MANIFESTS")
    if key in overrides:
        value = overrides[key]
    elif isinstance(manifests, dict) and key in manifests:
        value = manifests[key]
    else:
        value = TOPIC_SETTINGS_DOC[key][0]
    if key == "MEMORY_LIMIT" and value is None:
        return _manifest_value(top, overrides, "MEMORY_REQUEST")
    return value


def memory_bytes(quantity: Any) -> float:
    """The number of bytes a valid memory quantity (e.g. '256Mi', '1G', 1000000) stands for."""
    match = MEMORY_QUANTITY.match(str(quantity))
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    number = float(match.group(1) + (match.group(2) or ""))
    return number * _MEMORY_UNITS[match.group(3) or ""]


def offset_reset_policy(consumer_config: Mapping[str, Any]) -> str | None:
    """KEDA's offsetResetPolicy for the consumer's auto.offset.reset (the app's default: earliest), or None."""
    value = consumer_config.get("auto.offset.reset", "earliest")
    return OFFSET_RESET_POLICIES.get(str(value).lower())


def _count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _manifests_problems(value: dict[str, Any]) -> list[Problem]:
    """Problems with MANIFESTS and with the manifest keys of every topic in TOPICS."""
    manifests = value.get("MANIFESTS")
    found = []
    if manifests is not None:
        if not isinstance(manifests, dict):
            return [
                Problem(
                    "kafka_consumer_app.E060",
                    f"KAFKA_CONSUMER['MANIFESTS'] must be a dict, not {type(manifests).__name__}",
                    "Write MANIFESTS = {'APP_NAME': '<service>', ...}; see 'Deploying on Kubernetes' in the README.",
                )
            ]
        unknown = key_list(set(manifests) - set(MANIFESTS_DOC) - set(MANIFEST_TOPIC_KEYS))
        if unknown:
            found.append(
                Problem(
                    "kafka_consumer_app.E060",
                    f"unknown key(s) in KAFKA_CONSUMER['MANIFESTS']: {unknown}",
                    f"Valid keys are {', '.join(MANIFESTS_DOC)} and the per-topic defaults "
                    f"{', '.join(MANIFEST_TOPIC_KEYS)}.",
                )
            )
        found += _manifest_service_problems(manifests)
        found += _manifest_key_problems(manifests, "KAFKA_CONSUMER['MANIFESTS']")
    topics = value.get("TOPICS")
    if isinstance(topics, dict):
        defaults_valid = not found
        for name, overrides in topics.items():
            if isinstance(overrides, dict):
                where = f"KAFKA_CONSUMER['TOPICS'][{name!r}]"
                own = _manifest_key_problems(overrides, where)
                found += own
                if defaults_valid and not own:
                    found += _manifest_consistency_problems(value, overrides, where)
    return found


def manifest_topic_problems(topic: str) -> list[Problem]:
    """The manifest problems of one topic, whether or not TOPICS lists it (consumer_manifests --topic)."""
    top = raw_settings()
    overrides = topic_overrides(topic)
    where = f"KAFKA_CONSUMER['TOPICS'][{topic!r}]"
    found = _manifest_key_problems(overrides, where)
    manifests = top.get("MANIFESTS")
    if isinstance(manifests, dict):
        found += _manifest_key_problems(manifests, "KAFKA_CONSUMER['MANIFESTS']")
    return found or _manifest_consistency_problems(top, overrides, where)


def _manifest_service_problems(manifests: dict[str, Any]) -> list[Problem]:
    where = "KAFKA_CONSUMER['MANIFESTS']"
    found = []

    def bad(key: str, what: str, hint: str) -> None:
        found.append(Problem("kafka_consumer_app.E066", f"{where}['{key}'] {what}, not {manifests[key]!r}", hint))

    app = manifests.get("APP_NAME")
    if "APP_NAME" in manifests and not (isinstance(app, str) and DNS_LABEL.match(app) and len(app) <= MAX_APP_NAME):
        bad(
            "APP_NAME",
            f"must be a DNS label of at most {MAX_APP_NAME} characters",
            "Use lower-case letters, digits and '-', e.g. 'credentials-service'.",
        )
    namespace = manifests.get("NAMESPACE")
    if namespace is not None and not (
        isinstance(namespace, str) and DNS_LABEL.match(namespace) and len(namespace) < 64
    ):
        bad("NAMESPACE", "must be a namespace name", "Use lower-case letters, digits and '-' (at most 63), or None.")
    secret = manifests.get("SECRET")
    if "SECRET" in manifests and not (isinstance(secret, str) and DNS_SUBDOMAIN.match(secret) and len(secret) <= 253):
        bad("SECRET", "must be a Secret name", "Use lower-case letters, digits, '-' and '.', e.g. 'my-secrets'.")
    env = manifests.get("ENV")
    if "ENV" in manifests and not (
        isinstance(env, dict)
        and all(isinstance(k, str) and ENV_NAME.match(k) and isinstance(v, str) for k, v in env.items())
    ):
        bad(
            "ENV",
            "must map environment variable names to strings",
            "Write ENV = {'KAFKA_BOOTSTRAP_SERVERS': 'kafka:9092'}; quote numbers, e.g. '60'.",
        )
    auth = manifests.get("KEDA_AUTH")
    if "KEDA_AUTH" in manifests and not (
        isinstance(auth, dict)
        and all(k in KEDA_AUTH_PARAMETERS and isinstance(v, str) and SECRET_KEY.match(v) for k, v in auth.items())
    ):
        bad(
            "KEDA_AUTH",
            "must map KEDA Kafka authentication parameters to keys of the Secret",
            f"Parameters are {', '.join(KEDA_AUTH_PARAMETERS)}; e.g. {{'password': 'KAFKA_PASSWORD'}}.",
        )
    if "KEDA_SCALER" in manifests and manifests["KEDA_SCALER"] not in KEDA_SCALERS:
        bad("KEDA_SCALER", f"must be one of {', '.join(KEDA_SCALERS)}", "Remove it for KEDA's stable 'kafka' scaler.")
    if "RUN_AS_USER" in manifests and not _count(manifests["RUN_AS_USER"], 1):
        bad("RUN_AS_USER", "must be a non-root UID (an integer above 0)", "Remove it for the default, 10001.")
    return found


def _manifest_key_problems(scope: dict[str, Any], where: str) -> list[Problem]:
    """Types and ranges of the per-topic manifest keys present in ``scope`` (a topic, or the MANIFESTS defaults)."""
    found = []
    counts = {"REPLICAS": 0, "PARTITIONS": 1, "MIN_REPLICAS": 0, "MAX_REPLICAS": 1, "LAG_THRESHOLD": 1}
    for key, minimum in counts.items():
        if key not in scope:
            continue
        value = scope[key]
        if key in ("PARTITIONS", "MAX_REPLICAS") and value is None:
            continue
        if not _count(value, minimum):
            found.append(
                Problem(
                    "kafka_consumer_app.E061",
                    f"{where}['{key}'] must be an integer of at least {minimum}, not {value!r}",
                    f"Set {key} to a whole number, or remove it for the default.",
                )
            )
    if "KEDA" in scope and not isinstance(scope["KEDA"], bool):
        found.append(
            Problem(
                "kafka_consumer_app.E063",
                f"{where}['KEDA'] must be True or False, not {scope['KEDA']!r}",
                "Set KEDA = True to scale the topic's consumers on lag with KEDA.",
            )
        )
    quantities = {"MEMORY_REQUEST": MEMORY_QUANTITY, "MEMORY_LIMIT": MEMORY_QUANTITY, "CPU_REQUEST": CPU_QUANTITY}
    for key, pattern in quantities.items():
        if key not in scope or (key == "MEMORY_LIMIT" and scope[key] is None):
            continue
        value = scope[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not pattern.match(str(value)):
            found.append(
                Problem(
                    "kafka_consumer_app.E064",
                    f"{where}['{key}'] is not a Kubernetes {'CPU' if key == 'CPU_REQUEST' else 'memory'} "
                    f"quantity: {value!r}",
                    "Write memory as e.g. '256Mi' or '1Gi' and CPU as e.g. '100m' or '1'.",
                )
            )
    return found


def _manifest_consistency_problems(top: dict[str, Any], overrides: dict[str, Any], where: str) -> list[Problem]:
    """The effective manifest values of one topic (topic, else MANIFESTS, else default) against each other."""

    def effective(key: str) -> Any:
        return _manifest_value(top, overrides, key)

    found = []
    partitions, keda = effective("PARTITIONS"), effective("KEDA")
    idle = "the extra replicas would get no partition and sit idle"
    if partitions is not None and effective("REPLICAS") > partitions:
        found.append(
            Problem(
                "kafka_consumer_app.E062",
                f"{where}: REPLICAS ({effective('REPLICAS')}) is more than PARTITIONS ({partitions}); {idle}",
                "Lower REPLICAS to at most PARTITIONS, or add partitions to the topic and raise PARTITIONS.",
            )
        )
    if keda and partitions is None:
        found.append(
            Problem(
                "kafka_consumer_app.E063",
                f"{where} is scaled by KEDA but has no PARTITIONS to cap its replicas",
                "Set the topic's PARTITIONS to its partition count (kafka-topics.sh --describe shows it).",
            )
        )
    maximum = effective("MAX_REPLICAS")
    if keda and partitions is not None and maximum is not None and maximum > partitions:
        found.append(
            Problem(
                "kafka_consumer_app.E062",
                f"{where}: MAX_REPLICAS ({maximum}) is more than PARTITIONS ({partitions}); {idle}",
                "Lower MAX_REPLICAS to at most PARTITIONS, or remove it to use PARTITIONS.",
            )
        )
    ceiling = maximum if maximum is not None else partitions
    if keda and ceiling is not None and effective("MIN_REPLICAS") > ceiling:
        found.append(
            Problem(
                "kafka_consumer_app.E062",
                f"{where}: MIN_REPLICAS ({effective('MIN_REPLICAS')}) is more than the most replicas ({ceiling})",
                "Lower MIN_REPLICAS.",
            )
        )
    if memory_bytes(effective("MEMORY_REQUEST")) > memory_bytes(effective("MEMORY_LIMIT")):
        found.append(
            Problem(
                "kafka_consumer_app.E064",
                f"{where}: MEMORY_REQUEST ({effective('MEMORY_REQUEST')}) is above MEMORY_LIMIT "
                f"({effective('MEMORY_LIMIT')}), which Kubernetes rejects",
                "Raise MEMORY_LIMIT, or remove it to use MEMORY_REQUEST.",
            )
        )
    if keda:
        top_config, own = top.get("CONSUMER_CONFIG"), overrides.get("CONSUMER_CONFIG")
        merged = {**(top_config if isinstance(top_config, dict) else {}), **(own if isinstance(own, dict) else {})}
        if offset_reset_policy(merged) is None:
            found.append(
                Problem(
                    "kafka_consumer_app.E065",
                    f"{where} is scaled by KEDA, whose offsetResetPolicy cannot follow auto.offset.reset "
                    f"{merged.get('auto.offset.reset')!r}",
                    "Use auto.offset.reset 'earliest' (the app's default) or 'latest' for topics scaled by KEDA.",
                )
            )
    return found


# -- Avro, the schema registry and Open edX events (E080 and up) ---------------------------


def _avro_problems(value: dict[str, Any], forced_openedx_topic: str | None = None) -> list[Problem]:
    """
    SCHEMA_REGISTRY, and the topics that need it: OPENEDX_EVENTS, or an 'avro' (key) deserializer.

    ``forced_openedx_topic`` is a topic consumed as OPENEDX_EVENTS whatever its settings say.
    Messages never quote BASIC_AUTH_USER_INFO, nor the registry's URL.
    """
    found = _schema_registry_problems(value.get("SCHEMA_REGISTRY"))
    topics = value.get("TOPICS")
    scopes: dict[Any, dict[str, Any]] = {
        name: overrides
        for name, overrides in (topics if isinstance(topics, dict) else {}).items()
        if isinstance(overrides, dict)
    }
    if forced_openedx_topic is not None:
        scopes[forced_openedx_topic] = {**scopes.get(forced_openedx_topic, {}), "OPENEDX_EVENTS": True}
    needs_registry = []
    for name, overrides in scopes.items():
        where = f"KAFKA_CONSUMER['TOPICS'][{name!r}]"
        openedx = overrides.get("OPENEDX_EVENTS", False)
        if not isinstance(openedx, bool):
            found.append(
                Problem(
                    "kafka_consumer_app.E083",
                    f"{where}['OPENEDX_EVENTS'] must be True or False, not {openedx!r}",
                    "Set True for a topic that Open edX services produce to, or remove it.",
                )
            )
        elif openedx and "DESERIALIZER" in overrides:
            found.append(
                Problem(
                    "kafka_consumer_app.E083",
                    f"{where} sets both OPENEDX_EVENTS and DESERIALIZER",
                    "Remove DESERIALIZER: an OPENEDX_EVENTS topic decodes each value with its event type's schema.",
                )
            )
        if openedx is True:
            needs_registry.append(name)
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
        elif "avro" in (overrides.get("DESERIALIZER"), overrides.get("KEY_DESERIALIZER")):
            needs_registry.append(name)
    if needs_registry and value.get("SCHEMA_REGISTRY") is None:
        found.append(
            Problem(
                "kafka_consumer_app.E081",
                f"topic(s) {', '.join(repr(name) for name in needs_registry)} decode Avro, and "
                "KAFKA_CONSUMER['SCHEMA_REGISTRY'] is not set",
                "Set SCHEMA_REGISTRY = {'URL': 'https://schema-registry:8081'} (and BASIC_AUTH_USER_INFO if needed).",
            )
        )
    return found


def _schema_registry_problems(registry: Any) -> list[Problem]:
    if registry is None:
        return []
    where = "KAFKA_CONSUMER['SCHEMA_REGISTRY']"
    hint = "Write SCHEMA_REGISTRY = {'URL': 'https://schema-registry:8081', 'BASIC_AUTH_USER_INFO': '<key>:<secret>'}."
    if not isinstance(registry, dict):
        return [Problem("kafka_consumer_app.E080", f"{where} must be a dict, not {type(registry).__name__}", hint)]
    found = []
    unknown = key_list(set(registry) - set(SCHEMA_REGISTRY_DOC))
    if unknown:
        found.append(
            Problem(
                "kafka_consumer_app.E080",
                f"unknown key(s) in {where}: {unknown}",
                f"Valid keys are {', '.join(SCHEMA_REGISTRY_DOC)}; other client options go in CONFIG.",
            )
        )
    url = registry.get("URL")
    if not (isinstance(url, str) and re.match(r"^(https?|mock)://[^/@\s]+", url)):
        found.append(Problem("kafka_consumer_app.E080", f"{where}['URL'] must be an http(s):// URL", hint))
    elif "@" in url.split("://", 1)[1].split("/", 1)[0]:
        found.append(
            Problem(
                "kafka_consumer_app.E080",
                f"{where}['URL'] has credentials in it, which would end up in logs",
                "Move them to BASIC_AUTH_USER_INFO ('<key>:<secret>') and keep the URL without them.",
            )
        )
    auth = registry.get("BASIC_AUTH_USER_INFO")
    if auth is not None and not (isinstance(auth, str) and ":" in auth and auth.split(":", 1)[0]):
        found.append(
            Problem(
                "kafka_consumer_app.E080",
                f"{where}['BASIC_AUTH_USER_INFO'] must be a '<key>:<secret>' string",
                "Read it from the environment, e.g. os.environ['SCHEMA_REGISTRY_AUTH'], or remove it.",
            )
        )
    config = registry.get("CONFIG")
    if config is not None and not isinstance(config, dict):
        found.append(Problem("kafka_consumer_app.E080", f"{where}['CONFIG'] must be a dict", hint))
    elif isinstance(config, dict) and {"url", "basic.auth.user.info"} & set(config):
        found.append(
            Problem(
                "kafka_consumer_app.E080",
                f"{where}['CONFIG'] sets 'url' or 'basic.auth.user.info'",
                "Set them as URL and BASIC_AUTH_USER_INFO instead.",
            )
        )
    return found
