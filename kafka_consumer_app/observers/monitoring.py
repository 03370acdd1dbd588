"""
APM monitoring (New Relic, Datadog, OpenTelemetry) through edx-django-utils.

:class:`Monitoring` wraps the dispatch of every message in
``edx_django_utils.monitoring.function_trace`` and, inside that trace, sets these custom
attributes with ``set_custom_attribute``: ``kafka_topic``, ``kafka_partition``,
``kafka_offset``, ``kafka_event_type`` (the ``ce_type`` header) and ``kafka_message_id``
(the ``ce_id`` header), the last two only when the message has them. Never the key or the
value, which may hold personal data.

edx-django-utils sends them to the backends listed in ``settings.OPENEDX_TELEMETRY``
(default: New Relic, when its agent is installed). :func:`monitoring_configured` tells
whether there is any, so the hook is only installed where it can report something.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from django.conf import settings
from edx_django_utils.monitoring import function_trace, set_custom_attribute

from kafka_consumer_app.engine.hooks import ConsumerHooks

try:  # the New Relic agent is optional; edx-django-utils reports to it when it is installed
    import newrelic.agent as newrelic_agent
except ImportError:
    newrelic_agent = None

if TYPE_CHECKING:
    from kafka_consumer_app.engine.hooks import ConsumerView
    from kafka_consumer_app.message import Message

#: The CloudEvents (Kafka binding) header carrying the event's id.
MESSAGE_ID_HEADER = "ce_id"
#: The trace (span) around each message's receivers. function_trace's operation_name argument is left
#: out: it is recent, and base.in accepts edx-django-utils from 5.0.
TRACE_NAME = "kafka_consumer_app.dispatch"


def message_attributes(message: Message) -> dict[str, Any]:
    """The custom attributes of ``message``: its coordinates, event type and CloudEvents id when present."""
    attributes: dict[str, Any] = {
        "kafka_topic": message.topic,
        "kafka_partition": message.partition,
        "kafka_offset": message.offset,
    }
    if message.event_type:
        attributes["kafka_event_type"] = message.event_type
    message_id = message.header(MESSAGE_ID_HEADER)
    if message_id is not None:
        with suppress(UnicodeDecodeError):
            attributes["kafka_message_id"] = message_id.decode("utf-8")
    return attributes


def monitoring_configured() -> bool:
    """
    Whether edx-django-utils has a telemetry backend to report to.

    True when ``settings.OPENEDX_TELEMETRY`` lists backends, or, when it is unset, when the
    New Relic agent (edx-django-utils' default backend) is installed. Without either, every
    call would be a no-op, and edx-django-utils would warn that New Relic is missing.
    """
    backends = getattr(settings, "OPENEDX_TELEMETRY", None)
    if backends is None:
        return importlib.util.find_spec("newrelic") is not None
    return bool(backends)


class Monitoring(ConsumerHooks):
    """Traces the receivers of each message and tags the trace with the message's coordinates."""

    @contextmanager
    def dispatching(self, consumer: ConsumerView, message: Message) -> Iterator[None]:
        """Open a transaction and a trace, then set the attributes on them."""
        with _transaction(f"kafka_consumer_app.consume:{message.topic}"), function_trace(TRACE_NAME):
            for key, value in message_attributes(message).items():
                set_custom_attribute(key, value)
            yield


@contextmanager
def _transaction(name: str) -> Iterator[None]:
    """
    A New Relic background transaction around one message, when the agent is installed.

    New Relic records traces and attributes only inside a transaction, and nothing opens one
    in a management command; edx-django-utils' ``background_task`` is a decorator for the
    same purpose, used here as the context manager the agent also provides. Other backends
    (Datadog, OpenTelemetry) open a root span for the trace by themselves.
    """
    if newrelic_agent is None:
        yield
        return
    with newrelic_agent.BackgroundTask(newrelic_agent.application(), name=name, group="Message/Kafka"):
        yield
