"""
Health of the consume loop: the heartbeat file that the liveness probe reads.

:class:`Heartbeat` is a hook that touches a file after every poll (at most once a second),
so the file's age is the time since the loop last ran. ``python -m kafka_consumer_app.probe``
checks that age without starting Django.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

from kafka_consumer_app.hooks import ConsumerHooks

if TYPE_CHECKING:
    from kafka_consumer_app.conf import TopicConfig
    from kafka_consumer_app.consumer import EventConsumer

logger = logging.getLogger(__name__)


class Heartbeat(ConsumerHooks):
    """Touches ``path`` after every poll, empty polls included, at most every ``interval`` seconds."""

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._touched = 0.0

    def before_start(self, consumer: EventConsumer) -> None:
        """Create the file's directory and touch it once: the process is starting."""
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.touch()

    def after_poll(self, consumer: EventConsumer) -> None:
        """The loop is alive: touch the file unless it was touched within ``interval``."""
        if time.monotonic() - self._touched >= self.interval:
            self.touch()

    def after_stop(self, consumer: EventConsumer) -> None:
        """Remove the file: a stopped loop is not alive."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def touch(self) -> None:
        """Set the file's modification time to now, creating it if needed."""
        try:
            with open(self.path, "a", encoding="utf-8"):
                pass
            os.utime(self.path)
        except OSError as error:
            logger.warning("Could not touch heartbeat file %s (%s); the liveness probe will fail.", self.path, error)
        self._touched = time.monotonic()


def hooks_for(config: TopicConfig) -> list[ConsumerHooks]:
    """The health and observability hooks that the settings of ``config`` ask for."""
    hooks: list[ConsumerHooks] = []
    if config.health.heartbeat_file:
        hooks.append(Heartbeat(config.health.heartbeat_file))
    return hooks
