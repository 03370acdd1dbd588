"""
The group's rebalance callbacks, and the one-time offset reset applied at the first assignment.

On revoke, handled offsets are committed before librdkafka gives the partitions up; on a
loss (no clean revoke) nothing can be committed. Either way the retries pending on those
partitions are dropped: their next owner starts afresh. See docs/decisions/0004-commits-during-a-rebalance.rst.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition
from django.db import DatabaseError

from kafka_consumer_app.engine.commits import Commits
from kafka_consumer_app.engine.control import OperatorPause
from kafka_consumer_app.engine.offsets import OffsetReset, reset_positions
from kafka_consumer_app.engine.positions import DatabasePositions
from kafka_consumer_app.engine.retries import RetryScheduler
from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.settings.group_protocol import uses_consumer_protocol
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)


class PartitionWork(Protocol):
    """What runs messages of the assigned partitions besides the loop (the workers of CONCURRENCY above 1)."""

    def assigned(self, client: Consumer, partitions: Sequence[TopicPartition]) -> None:
        """Partitions were assigned (after any reset)."""

    def revoking(self, client: Consumer, partitions: Sequence[TopicPartition]) -> None:
        """Partitions are being revoked: finish what runs of them and store their offsets, before the commit."""

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions are gone (revoked after the commit, or lost): drop what is left of them."""


