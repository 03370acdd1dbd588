"""
Readers of librdkafka's statistics: the JSON document its ``stats_cb`` gets every ``statistics.interval.ms``.

Only the few fields the app uses are read, each as librdkafka's STATISTICS.md defines it:
``topics.<topic>.partitions.<partition>.consumer_lag`` and ``fetch_state``, and
``cgrp.state`` and ``cgrp.join_state``. Missing fields read as unknown, never as errors.
"""

from __future__ import annotations

from typing import Any

#: Fetch states of a partition this consumer does not (or no longer) fetch; its lag belongs to another member.
NOT_FETCHING = frozenset({"none", "stopping", "stopped"})


def partition_lags(stats: dict[str, Any], topic: str) -> dict[int, int]:
    """
    The consumer lag of each partition of ``topic`` this consumer fetches, by partition.

    The lag is librdkafka's ``consumer_lag``: the partition's high watermark minus the group's
    committed offset. Partition -1 (librdkafka's internal "unassigned" partition), lags of -1
    (unknown: nothing committed yet, or no high watermark yet) and partitions whose
    ``fetch_state`` says they are not fetched here (revoked, or never assigned) are left out.
    """
    partitions = ((stats.get("topics") or {}).get(topic) or {}).get("partitions") or {}
    lags = {}
    for key, values in partitions.items():
        try:
            partition = int(key)
            lag = int(values.get("consumer_lag", -1))
        except (TypeError, ValueError, AttributeError):
            continue
        if partition < 0 or lag < 0 or values.get("fetch_state") in NOT_FETCHING:
            continue
        lags[partition] = lag
    return lags


def total_lag(stats: dict[str, Any] | None, topic: str) -> int | None:
    """The sum of :func:`partition_lags`, or None when no statistics arrived or no lag is known."""
    if not stats:
        return None
    lags = partition_lags(stats, topic)
    return sum(lags.values()) if lags else None


def group_state(stats: dict[str, Any]) -> tuple[str, str] | None:
    """The consumer group's ``(state, join_state)`` (e.g. ``("up", "steady")``), or None when not reported."""
    group = stats.get("cgrp")
    if not isinstance(group, dict) or "state" not in group:
        return None
    return str(group.get("state")), str(group.get("join_state", ""))
