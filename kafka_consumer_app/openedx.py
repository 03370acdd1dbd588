"""
Open edX interop, the public side: the ``EVENT_BUS_CONSUMER`` plug and the event type receivers get.

openedx-events' own ``consume_events`` command runs this app's consumer when
``EVENT_BUS_CONSUMER = "kafka_consumer_app.openedx.EventBusConsumer"``. How Open edX messages
are decoded and sent to their ``OpenEdxPublicSignal`` is described in
:mod:`kafka_consumer_app.engine.openedx`; receivers get an :class:`OpenEdxEvent` as
``message.value``.
"""

from __future__ import annotations

import logging

from openedx_events.event_bus import EventBusConsumer as OpenEdxEventBusConsumer
from openedx_events.tooling import OpenEdxPublicSignal

from kafka_consumer_app.composition import ConsumerSpec, configure_logging, run_consumer
from kafka_consumer_app.engine.consumer import RunOptions
from kafka_consumer_app.engine.offsets import OffsetReset, parse_offset_time
from kafka_consumer_app.engine.openedx import OpenEdxEvent
from kafka_consumer_app.exceptions import KafkaConsumerAppError

__all__ = ["EventBusConsumer", "OpenEdxEvent"]

logger = logging.getLogger(__name__)


class EventBusConsumer(OpenEdxEventBusConsumer):
    """
    openedx-events' ``EVENT_BUS_CONSUMER`` plug, running this app's consumer.

    With ``EVENT_BUS_CONSUMER = "kafka_consumer_app.openedx.EventBusConsumer"``, openedx-events'
    ``consume_events -t TOPIC -g GROUP [--extra JSON]`` consumes TOPIC with this app's engine
    and settings (``KAFKA_CONSUMER``; the topic is an ``OPENEDX_EVENTS`` topic whatever its
    ``TOPICS`` entry says). ``--extra`` keys: ``offset_time`` (as ``--offset-time``: rewind once,
    then consume), ``max_messages`` and ``idle_timeout`` (finite runs, as the options of the same
    names). ``signal``, which older openedx-events passed, is accepted and ignored: the signal
    of each message is its ``ce_type``'s.

    A fatal error is logged on one line and ends the process with this app's exit code
    (openedx-events' command would otherwise log it and exit 0, hiding the failure from Kubernetes).
    """

    def __init__(
        self,
        topic: str,
        group_id: str,
        signal: OpenEdxPublicSignal | None = None,
        offset_time: str | None = None,
        max_messages: int | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self.offset_time = offset_time
        self.max_messages = max_messages
        self.idle_timeout = idle_timeout

    def consume_indefinitely(self) -> None:
        """Consume until stopped (SIGTERM, or the finite mode's limit); exit non-zero on a fatal error."""
        configure_logging(1)
        try:
            run_consumer(
                ConsumerSpec(
                    topic=self.topic,
                    group_id=self.group_id or None,
                    run=RunOptions(
                        max_messages=self.max_messages,
                        idle_timeout=self.idle_timeout,
                        reset=OffsetReset(parse_offset_time(str(self.offset_time))) if self.offset_time else None,
                    ),
                    openedx_events=True,
                )
            )
        except KafkaConsumerAppError as error:
            logger.error("%s", error)
            raise SystemExit(error.exit_code) from error
