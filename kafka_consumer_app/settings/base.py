"""
What every settings subject shares: the ``Problem`` type, the raw readers and small validators.

The subject modules (:mod:`.connection`, :mod:`.topics`, :mod:`.failures`, :mod:`.health`,
:mod:`.manifests`, :mod:`.schema_registry`) build on this one; it imports none of them.
Everything reads ``settings.KAFKA_CONSUMER`` at call time, never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from kafka_consumer_app.validation import seconds_problem

#: A documentation table: each key's (default, description). The defaults are the ones resolution uses.
DocTable = dict[str, tuple[Any, str]]


@dataclass(frozen=True)
class Problem:
    """One invalid or missing setting: a stable check id, what is wrong, and how to fix it."""

    id: str
    msg: str
    hint: str

    def one_line(self) -> str:
        """Render the problem as the single line ``consume_events`` prints before exiting."""
        return f"{self.msg} ({self.id}). {self.hint}"


def raw_settings() -> dict[str, Any]:
    """Return ``settings.KAFKA_CONSUMER`` as read right now (an empty dict when unset)."""
    value = getattr(settings, "KAFKA_CONSUMER", None)
    return value if isinstance(value, dict) else {}


def topic_overrides(topic: str) -> dict[str, Any]:
    """Return the ``TOPICS[topic]`` dict (empty when the topic has no overrides)."""
    topics = raw_settings().get("TOPICS") or {}
    value = topics.get(topic) if isinstance(topics, dict) else None
    return value if isinstance(value, dict) else {}


def topic_where(name: Any) -> str:
    """How messages name one topic's settings: ``KAFKA_CONSUMER['TOPICS'][<name>]``."""
    return f"KAFKA_CONSUMER['TOPICS'][{name!r}]"


def positive(value: Any) -> bool:
    """A finite number of seconds above zero, at most librdkafka's longest timeout (no bool, NaN or infinity)."""
    return seconds_problem(value) is None


def non_negative(value: Any) -> bool:
    """As :func:`positive`, zero included."""
    return seconds_problem(value, allow_zero=True) is None


def count(value: Any, minimum: int) -> bool:
    """An integer (not a bool) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def seconds_setting_problems(value: dict[str, Any], table: DocTable, keys: tuple[str, ...]) -> list[Problem]:
    """E005, for the top-level number-of-seconds ``keys`` documented in ``table`` (each subject passes its own)."""
    found = []
    for key in keys:
        problem = seconds_problem(value.get(key, 1.0))  # NaN, infinities and bools too
        if problem:
            found.append(
                Problem(
                    "kafka_consumer_app.E005",
                    f"KAFKA_CONSUMER['{key}'] {problem}",
                    f"Remove {key} to use the default of {table[key][0]}s, or set a positive number.",
                )
            )
    return found
