"""
Offsets: storing a handled message's offset, and the synchronous commits that survive a rebalance.

Offsets are stored only after every receiver returned (``enable.auto.offset.store=false``);
librdkafka commits stored offsets in the background, and :class:`Commits` commits them
synchronously on revoke, on shutdown and before the watchdog ends a stalled process. A
commit refused because the group is rebalancing is made again once it settles.
See docs/decisions/0001-offset-strategy.rst and docs/decisions/0004-commits-during-a-rebalance.rst.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from kafka_consumer_app.engine.progress import Progress
from kafka_consumer_app.engine.records import where
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

#: Commit errors that mean the group is rebalancing: the same commit succeeds once the rebalance settles
#: (the classic protocol's broker refuses commits between JoinGroup and SyncGroup, and commits of a
#: generation it just replaced; KIP-848's refuses a member epoch it has just bumped, until the member's
#: next heartbeat brings the new one).
REBALANCE_COMMIT_ERRORS = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.STALE_MEMBER_EPOCH,
    }
)
#: On shutdown, how long the consumer keeps serving the group (handling nothing) for a rebalance to settle
#: before its final commit. A rebalance of live members takes about one heartbeat.interval.ms (3 s by
#: default) per round, two rounds with cooperative-sticky; 15 s of Kubernetes' default 30 s grace period
#: leaves the rest for the message in hand and close().
SHUTDOWN_SETTLE_TIMEOUT = 15.0
#: In the revoke callback (which cannot poll), how long a commit refused by a rebalance is tried again.
REVOKE_COMMIT_TIMEOUT = 3.0
#: Pause between two tries of a commit refused by a rebalance.
COMMIT_RETRY_INTERVAL = 0.2


class Commits:
    """Stores offsets and commits them; ``client`` is the consumer's client while ``run()`` runs."""

    def __init__(self, config: TopicConfig, emit: Callable[..., None], progress: Progress) -> None:
        self._config = config
        self._emit = emit
        self._progress = progress
        #: The client to commit on when the watchdog ends a stalled process; None outside ``run()``.
        self.client: Consumer | None = None
        #: Per partition, the latest message handled or parked whose offset is not stored yet.
        self._marked: dict[int, KafkaMessage] = {}
        #: With CONCURRENCY above 1, the offsets (watermarks with their metadata) a synchronous commit commits:
        #: librdkafka's commit of the stored offsets would drop the metadata.
        self.offsets_to_commit: Callable[[], list[TopicPartition]] | None = None

    def mark(self, partition: int, raw: KafkaMessage) -> None:
        """
        ``raw``, of ``partition``, was handled or parked: its offset is stored with the rest of its batch.

        Messages of a partition are marked in offset order, so the latest one marked is the one whose
        offset is stored; nothing is built per message.
        """
        self._marked[partition] = raw
        self._progress.stored()

    def store_marked(self, client: Consumer) -> bool:
        """Store the offsets marked since the last call, one per partition; return False if the client refused."""
        marked = self._marked
        if not marked:
            return True
        topic = self._config.kafka_topic
        latest = list(marked.items())  # a copy: the watchdog thread may call this while the loop is in a receiver
        marked.clear()
        offsets = [_next_offset(topic, partition, raw) for partition, raw in latest]
        try:
            client.store_offsets(offsets=offsets)
        except KafkaException as error:
            # A partition was taken away meanwhile; its new owner will get these messages again.
            logger.warning(
                "Could not store the offsets of %s (%s); their messages will be redelivered.",
                ", ".join(where(raw) for _, raw in latest),
                error,
            )
            return False
        return True

    def try_commit(self, client: Consumer) -> KafkaError | None:
        """Commit every stored offset synchronously; return the error, or None (nothing stored is no error)."""
        try:
            if self.offsets_to_commit is None:
                client.commit(asynchronous=False)
            else:
                offsets = self.offsets_to_commit()
                if not offsets:
                    return None
                client.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            first = error.args[0] if error.args else None
            kafka_error = first if isinstance(first, KafkaError) else KafkaError(KafkaError._FAIL, str(error))
            if kafka_error.code() == KafkaError._NO_OFFSET:
                return None
            self._emit("after_commit_failed", kafka_error)
            return kafka_error
        return None

    def commit(self, client: Consumer, why: str) -> bool:
        """Commit every stored offset synchronously; return whether that succeeded, and log a failure."""
        error = self.try_commit(client)
        if error is None:
            return True
        logger.warning(
            "Committing offsets of %s (group %s) on %s failed (%s); messages handled since the last commit "
            "will be handled again by whoever consumes their partitions next.",
            self._config.kafka_topic,
            self._config.group_id,
            why,
            error.str(),
        )
        return False

    def commit_before_exit(self) -> None:
        """Called by the watchdog thread before it ends a stalled process: commit what was handled."""
        client = self.client
        if client is not None:
            self.store_marked(client)
            self.commit(client, "stalled receiver")

    def commit_on_revoke(self, client: Consumer) -> KafkaError | None:
        """Commit in the revoke callback, which cannot poll: a commit refused by a rebalance is tried a little."""
        # Until the callback returns the revoked partitions are still ours, under a generation the broker
        # accepts once a concurrent join or sync is over.
        error = self.try_commit(client)
        deadline = time.monotonic() + REVOKE_COMMIT_TIMEOUT
        while error is not None and error.code() in REBALANCE_COMMIT_ERRORS and time.monotonic() < deadline:
            time.sleep(COMMIT_RETRY_INTERVAL)
            error = self.try_commit(client)
        return error

    def commit_on_shutdown(self, client: Consumer) -> bool:
        """The final commit; if a rebalance refuses it, serve the group (handling nothing) until it settles."""
        error = self.try_commit(client)
        if error is None:
            return True
        if error.code() in REBALANCE_COMMIT_ERRORS:
            logger.info(
                "Committing offsets of %s (group %s) on shutdown was refused (%s): a rebalance is under way; "
                "handling nothing more and waiting up to %.0fs for it to settle, then committing again.",
                self._config.kafka_topic,
                self._config.group_id,
                error.str(),
                SHUTDOWN_SETTLE_TIMEOUT,
            )
            error = self._commit_after_rebalance(client, time.monotonic() + SHUTDOWN_SETTLE_TIMEOUT)
            if error is None:
                logger.info(
                    "Committed offsets of %s (group %s) on shutdown once the rebalance settled; leaving the group.",
                    self._config.kafka_topic,
                    self._config.group_id,
                )
                return True
        self._log_final_commit_failed(error)
        return False

    def _commit_after_rebalance(self, client: Consumer, deadline: float) -> KafkaError | None:
        """Poll (serving rebalance callbacks) and commit again until it succeeds, fails otherwise, or deadline."""
        # Paused partitions fetch nothing; what was fetched already is dropped unstored, so it is redelivered.
        self._pause_assignment(client)
        error: KafkaError | None = None
        while time.monotonic() < deadline:
            client.poll(COMMIT_RETRY_INTERVAL)  # a message returned here is not handled, nor stored
            error = self.try_commit(client)
            if error is None or error.code() not in REBALANCE_COMMIT_ERRORS:
                return error
        return error

    def _pause_assignment(self, client: Consumer) -> None:
        try:
            client.pause(client.assignment())
        except KafkaException as error:
            # Not fatal: fetched messages are dropped unstored anyway, paused or not.
            logger.debug("Could not pause %s before the final commit (%s).", self._config.kafka_topic, error)

    def _log_final_commit_failed(self, error: KafkaError | None) -> None:
        logger.warning(
            "Committing offsets of %s (group %s) on shutdown failed (%s); leaving the group now, so messages "
            "handled since the last successful commit will be handled again by the partitions' next owners.",
            self._config.kafka_topic,
            self._config.group_id,
            error.str() if error is not None else f"the rebalance did not settle within {SHUTDOWN_SETTLE_TIMEOUT:g}s",
        )


def _next_offset(topic: str, partition: int, raw: KafkaMessage) -> TopicPartition:
    """The position after ``raw``, with its leader epoch, as ``store_offsets(message=raw)`` stores it."""
    offset = raw.offset()
    assert offset is not None, "only consumed messages are marked"
    return TopicPartition(topic, partition, offset + 1, leader_epoch=raw.leader_epoch())
