"""
The app's one table: where each partition's consumption stands, for ``OFFSET_STORE = "database"``.

A topic whose offsets live in the database writes, in the same transaction as its receivers' writes,
the offset of the next message to handle in each partition (docs/decisions/0010-offsets-in-the-database.rst).
A service creates the table with ``./manage.py migrate``, as for any app.
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
