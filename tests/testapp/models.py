"""What the test receivers write when a test asks them to: one row per message, with no unique constraint."""

from django.db import models


class HandledRow(models.Model):
    """One row per call of a writing receiver: duplicates show up as repeated (partition, offset)."""

    topic = models.CharField(max_length=255)
    partition = models.IntegerField()
    offset = models.BigIntegerField()

    def __str__(self):
        return f"{self.topic}[{self.partition}]@{self.offset}"
