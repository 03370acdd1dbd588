"""
Offsets in the service's database (``OFFSET_STORE = "database"``): the receivers' writes and the position
in one transaction (docs/decisions/0010-offsets-in-the-database.rst).

For each message, :meth:`DatabasePositions.attempt` opens ``transaction.atomic()`` on the topic's
``DATABASE`` alias, calls the receivers, and moves the partition's row of
:class:`~kafka_consumer_app.models.ConsumedPosition` to the next offset, with a guard: only if the
row is not past the message already. Then it commits, and the offset is also stored for Kafka's
commit, as with the Kafka store. If a receiver failed, everything rolls back, and a retry runs every
receiver again. If the guard finds the row past the message (another consumer of the group handled it
in the meantime, during a rebalance), everything rolls back and the message counts as handled.

On assignment each partition starts at its row's offset, or at the group's committed offset in Kafka
when that is further or the row has none. A message that was parked or skipped moves the row on in a
transaction of its own, after the dead-letter write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Message as KafkaMessage
from confluent_kafka import TopicPartition
from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from kafka_consumer_app.engine.dispatch import DispatchResult, ReceiverFailure
from kafka_consumer_app.engine.records import Location
from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.settings.topics import TopicConfig
from kafka_consumer_app.signals import topic_signal

logger = logging.getLogger(__name__)


class _RollBack(Exception):
    """Leaves the transaction with a result that must not be committed."""

    def __init__(self, result: DispatchResult | None) -> None:
        super().__init__()
        self.result = result


class DatabasePositions:
    """The next offset of each partition of one topic and group, in the positions table of one alias."""

    def __init__(self, config: TopicConfig) -> None:
        from kafka_consumer_app.models import ConsumedPosition  # the apps are ready by the time a consumer exists

        self._model = ConsumedPosition
        self.alias = config.offsets.database
        self._group = config.group_id
        self._topic = config.kafka_topic
        self._signal = topic_signal(config.topic)

    def check_table(self) -> None:
        """Raise a one-line ConfigurationError if the positions table cannot be read (not migrated)."""
        try:
            self._rows().exists()
        except DatabaseError as error:
            raise ConfigurationError(
                f"OFFSET_STORE 'database' cannot read the positions table on database {self.alias!r} "
                f"({type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}); "
                "check that the database is reachable, and run ./manage.py migrate kafka_consumer_app"
            ) from error

    def attempt(
        self, partition: int, first: int, last: int, run: Callable[[], DispatchResult]
    ) -> DispatchResult | None:
        """
        Run the receivers (``run``) for the messages ``first`` to ``last`` of ``partition`` and move the row
        past ``last``, in one transaction. Returns the failed result rolled back, the result committed, or
        None when the row was past ``first`` already (rolled back: handled before, by this group).
        """
        try:
            with transaction.atomic(using=self.alias):
                result = run()
                if not result.ok:
                    raise _RollBack(result)
                if not self._advance(partition, first, last + 1):
                    raise _RollBack(None)
        except _RollBack as rollback:
            return rollback.result
        except DatabaseError as error:
            # The row's UPDATE or the COMMIT failed (most often, the database went away): the attempt failed as
            # if a receiver had raised it, so that the failure policy (its database outage rules) decides.
            failed = DispatchResult()
            failed.failures.append(ReceiverFailure(self._signal, offset_store, error))
            return failed
        return result

    def attempt_message(self, location: Location, run: Callable[[], DispatchResult]) -> DispatchResult:
        """:meth:`attempt` for one message; one handled before counts as handled (an empty result)."""
        result = self.attempt(location.partition, location.offset, location.offset, run)
        if result is None:
            logger.info("Skipped %s: the database position shows it handled already.", location)
            return DispatchResult()
        return result

    def given_up(self, mark: Callable[[int, KafkaMessage], None]) -> Callable[[int, KafkaMessage], None]:
        """``mark`` for a parked or skipped message, with its row moved past it first."""

        def advance_and_mark(partition: int, raw: KafkaMessage) -> None:
            self.advance(partition, raw.offset() or 0)
            mark(partition, raw)

        return advance_and_mark

    def next_offset(self, partition: int) -> int:
        """The partition's row's next offset (-1 without a row)."""
        found = self._rows().filter(partition=partition).values_list("next_offset", flat=True).first()
        return -1 if found is None else found

    def advance(self, partition: int, offset: int) -> None:
        """A message given up (parked or skipped): move the row past it, on its own."""
        try:
            self._advance(partition, offset, offset + 1)
        except DatabaseError as error:
            logger.warning(
                "Could not move the database position of %s[%d] past offset %d (%s); the message is committed in "
                "Kafka, and is handled again only if the database position is read before Kafka's.",
                self._topic,
                partition,
                offset,
                error,
            )

    def starting_offsets(self, partitions: Sequence[TopicPartition]) -> dict[int, int]:
        """The partitions' next offsets in the table (rows created for those without one, to lock later)."""
        numbers = [partition.partition for partition in partitions]
        rows = dict(self._rows().filter(partition__in=numbers).values_list("partition", "next_offset"))
        missing = [number for number in numbers if number not in rows]
        if missing:
            self._model.objects.using(self.alias).bulk_create(
                [self._model(group=self._group, topic=self._topic, partition=number) for number in missing],
                ignore_conflicts=True,
            )
        return {number: offset for number, offset in rows.items() if offset >= 0}

    def move_to(self, positions: Sequence[TopicPartition]) -> None:
        """Set the partitions' rows to ``positions`` (a reset: --from-beginning, --offset-time, --reset-only)."""
        with transaction.atomic(using=self.alias):
            for position in positions:
                self._model.objects.using(self.alias).update_or_create(
                    group=self._group,
                    topic=self._topic,
                    partition=position.partition,
                    defaults={"next_offset": position.offset},
                )

    def _advance(self, partition: int, first: int, next_offset: int) -> bool:
        """Move the row to ``next_offset`` unless it is past ``first``; whether it moved (or was created)."""
        rows = self._rows().filter(partition=partition, next_offset__lte=first)
        if rows.update(next_offset=next_offset, updated_at=timezone.now()):
            return True
        if self._rows().filter(partition=partition).exists():
            return False  # past first: handled already
        self._model.objects.using(self.alias).create(
            group=self._group, topic=self._topic, partition=partition, next_offset=next_offset
        )  # no row yet (assigned before the table existed): an IntegrityError here means another made it
        return True

    def _rows(self) -> QuerySet[Any]:
        return self._model.objects.using(self.alias).filter(group=self._group, topic=self._topic)


def offset_store(**kwargs: Any) -> None:
    """Stands for the move of the partition's row, in failures: it is named in logs and dead-letter headers."""
