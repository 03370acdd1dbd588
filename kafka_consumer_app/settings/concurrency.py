"""
Concurrency: how many messages of a topic run at once, in what order, and in what batches.

Keys: CONCURRENCY, ORDERING, MAX_QUEUED, BATCH_SIZE and BATCH_WAIT, each at the top level of
``KAFKA_CONSUMER`` (the default of every topic) or per topic. See
docs/decisions/0008-concurrency-within-a-partition.rst.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka_consumer_app.settings.base import DocTable, Problem, count, raw_settings, topic_where
from kafka_consumer_app.validation import seconds_problem

#: The values of ORDERING.
ORDERINGS = ("key", "partition", "none")
#: The largest value of each integer key: far beyond any useful one, small enough to allocate for.
LIMITS = {"CONCURRENCY": 1024, "MAX_QUEUED": 10_000_000, "BATCH_SIZE": 100_000}
#: Above this many worker threads per process a warning asks whether the database allows as many connections.
MANY_THREADS = 64

#: The keys of this subject, at the top level and per topic: (default, description).
SETTINGS: DocTable = {
    "CONCURRENCY": (
        1,
        "Worker threads per process that run this topic's receivers, shared by all its assigned partitions. "
        "1 to 1,024. 1 (the default) keeps the sequential engine, one message at a time; more run messages of "
        "one partition in parallel, in the order ORDERING keeps.",
    ),
    "ORDERING": (
        "key",
        "With CONCURRENCY above 1: 'key' runs the messages of one key one at a time and in offset order, "
        "different keys in parallel (messages without a key are ordered among themselves, per partition); "
        "'partition' runs one message of a partition at a time; 'none' keeps no order.",
    ),
    "MAX_QUEUED": (
        2000,
        "With CONCURRENCY above 1: messages of one partition taken in and not finished (queued, running or "
        "waiting for a retry) at which the partition is paused until half of them finished. A partition also "
        "pauses while its committed position is ten times this far behind the newest message taken in.",
    ),
    "BATCH_SIZE": (
        100,
        "Most messages a batch_signal receiver gets in one call, all of one partition, in offset order.",
    ),
    "BATCH_WAIT": (
        0.5,
        "Seconds a batch waits to fill up to BATCH_SIZE before it goes to batch_signal receivers as it is.",
    ),
}


@dataclass(frozen=True)
class ConcurrencyConfig:
    """How the messages of one topic run: worker threads, order, backpressure bound and batches."""

    concurrency: int = 1
    ordering: str = "key"
    max_queued: int = 2000
    batch_size: int = 100
    batch_wait: float = 0.5


def concurrency_config(top: dict[str, Any], overrides: dict[str, Any]) -> ConcurrencyConfig:
    """Resolve one topic's keys: its own value, else the top level's, else the default (checked already)."""

    def value(key: str) -> Any:
        return overrides.get(key, top.get(key, SETTINGS[key][0]))

    return ConcurrencyConfig(
        concurrency=value("CONCURRENCY"),
        ordering=value("ORDERING"),
        max_queued=value("MAX_QUEUED"),
        batch_size=value("BATCH_SIZE"),
        batch_wait=float(value("BATCH_WAIT")),
    )


def problems(value: dict[str, Any]) -> list[Problem]:
    """The top-level keys of this subject."""
    return _scope_problems(value, "KAFKA_CONSUMER")


def topic_problems(top: dict[str, Any], name: Any, overrides: dict[str, Any]) -> list[Problem]:
    """One topic's keys of this subject."""
    return _scope_problems(overrides, topic_where(name))


def _scope_problems(scope: dict[str, Any], where: str) -> list[Problem]:
    found = []
    for key, maximum in LIMITS.items():
        value: Any = scope.get(key)
        if key in scope and not (count(value, 1) and value <= maximum):
            found.append(
                Problem(
                    "kafka_consumer_app.E023",
                    f"{where}['{key}'] must be an integer from 1 to {maximum:,}, not {value!r}",
                    f"Remove {key} to use the default of {SETTINGS[key][0]}, or set an integer in that range.",
                )
            )
    if "ORDERING" in scope and scope["ORDERING"] not in ORDERINGS:
        found.append(
            Problem(
                "kafka_consumer_app.E024",
                f"{where}['ORDERING'] must be one of {', '.join(map(repr, ORDERINGS))}, not {scope['ORDERING']!r}",
                "Use 'key' (the default) unless messages of one partition may run in any order.",
            )
        )
    wait = scope.get("BATCH_WAIT")
    problem = seconds_problem(wait, allow_zero=True) if "BATCH_WAIT" in scope else None
    if problem:
        found.append(
            Problem(
                "kafka_consumer_app.E025",
                f"{where}['BATCH_WAIT'] {problem}",
                "Set how many seconds a batch may wait to fill, 0 to send what is there at once.",
            )
        )
    return found


def thread_warnings() -> list[Problem]:
    """W026, a warning (not an error): CONCURRENCY above MANY_THREADS, at the top level or for a topic."""
    return [
        Problem(
            "kafka_consumer_app.W026",
            f"{where}['CONCURRENCY'] is {threads}: each worker thread may hold a database connection, so a "
            "process may open that many",
            "Check the database's connection limit (PostgreSQL's max_connections) against CONCURRENCY times "
            "the replicas, or use a connection pooler; manage.py check --database default compares them.",
        )
        for where, threads in thread_counts()
        if threads > MANY_THREADS
    ]


def thread_counts() -> list[tuple[str, int]]:
    """Where CONCURRENCY is set (the top level, or a topic) and its value, when it is a valid count."""
    top = raw_settings()
    topics = top.get("TOPICS")
    scopes = [(top, "KAFKA_CONSUMER")]
    if isinstance(topics, dict):
        scopes += [(item, topic_where(name)) for name, item in topics.items() if isinstance(item, dict)]
    return [(where, scope["CONCURRENCY"]) for scope, where in scopes if count(scope.get("CONCURRENCY"), 1)]


def connection_limit_warnings(alias: str, max_connections: int) -> list[Problem]:
    """W027: a CONCURRENCY whose threads alone (plus the loop's) would hold half the server's connections."""
    return [
        Problem(
            "kafka_consumer_app.W027",
            f"{where}['CONCURRENCY'] is {threads}: one consumer process may hold {threads + 1} connections to "
            f"database {alias!r}, whose server allows {max_connections} in all",
            "Lower CONCURRENCY, raise max_connections, or put a connection pooler in between; replicas and the "
            "web processes need connections too.",
        )
        for where, threads in thread_counts()
        if 2 * (threads + 1) > max_connections
    ]
