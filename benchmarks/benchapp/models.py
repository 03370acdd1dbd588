"""The one table the ORM receiver writes to."""

from django.db import models


class HandledEvent(models.Model):
    """One row per message handled by the ORM receiver: its coordinates and its payload's id."""

    partition = models.IntegerField()
    offset = models.BigIntegerField()
    event_id = models.BigIntegerField()
    kind = models.CharField(max_length=32)

    def __str__(self) -> str:
        return f"event {self.event_id} at [{self.partition}]@{self.offset}"
