"""
Health of the consume loop: the heartbeat file, and the HTTP server of probes and metrics.

:class:`Heartbeat` is a hook that touches a file after every poll (at most once a second),
so the file's age is the time since the loop last ran. ``python -m kafka_consumer_app.probe``
checks that age without starting Django.

:class:`HealthServer` is a hook that serves, from a daemon thread, while the loop runs:

``/healthz``
    200 when the loop polled within ``HEARTBEAT_MAX_AGE`` seconds, else 503 (liveness).
``/readyz``
    200 when this consumer is a member of its group with its assignment and its database
    answers, 503 otherwise (readiness; the rule is :class:`Readiness`).
``/metrics``
    The Prometheus metrics of :mod:`kafka_consumer_app.observers.metrics`.

:func:`kafka_consumer_app.composition.hooks_for` builds the hooks that the settings ask for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from kafka_consumer_app.engine.hooks import ConsumerHooks, ControlState, OutageState
from kafka_consumer_app.engine.stats import group_state
from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.settings.health import describe_bind_error

if TYPE_CHECKING:
    from kafka_consumer_app.engine.hooks import ConsumerView

logger = logging.getLogger(__name__)


class Heartbeat(ConsumerHooks):
    """
    Touches ``path`` after every poll, empty polls included, at most every ``interval`` seconds.

    While the database is unavailable the file holds one line saying so, which the probe prints; the
    loop still polls, so the file stays fresh: a restart would not bring the database back.
    """

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._touched = 0.0
        self._outage_written = False

    def before_start(self, consumer: ConsumerView) -> None:
        """Create the file's directory and touch it once: the process is starting."""
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.touch()

    def after_poll(self, consumer: ConsumerView) -> None:
        """The loop is alive: touch the file unless it was touched within ``interval``."""
        if time.monotonic() - self._touched >= self.interval:
            self.touch()

    def after_database_outage(self, consumer: ConsumerView, outage: OutageState) -> None:
        """Write when a database outage began into the file (the probe shows it), and empty it once over."""
        if outage.down == self._outage_written:
            return
        began = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=outage.seconds)
        note = f"not ready: database unavailable since {began:%Y-%m-%dT%H:%M:%SZ} ({outage.error})\n"
        try:
            with open(self.path, "w", encoding="utf-8") as file:
                file.write(note if outage.down else "")
        except OSError as error:
            logger.warning("Could not write heartbeat file %s (%s).", self.path, error)
        self._outage_written = outage.down

    def after_stop(self, consumer: ConsumerView) -> None:
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


class Readiness:
    """
    Whether the consumer is ready: a member of its group that has received its assignment.

    The rule ``/readyz`` applies:

    1. Not ready until the group's first assignment callback, whether it gave this consumer
       partitions or none (a group with more members than partitions leaves some idle:
       they are members all the same, ready to take over).
    2. Ready after it. Partitions revoked in a rebalance keep the consumer ready, as it stays
       a member; partitions *lost* (the session expired, the member was fenced) make it not
       ready until the next assignment.
    3. librdkafka's statistics, when they arrive after the latest assignment callback, have
       the last word: ready only while the group state (``cgrp.state``) is ``up`` and the
       join state (``cgrp.join_state``) is ``steady``. So a member that dropped out of its
       group without a callback turns not ready within one ``statistics.interval.ms``.
    4. Not ready while the database is unavailable (a receiver met a connection-level error
       and the consumer waits for the database), whatever the group says.
    5. Paused from the admin console, a ready consumer stays ready (it is a member, and a rollout
       must not wait for the Resume), and its reason says "paused".
    """

    def __init__(self) -> None:
        self.member = False
        self.partitions: set[int] = set()
        #: (state, join_state) from statistics newer than the latest rebalance callback, else None.
        self.group: tuple[str, str] | None = None
        #: Why the topic is taken for deleted, or None while it exists.
        self.topic_gone: str | None = None
        #: The database outage going on, or None.
        self.outage: OutageState | None = None
        self._outage_at = 0.0
        #: The admin console's pause, while it holds; else None.
        self.paused: ControlState | None = None

    def assigned(self, partitions: Sequence[int]) -> None:
        """The group assigned ``partitions`` (possibly none) to this consumer."""
        self.member = True
        self.partitions |= set(partitions)
        self.group = None

    def revoked(self, partitions: Sequence[int], lost: bool) -> None:
        """``partitions`` were revoked, or lost without a clean revoke."""
        self.partitions -= set(partitions)
        if lost:
            self.member = False
        self.group = None

    def database(self, outage: OutageState) -> None:
        """A database outage began or goes on (``outage.down``), or is over."""
        self.outage = outage if outage.down else None
        self._outage_at = time.monotonic()

    def observe(self, stats: dict[str, Any]) -> None:
        """Take the group state from librdkafka's statistics."""
        state = group_state(stats)
        if state is not None:
            self.group = state

    def check(self) -> tuple[bool, str]:
        """Return whether the consumer is ready, and a one-line reason."""
        if self.topic_gone is not None:
            return False, f"not ready: {self.topic_gone}"
        if self.outage is not None:
            now = dataclasses.replace(self.outage, seconds=self.outage.seconds + time.monotonic() - self._outage_at)
            return False, f"not ready: {now.describe()}"
        if not self.member:
            return False, "not ready: waiting for the group to assign partitions"
        if self.group is not None and self.group != ("up", "steady"):
            state, join_state = self.group
            return False, f"not ready: group state {state!r}, join state {join_state!r} (rebalancing or rejoining)"
        if self.paused is not None:
            return True, f"ready: {self.paused.describe()} (partitions {sorted(self.partitions)})"
        if self.partitions:
            return True, f"ready: consuming partitions {sorted(self.partitions)}"
        return True, "ready: member of the group with no partitions (the group has more members than partitions)"


