"""
The app's tables: where each partition's consumption stands, and what operators told the consumers.

:class:`ConsumedPosition` is for ``OFFSET_STORE = "database"``: a topic whose offsets live in the
database writes, in the same transaction as its receivers' writes, the offset of the next message to
handle in each partition (docs/decisions/0010-offsets-in-the-database.rst). :class:`ConsumerControl`
is the operator console's channel to the consumers: a topic's row says whether its consumers are
paused, and every consumer reads it every ``CONTROL_INTERVAL`` seconds
(docs/decisions/0011-pausing-from-the-admin.rst). :class:`DeadLetterMark` records what an operator
did with a parked message from the console (replayed, resolved), one row per dead letter
(docs/decisions/0012-replaying-from-the-admin.rst). A service creates the tables with
``./manage.py migrate``, as for any app.
"""

from __future__ import annotations

from django.db import models


class ConsumedPosition(models.Model):
    """The next offset to handle in one partition of one topic for one consumer group."""

    group = models.CharField(max_length=255, help_text="The Kafka consumer group.")
    topic = models.CharField(max_length=249, help_text="The Kafka topic, with its prefix.")
    partition = models.IntegerField()
    #: The offset of the next message to handle; -1 until the first message of the partition is handled.
    next_offset = models.BigIntegerField(default=-1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "topic", "partition"], name="kca_position_unique")]
        verbose_name = "consumed position"

    def __str__(self) -> str:
        return f"{self.group} {self.topic}[{self.partition}] next {self.next_offset}"


class ConsumerControl(models.Model):
    """Whether the consumers of one topic are paused, who said so and when; read by every consumer of the topic."""

    topic = models.CharField(max_length=249, unique=True, help_text="The Kafka topic, with its prefix.")
    paused = models.BooleanField(default=False, help_text="Whether the topic's consumers fetch nothing.")
    changed_by = models.CharField(max_length=150, blank=True, help_text="The user who last paused or resumed.")
    changed_at = models.DateTimeField(null=True, blank=True, help_text="When the topic was last paused or resumed.")

    class Meta:
        # The admin console lists the rows' topics as the "Consumer groups" page (kafka_consumer_app/admin/groups.py).
        verbose_name = "consumer group"
        verbose_name_plural = "consumer groups"
        permissions = [("pause_consumers", "Can pause and resume the consumers of a topic")]

    def __str__(self) -> str:
        return f"{self.topic} {'paused' if self.paused else 'running'}"


class DeadLetterMark(models.Model):
    """
    What an operator did with one parked message: replayed it to its original topic, or marked it resolved.

    The unique (dead-letter topic, partition, offset) is what makes the console's Replay and Resolve
    idempotent: a row is inserted, in the transaction that produces the copy, before anything is
    produced, so a second request for the same message finds it and does nothing
    (docs/decisions/0012-replaying-from-the-admin.rst).
    """

    REPLAYED = "replayed"
    RESOLVED = "resolved"
    STATES = [(REPLAYED, "replayed"), (RESOLVED, "resolved")]

    dlq_topic = models.CharField(max_length=249, help_text="The dead-letter topic, by its Kafka name.")
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    state = models.CharField(max_length=16, choices=STATES)
    original_topic = models.CharField(max_length=249, blank=True, help_text="Where a replayed copy went.")
    changed_by = models.CharField(max_length=150, help_text="The user who replayed or resolved it.")
    changed_at = models.DateTimeField(help_text="When it was replayed or resolved.")

    class Meta:
        # The admin console lists dead letters under this model's name (kafka_consumer_app/admin/dead_letters.py).
        constraints = [
            models.UniqueConstraint(fields=["dlq_topic", "partition", "offset"], name="kca_dead_letter_unique")
        ]
        verbose_name = "dead letter"
        verbose_name_plural = "dead letters"
        permissions = [
            ("view_dead_letter_payload", "Can see the whole payload of a dead letter"),
            ("replay_dead_letters", "Can replay dead letters to their original topic"),
            ("resolve_dead_letters", "Can mark dead letters resolved"),
        ]

    def __str__(self) -> str:
        return f"{self.dlq_topic}[{self.partition}]@{self.offset} {self.state}"
