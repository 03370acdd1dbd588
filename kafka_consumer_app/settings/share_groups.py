"""
Share groups (KIP-932, "queues for Kafka"), experimental: SHARE_GROUP and what it cannot be combined with.

Key: SHARE_GROUP, per topic (``consume_events --share-group`` sets it for one run). The consumers of a
share group take messages one by one from the same partitions, each acknowledged on its own, so there
are no offsets to store and no partitions to own: the keys about those make no sense with it and are
refused here, each with one line (E120-E124), and a retry budget past the broker's default delivery
limit is warned about (W125). See docs/decisions/0014-share-groups.rst.
"""

from __future__ import annotations

from typing import Any

from kafka_consumer_app.settings.base import DocTable, Problem, raw_settings, topic_where

#: Deliveries of one message that Kafka allows by default (``group.share.delivery.count.limit``); past
#: them the broker archives the message itself, without the consumer parking it.
DEFAULT_DELIVERY_LIMIT = 5

#: The per-topic key of this subject: (default, description).
TOPIC_SETTINGS: DocTable = {
    "SHARE_GROUP": (
        False,
        "Experimental: True consumes the topic through a Kafka share group (KIP-932, Kafka 4.2 or later): "
        "any number of consumers share each partition and acknowledge each message (accepted when handled, "
        "released for redelivery on a retryable failure, rejected once parked). Excludes OFFSET_STORE "
        "'database', CONCURRENCY above 1, batch_signal receivers, --from-beginning and --offset-time.",
    ),
}


def topic_problems(top: dict[str, Any], name: Any, overrides: dict[str, Any]) -> list[Problem]:
    """One topic's SHARE_GROUP: a bool, and not with a key that needs offsets or owned partitions."""
    if "SHARE_GROUP" not in overrides:
        return []
    where = topic_where(name)
    share = overrides["SHARE_GROUP"]
    if not isinstance(share, bool):
        return [
            Problem(
                "kafka_consumer_app.E120",
                f"{where}['SHARE_GROUP'] must be True or False, not {share!r}",
                "Set True to consume the topic through a share group, or remove it.",
            )
        ]
    if not share:
        return []
    if overrides.get("KEDA", _dict(top.get("MANIFESTS")).get("KEDA")) is True:
        return [keda_problem(where)]
    problem = conflict(
        overrides.get("OFFSET_STORE", top.get("OFFSET_STORE", "kafka")),
        overrides.get("CONCURRENCY", top.get("CONCURRENCY", 1)),
    )
    return [] if problem is None else [Problem(problem[0], f"{where}['SHARE_GROUP'] {problem[1]}", problem[2])]


def keda_problem(where: str) -> Problem:
    """E126: KEDA scales on a consumer group's lag, and has no scaler for share groups yet."""
    return Problem(
        "kafka_consumer_app.E126",
        f"{where} sets SHARE_GROUP with KEDA, which has no share-group scaler yet (its Kafka scalers read a "
        "consumer group's lag)",
        "Remove KEDA and set REPLICAS: a share group's replicas are not capped by the partitions.",
    )


def conflict(offset_store: Any, concurrency: Any) -> tuple[str, str, str] | None:
    """(id, what is wrong, hint) when SHARE_GROUP goes with OFFSET_STORE or CONCURRENCY it cannot go with."""
    if offset_store == "database":
        return (
            "kafka_consumer_app.E121",
            "excludes OFFSET_STORE 'database': a share group has no offsets to store",
            "Remove OFFSET_STORE (or SHARE_GROUP); share-group receivers must be idempotent instead.",
        )
    if isinstance(concurrency, int) and concurrency > 1:
        return (
            "kafka_consumer_app.E122",
            f"excludes CONCURRENCY {concurrency}: a share consumer acknowledges on one thread",
            "Remove CONCURRENCY and run more replicas: every replica shares every partition.",
        )
    return None


def delivery_limit_warnings() -> list[Problem]:
    """W125: a share-group topic whose RETRY ATTEMPTS exceed Kafka's default delivery limit."""
    top = raw_settings()
    topics = top.get("TOPICS")
    found = []
    for name, overrides in (topics if isinstance(topics, dict) else {}).items():
        if not (isinstance(overrides, dict) and overrides.get("SHARE_GROUP") is True):
            continue
        retry = {**_dict(top.get("RETRY")), **_dict(overrides.get("RETRY"))}
        attempts = retry.get("ATTEMPTS", 3)
        if isinstance(attempts, int) and attempts > DEFAULT_DELIVERY_LIMIT:
            found.append(
                Problem(
                    "kafka_consumer_app.W125",
                    f"{topic_where(name)} has RETRY ATTEMPTS {attempts}, more than the {DEFAULT_DELIVERY_LIMIT} "
                    "deliveries Kafka allows a share-group message by default",
                    f"Raise the group's share.delivery.count.limit to at least {attempts} (kafka-configs "
                    "--entity-type groups), or lower ATTEMPTS: past the limit the broker archives the message "
                    "without it being parked.",
                )
            )
    return found


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
