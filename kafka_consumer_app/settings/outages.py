"""
Database outages: which errors mean the database is unavailable, and how long the consumer waits for it.

Keys, at the top level only (a database is shared by every topic of a process): DATABASE_ERRORS
and DATABASE_OUTAGE_TIMEOUT. See docs/decisions/0009-database-outages.rst.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka_consumer_app.settings.base import DocTable, Problem
from kafka_consumer_app.settings.failures import exception_class_problem
from kafka_consumer_app.validation import seconds_problem

#: The keys of this subject: (default, description).
SETTINGS: DocTable = {
    "DATABASE_ERRORS": (
        [],
        "Dotted paths of more exception classes that mean the database is unavailable, beyond "
        "django.db.OperationalError and django.db.InterfaceError: a receiver failing with one waits for "
        "the database instead of using up its retries.",
    ),
    "DATABASE_OUTAGE_TIMEOUT": (
        300.0,
        "Seconds the consumer waits for an unavailable database, retrying the message in hand, before it "
        "exits non-zero (code 6) without committing that message.",
    ),
}

#: The first wait after a receiver met an unavailable database, in seconds; each wait doubles up to OUTAGE_MAX_WAIT.
OUTAGE_INITIAL_WAIT = 0.5
#: The longest wait between two tries while the database is unavailable, in seconds.
OUTAGE_MAX_WAIT = 5.0


@dataclass(frozen=True)
class OutageConfig:
    """What counts as a database outage, and how long and how patiently the consumer waits for its end."""

    #: Dotted paths of the exception classes that count besides Django's connection-level errors.
    errors: tuple[str, ...] = ()
    timeout: float = 300.0
    initial_wait: float = OUTAGE_INITIAL_WAIT
    max_wait: float = OUTAGE_MAX_WAIT


def outage_config(top: dict[str, Any]) -> OutageConfig:
    """Resolve the keys of this subject (checked already)."""
    timeout: Any = top.get("DATABASE_OUTAGE_TIMEOUT", SETTINGS["DATABASE_OUTAGE_TIMEOUT"][0])
    return OutageConfig(errors=tuple(top.get("DATABASE_ERRORS") or ()), timeout=float(timeout))


def problems(value: dict[str, Any]) -> list[Problem]:
    """E090: DATABASE_ERRORS, a list of exception classes' dotted paths; E091: DATABASE_OUTAGE_TIMEOUT, seconds."""
    found = _errors_problems(value.get("DATABASE_ERRORS", []))
    if "DATABASE_OUTAGE_TIMEOUT" in value:
        problem = seconds_problem(value["DATABASE_OUTAGE_TIMEOUT"])
        if problem:
            found.append(
                Problem(
                    "kafka_consumer_app.E091",
                    f"KAFKA_CONSUMER['DATABASE_OUTAGE_TIMEOUT'] {problem}",
                    "Remove DATABASE_OUTAGE_TIMEOUT for the default of 300s, or set a positive number of seconds.",
                )
            )
    return found


def _errors_problems(errors: Any) -> list[Problem]:
    hint = "List dotted paths of exception classes, e.g. ['psycopg.OperationalError']."
    if not isinstance(errors, (list, tuple)):  # None too: the resolved config iterates it
        return [
            Problem(
                "kafka_consumer_app.E090",
                f"KAFKA_CONSUMER['DATABASE_ERRORS'] must be a list of dotted paths, not {type(errors).__name__}",
                hint,
            )
        ]
    found = []
    for path in errors:
        problem = exception_class_problem(path)
        if problem:
            found.append(
                Problem("kafka_consumer_app.E090", f"KAFKA_CONSUMER['DATABASE_ERRORS'] entry {path!r} {problem}", hint)
            )
    return found