class HealthServer(ConsumerHooks):
    """Serves /healthz, /readyz and /metrics over HTTP from a daemon thread while the loop runs."""

    wants_statistics = True

    def __init__(self, host: str, port: int, max_age: float, registry: CollectorRegistry | None = None) -> None:
        self.host = host
        self.port = port
        self.max_age = max_age
        self.registry = registry
        self.readiness = Readiness()
        self._polled_at = time.monotonic()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def before_start(self, consumer: ConsumerView) -> None:
        """Bind the port (ConfigurationError if it cannot be) and start serving."""
        self._polled_at = time.monotonic()
        try:
            server = _server_class(self.host)((self.host, self.port), _Handler)
        except OSError as error:
            raise ConfigurationError(describe_bind_error(self.host, self.port, error)) from error
        server.health = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="kafka-consumer-health", daemon=True
        )
        self._thread.start()
        logger.info("Serving /healthz, /readyz and /metrics on http://%s:%d.", self.host, self.port)

    def after_poll(self, consumer: ConsumerView) -> None:
        """The loop is alive."""
        self._polled_at = time.monotonic()

    def after_assign(self, consumer: ConsumerView, partitions: Sequence[int]) -> None:
        """Record the assignment for /readyz."""
        self.readiness.assigned(partitions)

    def after_revoke(self, consumer: ConsumerView, partitions: Sequence[int], lost: bool) -> None:
        """Record the revocation for /readyz."""
        self.readiness.revoked(partitions, lost)

    def after_topic_missing(self, consumer: ConsumerView, missing: bool) -> None:
        """A deleted topic makes the consumer not ready at once, although it serves until it exits."""
        self.readiness.topic_gone = (
            f"topic {consumer.config.kafka_topic!r} was deleted (Kafka says it does not exist); the consumer exits"
            if missing
            else None
        )

    def after_database_outage(self, consumer: ConsumerView, outage: OutageState) -> None:
        """A database outage makes the consumer not ready until it is over."""
        self.readiness.database(outage)

    def after_control(self, consumer: ConsumerView, control: ControlState) -> None:
        """An operator's pause is said by /readyz until the Resume."""
        self.readiness.paused = control if control.paused else None

    def after_stats(self, consumer: ConsumerView, stats: dict[str, Any]) -> None:
        """Record the group state for /readyz."""
        self.readiness.observe(stats)

    def after_stop(self, consumer: ConsumerView) -> None:
        """Stop serving and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def liveness(self) -> tuple[bool, str]:
        """Return whether the loop polled within ``max_age`` seconds, and a one-line reason."""
        age = time.monotonic() - self._polled_at
        if age > self.max_age:
            return False, f"unhealthy: the consume loop last polled {age:.0f}s ago (limit {self.max_age:g}s)"
        return True, f"healthy: the consume loop polled {age:.1f}s ago"


class _Server(ThreadingHTTPServer):
    health: HealthServer


class _Server6(_Server):
    address_family = socket.AF_INET6


def _server_class(host: str) -> type[_Server]:
    return _Server6 if ":" in host else _Server


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        """Answer /healthz, /readyz and /metrics; 404 for anything else."""
        path = urlsplit(self.path).path.rstrip("/")
        health = self.server.health
        if path == "/healthz":
            self._text(*health.liveness())
        elif path == "/readyz":
            self._text(*health.readiness.check())
        elif path == "/metrics" and health.registry is not None:
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, content_type, encoder(health.registry))
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz, /readyz or /metrics\n")

    def _text(self, ok: bool, text: str) -> None:
        self._send(200 if ok else 503, "text/plain; charset=utf-8", (text + "\n").encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the log: requests are logged at DEBUG only."""
        logger.debug("Health server: %s - %s", self.address_string(), format % args)
