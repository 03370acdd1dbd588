"""
The composition root: build a topic's consumer and its observers from settings and options, and run it.

Every entry point goes through here (``consume_events``, and openedx-events' ``consume_events``
through :class:`~kafka_consumer_app.openedx.EventBusConsumer`), so the build-and-run sequence
is written once: resolve the topic's settings, pick the observers they ask for, build the
:class:`~kafka_consumer_app.engine.consumer.EventConsumer`, install the OS signal handlers,
run. Fatal conditions leave as :class:`~kafka_consumer_app.exceptions.KafkaConsumerAppError`;
each entry point turns them into its own kind of exit.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass

from django.db import connections

from kafka_consumer_app.engine.consumer import EventConsumer, RunOptions
from kafka_consumer_app.engine.hooks import ConsumerHooks
from kafka_consumer_app.engine.shutdown import GracefulShutdown, StopRequest
from kafka_consumer_app.observers.health import HealthServer, Heartbeat
from kafka_consumer_app.observers.logs import MessageLog
from kafka_consumer_app.observers.metrics import ConsumerMetrics
from kafka_consumer_app.observers.monitoring import Monitoring, monitoring_configured
from kafka_consumer_app.settings import topics
from kafka_consumer_app.settings.topics import TopicConfig
from kafka_consumer_app.settings.tracing import OPENTELEMETRY

#: ``--verbosity`` to the level of the app's loggers.
LOG_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def configure_logging(verbosity: int) -> None:
    """Map ``--verbosity`` to the app's log level, adding a stderr handler if logging is unconfigured."""
    app_logger = logging.getLogger("kafka_consumer_app")
    app_logger.setLevel(LOG_LEVELS.get(verbosity, logging.INFO))
    if not app_logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        app_logger.addHandler(handler)


def hooks_for(config: TopicConfig) -> list[ConsumerHooks]:
    """
    The health and observability hooks that the settings of ``config`` ask for.

    With a health port, the metrics and the HTTP server (first, so that a port already in use stops
    the start before anything else); the per-message DEBUG log when its logger logs DEBUG lines;
    OpenTelemetry spans when TRACING asks for them; APM monitoring when edx-django-utils has a
    backend; the heartbeat file unless disabled.
    """
    hooks: list[ConsumerHooks] = []
    if config.health.port:
        metrics = ConsumerMetrics(config.kafka_topic)
        hooks.append(HealthServer(config.health.host, config.health.port, config.health.max_age, metrics.registry))
        hooks.append(metrics)
    if MessageLog.enabled():
        hooks.append(MessageLog())
    if config.tracing.backend == OPENTELEMETRY:
        # Imported here: with tracing off, opentelemetry is never imported.
        from kafka_consumer_app.observers.tracing import Tracing

        hooks.append(Tracing())
    if monitoring_configured():
        hooks.append(Monitoring())
    if config.health.heartbeat_file:
        hooks.append(Heartbeat(config.health.heartbeat_file))
    return hooks


@dataclass(frozen=True)
class ConsumerSpec:
    """Which topic to consume and how, as the entry point's options say; the settings supply the rest."""

    topic: str
    group_id: str | None = None
    run: RunOptions = dataclasses.field(default_factory=RunOptions)
    #: Overrides ``HEALTH_PORT`` when set (``--health-port``).
    health_port: int | None = None
    #: True forces the topic to be an ``OPENEDX_EVENTS`` topic; None leaves it to ``TOPICS``.
    openedx_events: bool | None = None


def build_consumer(spec: ConsumerSpec, stop: StopRequest) -> EventConsumer:
    """The consumer of ``spec``'s topic with the observers its settings ask for; nothing is connected yet."""
    config = topics.get_topic_config(spec.topic, spec.group_id, openedx_events=spec.openedx_events)
    if spec.health_port is not None:
        config = dataclasses.replace(config, health=dataclasses.replace(config.health, port=spec.health_port))
    return EventConsumer(config, spec.run, stop, hooks=hooks_for(config))


def run_consumer(spec: ConsumerSpec) -> None:
    """Consume until a clean stop (SIGTERM/SIGINT or a limit); raise KafkaConsumerAppError on anything fatal."""
    stop = StopRequest()
    consumer = build_consumer(spec, stop)
    connections.close_all()  # no connection opened at startup should outlive a fork or idle time
    with GracefulShutdown(stop):
        consumer.run()


def reset_offsets(spec: ConsumerSpec) -> None:
    """Commit the one-time reset of ``spec.run.reset`` for every partition, without consuming (--reset-only)."""
    build_consumer(spec, StopRequest()).reset_only()
