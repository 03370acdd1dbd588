"""
Replaying and resolving dead letters from the operator console, each at most once.

Each action first *claims* every chosen dead letter by inserting its
:class:`~kafka_consumer_app.models.DeadLetterMark` (unique per dead-letter topic, partition and
offset) inside one transaction; a letter whose row exists already (a double click, a reloaded
POST, another operator) is skipped. Replay then republishes the claimed letters with
:func:`~kafka_consumer_app.operations.replay.republish`, the code of ``replay_dead_letters``, and
deletes, before the transaction commits, the rows of the copies the broker did not confirm, so they
can be replayed again (docs/decisions/0012-replaying-from-the-admin.rst).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException, Producer
from django.db import IntegrityError, transaction
from django.utils import timezone

from kafka_consumer_app.client_errors import ClientErrors, reason
from kafka_consumer_app.engine.client import producer_options
from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.models import DeadLetterMark
from kafka_consumer_app.operations.dead_letters import DeadLetter
from kafka_consumer_app.operations.replay import republish
from kafka_consumer_app.settings.topics import TopicConfig


@dataclass(frozen=True)
class Outcome:
    """What one action did: letters replayed or resolved now, letters already marked, and failures (one line each)."""

    done: int
    skipped: int
    failed: tuple[str, ...] = ()


def marks_of(topic: str, letters: Sequence[DeadLetter]) -> dict[tuple[int, int], DeadLetterMark]:
    """The rows of ``letters`` that exist, by (partition, offset)."""
    offsets = {letter.offset for letter in letters}
    rows = DeadLetterMark.objects.filter(dlq_topic=topic, offset__in=offsets)
    return {(row.partition, row.offset): row for row in rows}


def resolve(letters: Sequence[DeadLetter], user: str) -> Outcome:
    """Mark ``letters`` resolved: nothing is produced; a letter already replayed or resolved is skipped."""
    with transaction.atomic():
        claimed = _claim(letters, DeadLetterMark.RESOLVED, user)
    return Outcome(done=len(claimed), skipped=len(letters) - len(claimed))


def replay(config: TopicConfig, letters: Sequence[DeadLetter], user: str) -> Outcome:
    """Republish ``letters`` to their original topics, each at most once; see the module's docstring."""
    with transaction.atomic():
        claimed = _claim(letters, DeadLetterMark.REPLAYED, user)
        failed = [(letter, "it has no original topic header") for letter in claimed if not letter.original_topic]
        sendable = [letter for letter in claimed if letter.original_topic]
        if sendable:
            reasons = republish(_producer(config), [(letter.raw, letter.original_topic) for letter in sendable], 30.0)
            failed += [(letter, why) for letter, why in zip(sendable, reasons, strict=True) if why is not None]
        for letter, _why in failed:  # not confirmed: unclaimed, so that a later Replay tries it again
            DeadLetterMark.objects.filter(
                dlq_topic=letter.topic, partition=letter.partition, offset=letter.offset
            ).delete()
    return Outcome(
        done=len(claimed) - len(failed),
        skipped=len(letters) - len(claimed),
        failed=tuple(f"{letter.position}: {why}" for letter, why in failed),
    )


def _claim(letters: Sequence[DeadLetter], state: str, user: str) -> list[DeadLetter]:
    """Insert a row per letter; return the letters whose row this call inserted (the others existed)."""
    claimed = []
    now = timezone.now()
    for letter in letters:
        try:
            with transaction.atomic():  # a savepoint: a duplicate undoes its own insert only
                DeadLetterMark.objects.create(
                    dlq_topic=letter.topic,
                    partition=letter.partition,
                    offset=letter.offset,
                    state=state,
                    original_topic=letter.original_topic if state == DeadLetterMark.REPLAYED else "",
                    changed_by=user,
                    changed_at=now,
                )
        except IntegrityError:
            continue
        claimed.append(letter)
    return claimed


def _producer(config: TopicConfig) -> Producer:
    try:
        return Producer(producer_options(config, ClientErrors().record))
    except KafkaException as error:
        raise ConfigurationError(
            f"librdkafka refused the producer's configuration ({reason(error)}); fix KAFKA_CONSUMER['PRODUCER_CONFIG']"
        ) from error
