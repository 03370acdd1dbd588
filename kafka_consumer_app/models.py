"""
The app's tables: where each partition's consumption stands, and what operators told the consumers.

:class:`ConsumedPosition` is for ``OFFSET_STORE = "database"``: a topic whose offsets live in the
database writes, in the same transaction as its receivers' writes, the offset of the next message to
handle in each partition (docs/decisions/0010-offsets-in-the-database.rst). :class:`ConsumerControl`
is the operator console's channel to the consumers: a topic's row says whether its consumers are
paused, and every consumer reads it every ``CONTROL_INTERVAL`` seconds
(docs/decisions/0011-pausing-from-the-admin.rst). A service creates the tables with
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
        # The admin console lists the rows' topics as the "Consumer groups" page (kafka_consumer_app/admin.py).
        verbose_name = "consumer group"
        verbose_name_plural = "consumer groups"
        permissions = [("pause_consumers", "Can pause and resume the consumers of a topic")]

    def __str__(self) -> str:
        return f"{self.topic} {'paused' if self.paused else 'running'}"
