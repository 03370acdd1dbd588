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
from django.utils.module_loading import import_string

from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.probe import default_heartbeat_file
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
    "PRODUCER_CONFIG": (
        {},
        "librdkafka options of the dead-letter producer. The security.*, sasl.*, ssl.* and other "
        "connection options of CONSUMER_CONFIG are copied to it; these override them.",
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
    "RETRY": ({}, "This topic's retry policy, merged key by key over the top-level RETRY."),
    "FAILURE_POLICY": (None, "This topic's failure policy; overrides the top-level one."),
    "DEAD_LETTER_TOPIC": (
        "<kafka topic>-dlt",
        "Where failed and malformed messages are parked. None disables dead-lettering.",
    ),
    "CIRCUIT_BREAKER": (5, "This topic's circuit breaker threshold; overrides the top-level one."),
    "HANDLER_SOFT_TIMEOUT": (60.0, "This topic's soft receiver time limit, in seconds."),
    "HANDLER_HARD_TIMEOUT": (None, "This topic's hard receiver time limit, in seconds."),
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
    """Where the loop reports that it is alive, and how stale is too stale."""

    heartbeat_file: str | None = None
    max_age: float = 60.0


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
        failure=_failure_config(top, overrides, kafka_topic_name(topic), merged),
        health=_health_config(top, topic),
    )


def _health_config(top: dict[str, Any], topic: str) -> HealthConfig:
    heartbeat = top.get("HEARTBEAT_FILE")
    if heartbeat is None:
        heartbeat = default_heartbeat_file(topic)
    return HealthConfig(heartbeat_file=heartbeat or None, max_age=float(top.get("HEARTBEAT_MAX_AGE", 60.0)))


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
    found += _failure_problems(value, "KAFKA_CONSUMER", value.get("CONSUMER_CONFIG"))
    if value.get("PRODUCER_CONFIG") is not None and not isinstance(value.get("PRODUCER_CONFIG"), dict):
        found.append(
            Problem(
                "kafka_consumer_app.E018",
                "KAFKA_CONSUMER['PRODUCER_CONFIG'] must be a dict of librdkafka options",
                "Use librdkafka property names as keys, e.g. {'linger.ms': 0}.",
            )
        )
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
    heartbeat = value.get("HEARTBEAT_FILE")
    if heartbeat is not None and heartbeat is not False and not (isinstance(heartbeat, str) and heartbeat):
        found.append(
            Problem(
                "kafka_consumer_app.E019",
                f"KAFKA_CONSUMER['HEARTBEAT_FILE'] must be a file path or False, not {heartbeat!r}",
                "Remove it for the default under the temporary directory, or set False to disable the heartbeat.",
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
        found += _failure_problems(overrides, f"KAFKA_CONSUMER['TOPICS'][{name!r}]", overrides.get("CONSUMER_CONFIG"))
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
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


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
    if _positive(hard) and hard >= max_poll_interval(config):
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
    unknown = sorted(set(retry) - set(RETRY_DOC))
    if unknown:
        found.append(Problem("kafka_consumer_app.E013", f"unknown key(s) in {where}: {', '.join(unknown)}", hint))
    checks = {
        "ATTEMPTS": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "INITIAL_BACKOFF": lambda v: _positive(v) or v == 0,
        "MAX_BACKOFF": lambda v: _positive(v) or v == 0,
        "MULTIPLIER": lambda v: _positive(v) and v >= 1,
        "JITTER": lambda v: (_positive(v) or v == 0) and v <= 1,
    }
    for key, valid in checks.items():
        if key in retry and not valid(retry[key]):
            found.append(Problem("kafka_consumer_app.E013", f"{where}['{key}'] is invalid: {retry[key]!r}", hint))
    for path in retry.get("NOT_RETRIED") or []:
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
    dlt = overrides.get("DEAD_LETTER_TOPIC", "")
    if dlt is not None and dlt is not False and (not isinstance(dlt, str) or dlt == name):
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
