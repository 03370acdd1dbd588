"""What the example service's receivers write."""

from django.db import models


class Order(models.Model):
    """An order, created or updated from Kafka events. Keyed by the producer's id, so replays are idempotent."""

    order_id = models.CharField(max_length=64, unique=True)
    customer = models.CharField(max_length=128)
    total_cents = models.IntegerField(default=0)
    status = models.CharField(max_length=32, default="placed")
    updated_from = models.CharField(max_length=128, help_text="topic[partition]@offset of the last event applied")

    def __str__(self):
        return f"order {self.order_id} ({self.status})"


class AuditEntry(models.Model):
    """One row per distinct message seen on the orders topic, keyed by its coordinates."""

    source = models.CharField(max_length=128, unique=True, help_text="topic[partition]@offset")
    event_type = models.CharField(max_length=128, blank=True)

    def __str__(self):
        return f"{self.source} {self.event_type}"
