"""
What happens when receivers fail: retries, the failure policy, dead letters, the circuit breaker, time limits.

Keys: RETRY, FAILURE_POLICY, CIRCUIT_BREAKER, HANDLER_SOFT_TIMEOUT and HANDLER_HARD_TIMEOUT, at
the top level and per topic; per topic DEAD_LETTER_TOPIC. A topic's value overrides the
top-level one; a topic's RETRY is merged over the top-level RETRY key by key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.module_loading import import_string

from kafka_consumer_app.settings.base import DocTable, Problem, non_negative, positive, topic_where
from kafka_consumer_app.settings.connection import consumer_config, max_poll_interval, valid_max_poll_interval
from kafka_consumer_app.validation import key_list, topic_name_problem

#: The top-level keys of this subject: (default, description).
SETTINGS: DocTable = {
    "RETRY": (
        {},
        "Default retry policy of every topic; keys in RETRY_DOC. A topic's RETRY is merged over it.",
    ),
    "FAILURE_POLICY": (
        None,
        "What happens to a message after its last attempt: 'dead-letter' (the default when the "
        "topic has a dead-letter topic), 'stop' (exit non-zero, code 3, without committing; the default "
        "otherwise) or 'skip' (log and commit; only when chosen explicitly).",
    ),
    "CIRCUIT_BREAKER": (
        5,
        "Exit non-zero (code 3) after this many consecutive messages failed their last attempt, so that "
        "Kubernetes restarts the pod (for example while a database is down). None disables it.",
    ),
    "HANDLER_SOFT_TIMEOUT": (
        60.0,
        "Seconds after which a receiver still running is logged, with its stack, as stalled.",
    ),
    "HANDLER_HARD_TIMEOUT": (
        None,
        "Seconds after which a stalled receiver makes the process exit non-zero (code 5), so the "
        "message is redelivered. Default: 90% of max.poll.interval.ms (270 s with librdkafka's default); must "
        "stay below it.",
    ),
}

#: The per-topic keys of this subject, under ``TOPICS[<topic>]``.
TOPIC_SETTINGS: DocTable = {
    "RETRY": ({}, "This topic's retry policy, merged key by key over the top-level RETRY."),
    "FAILURE_POLICY": (None, "This topic's failure policy; overrides the top-level one."),
    "DEAD_LETTER_TOPIC": (
        "<kafka topic>-dlt",
        "Where failed and malformed messages are parked, by its Kafka name (with the prefix, e.g. "
        "'prod-orders-dlt'). None disables dead-lettering.",
    ),
    "CIRCUIT_BREAKER": (5, "This topic's circuit breaker threshold; overrides the top-level one."),
    "HANDLER_SOFT_TIMEOUT": (60.0, "This topic's soft receiver time limit, in seconds."),
    "HANDLER_HARD_TIMEOUT": (None, "This topic's hard receiver time limit, in seconds."),
}

#: Documentation of the keys of a RETRY dict (top level or per topic).
RETRY_DOC: DocTable = {
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

#: The suffix of the default dead-letter topic: ``<kafka topic>-dlt``.
DEAD_LETTER_SUFFIX = "-dlt"
#: The values of FAILURE_POLICY.
FAILURE_POLICIES = ("dead-letter", "stop", "skip")

_RETRY_HINT = "See RETRY in the settings reference: ATTEMPTS >= 1, backoffs >= 0, MULTIPLIER >= 1, 0 <= JITTER <= 1."
_RETRY_CHECKS: dict[str, Callable[[Any], bool]] = {
    "ATTEMPTS": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    "INITIAL_BACKOFF": non_negative,
    "MAX_BACKOFF": non_negative,
    "MULTIPLIER": lambda v: positive(v) and v >= 1,
    "JITTER": lambda v: non_negative(v) and v <= 1,
}


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


# -- resolution ------------------------------------------------------------------------------


def _setting(top: dict[str, Any], overrides: dict[str, Any], key: str) -> Any:
    """A failure-handling setting: the topic's value, else the top-level one, else the default."""
    if key in overrides:
        return overrides[key]
    if key in top:
        return top[key]
    return SETTINGS[key][0]


def retry_config(top: dict[str, Any], overrides: dict[str, Any]) -> RetryConfig:
    """The topic's RETRY over the top-level RETRY over the defaults of RETRY_DOC."""
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


