"""
Where a topic's consumed offsets live: OFFSET_STORE and DATABASE, at the top level or per topic.

``"kafka"`` (the default) commits them to the group in Kafka after the receivers returned (at least
once). ``"database"`` also writes them to the app's positions table through the ``DATABASE`` alias,
in the receivers' own transaction, so that the receivers' writes through that alias happen exactly
once. See docs/decisions/0010-offsets-in-the-database.rst.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from kafka_consumer_app.settings.base import DocTable, Problem, topic_where

#: The values of OFFSET_STORE.
STORES = ("kafka", "database")

#: The keys of this subject, at the top level and per topic: (default, description).
SETTINGS: DocTable = {
    "OFFSET_STORE": (
        "kafka",
        "'kafka' commits offsets to the group after the receivers returned (at least once). 'database' also "
        "writes each partition's next offset to the app's table in the same transaction as the receivers' "
        "writes through DATABASE, so those writes happen exactly once; needs CONCURRENCY 1 or ORDERING "
        "'partition', and the app's migration.",
    ),
    "DATABASE": (
        "default",
        "With OFFSET_STORE 'database': the alias of settings.DATABASES whose transaction holds the receivers' "
        "writes and the position.",
    ),
}


@dataclass(frozen=True)
class OffsetStoreConfig:
    """Where one topic's offsets live, and through which database alias."""

    store: str = "kafka"
    database: str = "default"

    @property
    def in_database(self) -> bool:
        """Whether the receivers run in a transaction that also moves the partition's position."""
        return self.store == "database"


def offset_store_config(top: dict[str, Any], overrides: dict[str, Any]) -> OffsetStoreConfig:
    """Resolve one topic's keys: its own value, else the top level's, else the default (checked already)."""

    def value(key: str) -> Any:
        return overrides.get(key, top.get(key, SETTINGS[key][0]))

    return OffsetStoreConfig(store=value("OFFSET_STORE"), database=value("DATABASE"))


def problems(value: dict[str, Any]) -> list[Problem]:
    """The top-level keys of this subject, and what they make of the top-level concurrency."""
    return _scope_problems(value, "KAFKA_CONSUMER") + _combination_problems(value, {}, "KAFKA_CONSUMER")


def topic_problems(top: dict[str, Any], name: Any, overrides: dict[str, Any]) -> list[Problem]:
    """One topic's keys of this subject, and whether its store goes with its concurrency."""
    where = topic_where(name)
    found = _scope_problems(overrides, where)
    if any(key in overrides for key in ("OFFSET_STORE", "CONCURRENCY", "ORDERING")):  # else the top level's
        found += _combination_problems(top, overrides, where)
    return found


def _scope_problems(scope: dict[str, Any], where: str) -> list[Problem]:
    found = []
    if "OFFSET_STORE" in scope and scope["OFFSET_STORE"] not in STORES:
        found.append(
            Problem(
                "kafka_consumer_app.E030",
                f"{where}['OFFSET_STORE'] must be one of {', '.join(map(repr, STORES))}, not {scope['OFFSET_STORE']!r}",
                "Use 'kafka' (the default), or 'database' to commit offsets with the receivers' database writes.",
            )
        )
    alias = scope.get("DATABASE")
    if "DATABASE" in scope and (not isinstance(alias, str) or alias not in settings.DATABASES):
        known = ", ".join(map(repr, settings.DATABASES)) or "none"
        found.append(
            Problem(
                "kafka_consumer_app.E031",
                f"{where}['DATABASE'] is {alias!r}, which is not an alias of settings.DATABASES ({known})",
                "Name the database alias that the receivers write through, or remove DATABASE to use 'default'.",
            )
        )
    return found


def _combination_problems(top: dict[str, Any], overrides: dict[str, Any], where: str) -> list[Problem]:
    """E032: the database store with workers that finish a partition's messages out of offset order."""

    def value(key: str, default: Any) -> Any:
        return overrides.get(key, top.get(key, default))

    if value("OFFSET_STORE", "kafka") != "database" or not isinstance(value("CONCURRENCY", 1), int):
        return []
    if value("CONCURRENCY", 1) > 1 and value("ORDERING", "key") != "partition":
        return [
            Problem(
                "kafka_consumer_app.E032",
                f"{where} has OFFSET_STORE 'database' with CONCURRENCY {value('CONCURRENCY', 1)} and ORDERING "
                f"{value('ORDERING', 'key')!r}: messages of one partition would finish out of offset order, and "
                "one next offset per partition cannot record that in their transactions",
                "Set ORDERING 'partition' (one message of a partition at a time, partitions in parallel), or "
                "CONCURRENCY 1.",
            )
        ]
    return []
