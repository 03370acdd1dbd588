"""
Retries that keep the consumer in its group: a failed message's partition waits, the others flow.

:class:`RetryScheduler` blocks the failed message's partition while its retry is pending: it
pauses the partition and seeks back to the failed offset, so the consumer keeps polling (and
stays in its group) and other partitions keep flowing. Whether and when a message is tried
again is the failure policy's decision (:mod:`kafka_consumer_app.engine.policy`).
See docs/decisions/0002-retries-and-dead-letters.rst.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from kafka_consumer_app.engine.dispatch import ReceiverFailure
from kafka_consumer_app.engine.records import Location

#: How a partition is resumed: ``client.resume``, or the operator's pause, which holds while it lasts.
Resume = Callable[[Any, list[TopicPartition]], None]


def resume_on_client(client: Any, partitions: list[TopicPartition]) -> None:
    """Resume ``partitions`` on the client (the default :data:`Resume`)."""
    client.resume(partitions)


logger = logging.getLogger(__name__)


@dataclass
class PendingRetry:
    """A message waiting for its next try; its partition is paused until ``due``."""

    partition: int
    offset: int
    attempts_made: int
    failures: Sequence[ReceiverFailure]
    due: float
    resumed: bool = False


class RetryScheduler:
    """
    Keeps one pending retry per partition, pausing and resuming partitions around it.

    While the database is out (``holding()`` true), :meth:`hold` pauses every other assigned partition
    too, and :meth:`resume_due` resumes them once it answered again. It resumes through ``resume``: while
    an operator has the topic paused, that resumes nothing (see :mod:`kafka_consumer_app.engine.control`).
    """

    def __init__(
        self, kafka_topic: str, holding: Callable[[], bool] | None = None, resume: Resume = resume_on_client
    ) -> None:
        self.kafka_topic = kafka_topic
        self._resume = resume
        self._pending: dict[int, PendingRetry] = {}
        self._holding = holding
        #: Partitions paused by :meth:`hold`, not for a retry of their own.
        self._held: set[int] = set()

    def pending(self, partition: int) -> PendingRetry | None:
        """The retry waiting on ``partition``, if any."""
        return self._pending.get(partition)

    def schedule(
        self, client: Any, location: Location, attempts_made: int, failures: Sequence[ReceiverFailure], delay: float
    ) -> PendingRetry:
        """Pause the message's partition and rewind it to the message, to be tried again in ``delay`` s."""
        partition = location.topic_partition()
        self._held.discard(location.partition)  # paused for its own retry now, resumed when that is due
        client.pause([partition])
        client.seek(partition)
        retry = PendingRetry(location.partition, location.offset, attempts_made, failures, time.monotonic() + delay)
        self._pending[location.partition] = retry
        return retry

    def hold(self, client: Any) -> None:
        """Pause every assigned partition that is not already paused, until :meth:`resume_due` sees no outage."""
        paused = self._pending.keys() | self._held
        partitions = [partition for partition in client.assignment() if partition.partition not in paused]
        if partitions:
            client.pause(partitions)
            self._held.update(partition.partition for partition in partitions)

    def resume_due(self, client: Any) -> None:
        """Resume every paused partition whose retry is due, and the held ones once the outage is over."""
        if self._held and not (self._holding is not None and self._holding()):
            self._resume(client, [TopicPartition(self.kafka_topic, partition) for partition in sorted(self._held)])
            self._held.clear()
        now = time.monotonic()
        for retry in self._pending.values():
            if not retry.resumed and retry.due <= now:
                self._resume(client, [TopicPartition(self.kafka_topic, retry.partition)])
                retry.resumed = True

    def paused_partitions(self) -> set[int]:
        """The partitions paused for a retry not due yet, or held while the database is out."""
        return {retry.partition for retry in self._pending.values() if not retry.resumed} | self._held

    def poll_timeout(self, default: float) -> float:
        """How long the next poll may block without making a due retry late."""
        waits = [retry.due - time.monotonic() for retry in self._pending.values() if not retry.resumed]
        return max(0.0, min([default, *waits]))

    def finish(self, partition: int) -> None:
        """Forget the retry of ``partition``: its message succeeded or was given up."""
        self._pending.pop(partition, None)

    def forget(self, partitions: Iterable[TopicPartition], client: Any = None) -> None:
        """
        Drop the retries of partitions this consumer no longer owns; their new owner starts afresh.

        With ``client``, a partition still paused for its retry (or held) is resumed first: librdkafka keeps
        a partition paused across a revoke, so one assigned back to this consumer later would
        otherwise never be fetched again.
        """
        paused = []
        for partition in partitions:
            retry = self._pending.pop(partition.partition, None)
            held = partition.partition in self._held
            self._held.discard(partition.partition)
            if held or (retry is not None and not retry.resumed):
                paused.append(TopicPartition(self.kafka_topic, partition.partition))
        if paused and client is not None:
            try:
                client.resume(paused)
            except KafkaException as error:
                logger.warning(
                    "Could not resume partitions %s of %s when they were revoked (%s); if they are assigned back, "
                    "restart the consumer.",
                    [p.partition for p in paused],
                    self.kafka_topic,
                    error,
                )