def failure_config(
    top: dict[str, Any], overrides: dict[str, Any], kafka_topic: str, merged: Mapping[str, Any]
) -> FailureConfig:
    """Resolve one topic's failure handling; ``merged`` is its CONSUMER_CONFIG merged over the top level."""
    dlt = (
        overrides["DEAD_LETTER_TOPIC"] or None if "DEAD_LETTER_TOPIC" in overrides else kafka_topic + DEAD_LETTER_SUFFIX
    )
    policy = _setting(top, overrides, "FAILURE_POLICY") or ("dead-letter" if dlt else "stop")
    hard = _setting(top, overrides, "HANDLER_HARD_TIMEOUT")
    return FailureConfig(
        retry=retry_config(top, overrides),
        policy=policy,
        dead_letter_topic=dlt,
        circuit_breaker=_setting(top, overrides, "CIRCUIT_BREAKER") or None,
        soft_timeout=_setting(top, overrides, "HANDLER_SOFT_TIMEOUT"),
        hard_timeout=float(hard) if hard else 0.9 * max_poll_interval(merged),
        producer_config=dict(top.get("PRODUCER_CONFIG") or {}),
    )


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


# -- checks ----------------------------------------------------------------------------------


def problems(value: dict[str, Any]) -> list[Problem]:
    """The top-level keys of this subject, the hard time limit against the top-level CONSUMER_CONFIG."""
    return _scope_problems(value, {}, "KAFKA_CONSUMER", consumer_config(value, {}), None)


def topic_problems(top: dict[str, Any], name: Any, overrides: dict[str, Any]) -> list[Problem]:
    """One topic's keys of this subject, its time limits against its merged CONSUMER_CONFIG."""
    return _scope_problems(overrides, top, topic_where(name), consumer_config(top, overrides), name)


def _scope_problems(
    scope: dict[str, Any], top: dict[str, Any], where: str, merged: Mapping[str, Any], name: Any
) -> list[Problem]:
    """The top level (``name`` None, ``top`` empty) or one topic, whose ``top`` is the whole KAFKA_CONSUMER."""
    found = _retry_problems(scope.get("RETRY"), f"{where}['RETRY']")
    found += _policy_problems(scope, top, where, name)
    breaker = scope.get("CIRCUIT_BREAKER")
    if breaker is not None and (isinstance(breaker, bool) or not isinstance(breaker, int) or breaker < 1):
        found.append(
            Problem(
                "kafka_consumer_app.E016",
                f"{where}['CIRCUIT_BREAKER'] must be a positive integer or None, not {breaker!r}",
                "Set the number of consecutive failed messages that stops the consumer, or None to disable it.",
            )
        )
    found += _timeout_problems(scope, where, merged)
    if name is not None:
        found += _dead_letter_problems(top, name, scope, where)
        found += _inherited_timeout_problems(top, scope, where, merged)
    return found


def _policy_problems(scope: dict[str, Any], top: dict[str, Any], where: str, name: Any) -> list[Problem]:
    """E014: a FAILURE_POLICY that does not exist, or 'dead-letter' without a dead-letter topic."""
    found = []
    policy = scope.get("FAILURE_POLICY")
    if policy is not None and policy not in FAILURE_POLICIES:
        found.append(
            Problem(
                "kafka_consumer_app.E014",
                f"{where}['FAILURE_POLICY'] is {policy!r}",
                f"Use one of {', '.join(FAILURE_POLICIES)}, or remove it for the default.",
            )
        )
    disables = name is not None and "DEAD_LETTER_TOPIC" in scope and not scope["DEAD_LETTER_TOPIC"]
    if disables and policy == "dead-letter":
        found.append(
            Problem(
                "kafka_consumer_app.E014",
                f"{where} sets FAILURE_POLICY 'dead-letter' but disables DEAD_LETTER_TOPIC",
                "Name a DEAD_LETTER_TOPIC, or choose FAILURE_POLICY 'stop' or 'skip'.",
            )
        )
    if disables and "FAILURE_POLICY" not in scope and top.get("FAILURE_POLICY") == "dead-letter":
        found.append(
            Problem(
                "kafka_consumer_app.E014",
                f"{where} disables DEAD_LETTER_TOPIC but inherits FAILURE_POLICY 'dead-letter' from the top level",
                "Name a DEAD_LETTER_TOPIC, or set the topic's FAILURE_POLICY to 'stop' or 'skip'.",
            )
        )
    return found


