"""
Receivers of the example service, autodiscovered by kafka_consumer_app.

They are idempotent, as every receiver must be: delivery is at-least-once, so the same
message can arrive twice after a crash. Each write is keyed (by order id, or by the
message's coordinates), so a second delivery changes nothing.
"""

import logging

from django.dispatch import receiver

from kafka_consumer_app.signals import event_signal, topic_signal
from orders.models import AuditEntry, Order

logger = logging.getLogger(__name__)

ORDER_PLACED = "com.example.order.placed.v1"
ORDER_CANCELLED = "com.example.order.cancelled.v1"


@receiver(topic_signal("orders"))
def audit(sender, message, **kwargs):
    """Keep one audit row per message of the ``orders`` topic, whatever its type."""
    AuditEntry.objects.get_or_create(source=str(message), defaults={"event_type": message.event_type or ""})


@receiver(event_signal(ORDER_PLACED))
def record_order(sender, message, **kwargs):
    """Create or update the order a placed event describes (routed by its ce_type header)."""
    order, created = Order.objects.update_or_create(
        order_id=message.value["order_id"],
        defaults={
            "customer": message.value.get("customer", ""),
            "total_cents": message.value.get("total_cents", 0),
            "updated_from": str(message),
        },
    )
    logger.info("%s order %s from %s", "Recorded" if created else "Re-applied", order.order_id, message)


@receiver(event_signal(ORDER_CANCELLED))
def cancel_order(sender, message, **kwargs):
    """Mark an order cancelled."""
    Order.objects.filter(order_id=message.value["order_id"]).update(status="cancelled", updated_from=str(message))
    logger.info("Cancelled order %s from %s", message.value["order_id"], message)
