"""
Receivers of the example service, autodiscovered by kafka_consumer_app.

They are idempotent, as every receiver must be: delivery is at-least-once, so the same
message can arrive twice after a crash. ``update_or_create`` keyed by the order id makes a
second delivery a no-op.
"""

import logging

from django.dispatch import receiver

from kafka_consumer_app.signals import event_signal, topic_signal
from orders.models import Order

logger = logging.getLogger(__name__)


@receiver(topic_signal("orders"))
def record_order(sender, message, **kwargs):
    """Create or update the order an ``orders`` message describes."""
    order, created = Order.objects.update_or_create(
        order_id=message.value["order_id"],
        defaults={
            "customer": message.value.get("customer", ""),
            "total_cents": message.value.get("total_cents", 0),
            "updated_from": str(message),
        },
    )
    logger.info("%s order %s from %s", "Created" if created else "Updated", order.order_id, message)


@receiver(event_signal("com.example.order.cancelled.v1"))
def cancel_order(sender, message, **kwargs):
    """Mark an order cancelled; routed by the CloudEvents ce_type header, on any topic."""
    Order.objects.filter(order_id=message.value["order_id"]).update(status="cancelled", updated_from=str(message))
    logger.info("Cancelled order %s from %s", message.value["order_id"], message)