def _timeout_problems(scope: dict[str, Any], where: str, merged: Mapping[str, Any]) -> list[Problem]:
    found = []
    for key in ("HANDLER_SOFT_TIMEOUT", "HANDLER_HARD_TIMEOUT"):
        if scope.get(key) is not None and not positive(scope[key]):
            found.append(
                Problem(
                    "kafka_consumer_app.E017",
                    f"{where}['{key}'] must be a positive number of seconds or None, not {scope[key]!r}",
                    f"Remove {key} for the default, or set a positive number.",
                )
            )
    hard: Any = scope.get("HANDLER_HARD_TIMEOUT")  # a number once positive() accepts it
    if positive(hard) and valid_max_poll_interval(merged) and hard >= max_poll_interval(merged):
        found.append(
            Problem(
                "kafka_consumer_app.E017",
                f"{where}['HANDLER_HARD_TIMEOUT'] ({hard:g}s) is not below max.poll.interval.ms "
                f"({max_poll_interval(merged):g}s), so the broker would evict the consumer first",
                "Lower HANDLER_HARD_TIMEOUT or raise max.poll.interval.ms in CONSUMER_CONFIG.",
            )
        )
    return found


def _inherited_timeout_problems(
    top: dict[str, Any], overrides: dict[str, Any], where: str, merged: Mapping[str, Any]
) -> list[Problem]:
    """The top-level hard limit applies to the topic too: it must stay below the topic's max.poll.interval.ms."""
    hard: Any = top.get("HANDLER_HARD_TIMEOUT")  # a number once positive() accepts it
    if (
        "HANDLER_HARD_TIMEOUT" in overrides
        or not positive(hard)
        or not valid_max_poll_interval(merged)
        or hard < max_poll_interval(merged)
    ):
        return []
    return [
        Problem(
            "kafka_consumer_app.E017",
            f"KAFKA_CONSUMER['HANDLER_HARD_TIMEOUT'] ({hard:g}s) is not below {where}'s max.poll.interval.ms "
            f"({max_poll_interval(merged):g}s), so the broker would evict that topic's consumer first",
            "Set a lower HANDLER_HARD_TIMEOUT for the topic, or raise its max.poll.interval.ms.",
        )
    ]


def _retry_problems(retry: Any, where: str) -> list[Problem]:
    if retry is None:
        return []
    if not isinstance(retry, dict):
        return [Problem("kafka_consumer_app.E013", f"{where} must be a dict, not {type(retry).__name__}", _RETRY_HINT)]
    found = []
    unknown = key_list(set(retry) - set(RETRY_DOC))
    if unknown:
        found.append(Problem("kafka_consumer_app.E013", f"unknown key(s) in {where}: {unknown}", _RETRY_HINT))
    for key, valid in _RETRY_CHECKS.items():
        if key in retry and not valid(retry[key]):
            found.append(
                Problem("kafka_consumer_app.E013", f"{where}['{key}'] is invalid: {retry[key]!r}", _RETRY_HINT)
            )
    return found + _not_retried_problems(retry.get("NOT_RETRIED", []), where)


def _not_retried_problems(not_retried: Any, where: str) -> list[Problem]:
    found = []
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


def _dead_letter_problems(top: dict[str, Any], name: Any, overrides: dict[str, Any], where: str) -> list[Problem]:
    """E015 and E045: DEAD_LETTER_TOPIC must be a legal name, and not the topic itself (prefix included)."""
    dlt = overrides.get("DEAD_LETTER_TOPIC")
    prefix = top.get("TOPIC_PREFIX")
    itself = isinstance(name, str) and isinstance(prefix, str) and bool(prefix) and dlt == f"{prefix}-{name}"
    fix = "or set None to disable dead-lettering."
    found = []
    # An explicitly empty name would silently disable dead-lettering: None (or False) says so on purpose.
    if dlt is not None and dlt is not False and (not isinstance(dlt, str) or dlt == name or not dlt.strip()):
        found.append(
            Problem(
                "kafka_consumer_app.E015",
                f"{where}['DEAD_LETTER_TOPIC'] must be another topic's name or None, not {dlt!r}",
                f"Remove it for the default '{name}{DEAD_LETTER_SUFFIX}', {fix}",
            )
        )
    if isinstance(dlt, str) and dlt.strip() and topic_name_problem(dlt):
        found.append(
            Problem(
                "kafka_consumer_app.E045",
                f"{where}['DEAD_LETTER_TOPIC'] {topic_name_problem(dlt)}",
                "Use letters, digits, '.', '_' and '-' only, at most 249 characters.",
            )
        )
    if isinstance(dlt, str) and dlt.strip() and itself:
        found.append(
            Problem(
                "kafka_consumer_app.E015",
                f"{where}['DEAD_LETTER_TOPIC'] is the topic itself ({dlt!r}, with TOPIC_PREFIX)",
                f"Remove it for the default '{dlt}{DEAD_LETTER_SUFFIX}', {fix}",
            )
        )
    return found
