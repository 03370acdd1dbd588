"""
Operator pauses: the admin console's Pause and Resume of a topic, as a consumer carries them out.

An operator pauses a topic by setting its :class:`~kafka_consumer_app.models.ConsumerControl` row. Every
consumer of the topic reads that row from its loop thread every ``CONTROL_INTERVAL`` seconds
(:meth:`OperatorPause.check`) and then pauses all its assigned partitions on the client: it stays in its
group and keeps polling (so its heartbeat, its readiness and its commits go on) but fetches nothing.
Partitions assigned while the pause holds are paused at once (:meth:`OperatorPause.assigned`).

The retries and the workers' backpressure pause and resume partitions too. They resume through
:meth:`OperatorPause.resume`, which does nothing while the operator's pause holds, so that theirs never
undoes it; on Resume the consumer resumes every assigned partition except those they still hold paused,
and continues where it stopped. A control row that cannot be read (the database is out, the table is not
migrated) keeps the last state, with one warning. See docs/decisions/0011-pausing-from-the-admin.rst.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence, Set
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from django.db import DatabaseError, router
from django.db import connections as django_connections

from kafka_consumer_app.engine.hooks import ControlState
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

#: Reads the control row of a Kafka topic: its state, or None when there is no row.
ControlReader = Callable[[str], ControlState | None]


def read_control(kafka_topic: str) -> ControlState | None:
    """The control row of ``kafka_topic`` from the database (raises DatabaseError when it cannot be read)."""
    from kafka_consumer_app.models import ConsumerControl  # the apps are ready by the time a consumer exists

    row = ConsumerControl.objects.filter(topic=kafka_topic).values_list("paused", "changed_by", "changed_at").first()
    if row is None:
        return None
    paused, changed_by, changed_at = row
    return ControlState(paused, changed_by, changed_at.isoformat(timespec="seconds") if changed_at else "")


class OperatorPause:
    """
    The operator's pause of one consumer's topic: read from the control row, applied to the client.

    Only the loop thread calls it, as only the loop thread talks to the client.
    """

    def __init__(
        self,
        config: TopicConfig,
        emit: Callable[..., None],
        read: ControlReader = read_control,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._emit = emit
        self._read = read
        self._clock = clock
        self._next_read = 0.0
        self._unreadable = False
        #: The latest state read (not paused until a row says otherwise).
        self.state = ControlState(False)
        #: The partitions the retries and the workers hold paused for themselves: a Resume leaves them paused.
        self.holders: list[Callable[[], Set[int]]] = []

    @property
    def paused(self) -> bool:
        """Whether an operator has the topic paused (as last read)."""
        return self.state.paused

    def check(self, client: Any) -> None:
        """Every CONTROL_INTERVAL, read the control row; pause or resume every assigned partition on a change."""
        now = self._clock()
        if now < self._next_read:
            return
        self._next_read = now + self._config.control.interval
        state = self._read_row()
        if state is None:
            return
        changed = state.paused != self.state.paused
        self.state = state
        if not changed:
            return
        if state.paused:
            self._pause(client, client.assignment())
        else:
            self._resume_assigned(client)
        logger.warning(
            "Topic %s (group %s) %s.",
            self._config.kafka_topic,
            self._config.group_id,
            state.describe() if state.paused else f"{state.describe()} from the admin console; fetching again",
        )
        self._emit("after_control", state)

    def resume(self, client: Any, partitions: Sequence[TopicPartition]) -> None:
        """Resume ``partitions`` for the retries or the workers, unless the operator's pause holds."""
        if partitions and not self.paused:
            client.resume(list(partitions))

    def assigned(self, client: Any, partitions: Sequence[TopicPartition]) -> None:
        """Partitions were just assigned (on_assign, after the assignment): paused too while the pause holds."""
        if self.paused and partitions:
            self._pause(client, partitions)

    def revoked(self, client: Any, partitions: Sequence[TopicPartition]) -> None:
        """
        Partitions are revoked or lost: librdkafka would keep them paused, and one assigned back after
        a Resume would never be fetched again, so they are resumed on their way out.
        """
        if not (self.paused and partitions):
            return
        try:
            client.resume([TopicPartition(self._config.kafka_topic, p.partition) for p in partitions])
        except KafkaException as error:
            logger.warning(
                "Could not resume partitions %s of %s when they were revoked during a pause (%s); if they are "
                "assigned back after the pause, restart the consumer.",
                [p.partition for p in partitions],
                self._config.kafka_topic,
                error,
            )

    def _read_row(self) -> ControlState | None:
        """The row's state (not paused without a row), or None when it cannot be read: the last state holds."""
        try:
            state = self._read(self._config.kafka_topic)
        except Exception as error:  # whatever keeps the row from being read, the consumer goes on as it was
            self._unreadable_row(error)
            return None
        if self._unreadable:
            self._unreadable = False
            logger.info("Read the control row of %s again.", self._config.kafka_topic)
        return state if state is not None else ControlState(False)

    def _unreadable_row(self, error: Exception) -> None:
        if not self._unreadable:
            self._unreadable = True
            logger.warning(
                "Could not read the control row of %s (%s: %s); consuming goes on %s, and the row is read again "
                "every %gs (is `./manage.py migrate` done?).",
                self._config.kafka_topic,
                type(error).__name__,
                str(error).strip().splitlines()[0] if str(error).strip() else "",
                "paused" if self.paused else "unpaused",
                self._config.control.interval,
            )
        from kafka_consumer_app.models import ConsumerControl

        if isinstance(error, DatabaseError):  # a broken connection is closed: the next read opens a new one
            django_connections[router.db_for_read(ConsumerControl)].close_if_unusable_or_obsolete()

    def _pause(self, client: Any, partitions: Sequence[TopicPartition]) -> None:
        if partitions:
            client.pause(list(partitions))

    def _resume_assigned(self, client: Any) -> None:
        """Resume every assigned partition that no retry, outage hold or full queue keeps paused."""
        held: set[int] = set()
        for holder in self.holders:
            held |= holder()
        partitions = [p for p in client.assignment() if p.partition not in held]
        if partitions:
            client.resume(partitions)