class Rebalancing:
    """``on_assign``, ``on_revoke`` and ``on_lost`` of the consumer's subscription."""

    def __init__(
        self,
        config: TopicConfig,
        reset: OffsetReset | None,
        commits: Commits,
        retries: RetryScheduler,
        emit: Callable[..., None],
        positions: DatabasePositions | None = None,
    ) -> None:
        self._config = config
        #: OFFSET_STORE "database": assigned partitions start at their rows' offsets.
        self._positions = positions
        self._reset = reset
        self._commits = commits
        self._retries = retries
        self._emit = emit
        #: The workers, with CONCURRENCY above 1 (set by the consumer).
        self.work: PartitionWork | None = None
        #: The operator's pause (set by the consumer): partitions assigned while it holds are paused at once.
        self.control: OperatorPause | None = None
        #: Whether the current on_assign assigned the partitions itself (else librdkafka does, after it).
        self._assigned_now = False
        #: Whether the group ever assigned partitions: the --idle-timeout clock runs only from then.
        self.assigned = False
        #: When partitions were last assigned (time.monotonic()).
        self.assigned_at = 0.0

    def on_assign(self, client: Consumer, partitions: list[TopicPartition]) -> None:
        """Apply a pending one-time reset, pause the partitions during an operator's pause, restart the idle clock."""
        self._assigned_now = False
        if self._reset is not None and partitions:
            reset, self._reset = self._reset, None
            self._apply_reset(client, partitions, reset)
        elif self._positions is not None and partitions and self._commits.client is not None:
            # (No client: the consumer is closing, and nothing will be consumed from these partitions.)
            self._start_from_database(client, self._positions, partitions)
        # Waiting to join the group (e.g. until a killed member's session expires) is not an idle
        # topic: --idle-timeout counts from the latest assignment, never from before the first one.
        if self.work is not None:
            self.work.assigned(client, partitions)
        if self.control is not None and self.control.paused and partitions:
            if not self._assigned_now:  # a partition is paused once assigned: assign here, not after the callback
                self._assign(client, partitions)
            self.control.assigned(client, partitions)
        self.assigned = True
        self.assigned_at = time.monotonic()
        logger.info(
            "Assigned partitions %s of %s (group %s).",
            partition_list(partitions),
            self._config.kafka_topic,
            self._config.group_id,
        )
        self._emit("after_assign", [p.partition for p in partitions])

    def on_revoke(self, client: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit handled offsets (the revoked partitions' among them) before librdkafka gives them up."""
        self._retries.forget(partitions, client)
        if self.control is not None:
            self.control.revoked(client, partitions)
        if self.work is not None:
            self.work.revoking(client, partitions)
        error = self._commits.commit_on_revoke(client)
        if self.work is not None:
            self.work.forget(partitions)
        if error is None:
            logger.info(
                "Revoked partitions %s of %s (group %s) after committing handled offsets.",
                partition_list(partitions),
                self._config.kafka_topic,
                self._config.group_id,
            )
        else:
            logger.warning(
                "Revoked partitions %s of %s (group %s), but committing handled offsets failed (%s); their next "
                "owners will handle again the messages handled since the last commit.",
                partition_list(partitions),
                self._config.kafka_topic,
                self._config.group_id,
                error.str(),
            )
        self._emit("after_revoke", [p.partition for p in partitions], False)

    def on_lost(self, client: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions taken without a clean revoke: nothing can be committed for them any more."""
        self._retries.forget(partitions, client)
        if self.control is not None:
            self.control.revoked(client, partitions)
        if self.work is not None:
            self.work.forget(partitions)
        logger.warning(
            "Lost partitions %s of %s (group %s) without a clean revoke; "
            "their uncommitted messages will be redelivered to the new owner.",
            partition_list(partitions),
            self._config.kafka_topic,
            self._config.group_id,
        )
        self._emit("after_revoke", [p.partition for p in partitions], True)

    def _start_from_database(
        self, client: Consumer, positions: DatabasePositions, partitions: list[TopicPartition]
    ) -> None:
        """
        Assign each partition from its row's offset where that is past the group's commit in Kafka (a crash
        after the database's commit and before Kafka's); the others from Kafka's, as usual.
        """
        try:
            rows = positions.starting_offsets(partitions)
            if not rows:
                return
            found = client.committed(partitions, timeout=self._config.connect_timeout)
        except (KafkaException, DatabaseError) as error:
            # The positions' guard still skips, without running them, the messages the rows are past.
            logger.warning(
                "Could not read the positions of partitions %s of %s (%s); they start from the group's commit in "
                "Kafka, and the messages their database positions are past are skipped as they come.",
                partition_list(partitions),
                self._config.kafka_topic,
                error,
            )
            return
        committed = {p.partition: p.offset for p in found}
        ahead = {number: offset for number, offset in rows.items() if offset > committed.get(number, -1)}
        if not ahead:
            return
        topic = self._config.kafka_topic
        self._assign(
            client, [TopicPartition(topic, p.partition, ahead.get(p.partition, OFFSET_INVALID)) for p in partitions]
        )
        logger.info(
            "Partitions %s of %s start at their database positions %s, past the group's commit in Kafka.",
            sorted(ahead),
            topic,
            [ahead[number] for number in sorted(ahead)],
        )

    def _assign(self, client: Consumer, positions: list[TopicPartition]) -> None:
        """Assign from ``positions`` inside on_assign: incremental unless the user chose an eager strategy."""
        self._assigned_now = True
        options = self._config.consumer_config
        # KIP-848 groups are always incremental.
        if uses_consumer_protocol(options) or (
            options.get("partition.assignment.strategy", "cooperative-sticky") == "cooperative-sticky"
        ):
            client.incremental_assign(positions)
        else:
            client.assign(positions)

    def _apply_reset(self, client: Consumer, partitions: list[TopicPartition], reset: OffsetReset) -> None:
        """Rewind the first assigned partitions, commit the new positions (in the database too), assign from them."""
        config = self._config
        positions = reset_positions(client, config.kafka_topic, [p.partition for p in partitions], reset)
        client.commit(offsets=positions, asynchronous=False)
        if self._positions is not None:
            self._positions.move_to(positions)
        self._assign(client, positions)
        logger.info(
            "Reset group %s to %s on %s: partitions %s restart at offsets %s.",
            config.group_id,
            reset.describe(),
            config.kafka_topic,
            partition_list(positions),
            [p.offset for p in sorted(positions, key=lambda p: p.partition)],
        )


def commit_reset(client: Consumer, config: TopicConfig, reset: OffsetReset) -> list[TopicPartition]:
    """Commit ``reset``'s positions of every partition of the topic for the group (--reset-only); return them."""
    metadata = client.list_topics(config.kafka_topic, timeout=config.connect_timeout)
    partitions = sorted(metadata.topics[config.kafka_topic].partitions)
    positions = reset_positions(client, config.kafka_topic, partitions, reset)
    try:
        client.commit(offsets=positions, asynchronous=False)
    except KafkaException as error:
        raise ConfigurationError(
            f"could not reset group {config.group_id} ({error.args[0].str() if error.args else error}); "
            "stop every consumer of the group first: a reset needs a group without active members"
        ) from error
    return positions


def log_reset_committed(config: TopicConfig, reset: OffsetReset, positions: Sequence[TopicPartition]) -> None:
    """The last line of --reset-only, once the client is closed."""
    logger.info(
        "Reset group %s to %s on %s: offsets %s committed; exiting (--reset-only).",
        config.group_id,
        reset.describe(),
        config.kafka_topic,
        {p.partition: p.offset for p in positions},
    )


def partition_list(partitions: Sequence[TopicPartition]) -> str:
    """``[0, 1, 2]``: the partition numbers, sorted, as log lines show them."""
    return (
        "[" + ", ".join(str(partition.partition) for partition in sorted(partitions, key=lambda p: p.partition)) + "]"
    )
