"""
What a run did and how fast: the :class:`RunSummary` of ``run()`` and the periodic progress line.

Every PROGRESS_INTERVAL the loop logs how many messages it stored since the last line, the
rate, the totals by outcome and the total lag (from librdkafka's statistics, when a hook
enabled them).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka_consumer_app.engine.hooks import ControlState, OutageState, WorkersState
from kafka_consumer_app.engine.stats import total_lag
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What one ``run()`` did, for the caller's last log line and for tests."""

    #: Messages whose offsets were stored: handled, dead-lettered or skipped.
    processed: int = 0
    handled: int = 0
    retried: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    stop_reason: str = ""


class Progress:
    """Counts stored offsets into the summary and logs the progress line; keeps librdkafka's latest statistics."""

    def __init__(self, config: TopicConfig, summary: RunSummary, emit: Callable[..., None]) -> None:
        self._config = config
        self.summary = summary
        self._emit = emit
        self._at = time.monotonic()
        self._count = 0
        #: librdkafka's latest statistics, when enabled.
        self.latest_stats: dict[str, Any] | None = None
        #: With CONCURRENCY above 1, what the workers do, for the progress line.
        self.workers_state: Callable[[], WorkersState] | None = None
        #: The database outage going on, if any, for the progress line.
        self.outage_state: Callable[[], OutageState | None] | None = None
        #: What the admin console says of the topic, for the progress line.
        self.control_state: Callable[[], ControlState] | None = None
        self._busy_seconds = 0.0

    def restart(self) -> None:
        """Start the first interval now (once subscribed), not at construction."""
        self._at = time.monotonic()

    def stored(self) -> None:
        """A message's offset was stored: it counts as processed."""
        self.summary.processed += 1
        self._count += 1

    def on_stats(self, stats_json: str) -> None:
        """librdkafka's statistics callback, served from poll()."""
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        self.latest_stats = stats
        self._emit("after_stats", stats)

    def report(self) -> None:
        """Log the progress line if PROGRESS_INTERVAL passed since the last one."""
        now = time.monotonic()
        elapsed = now - self._at
        if elapsed < self._config.progress_interval:
            return
        lag = total_lag(self.latest_stats, self._config.kafka_topic)
        summary = self.summary
        logger.info(
            "Processed %d messages of %s (group %s) in the last %.0fs (%.1f/s), %d since start "
            "(%d handled, %d dead-lettered, %d skipped, %d retries); total lag %s%s%s%s.",
            self._count,
            self._config.kafka_topic,
            self._config.group_id,
            elapsed,
            self._count / elapsed,
            summary.processed,
            summary.handled,
            summary.dead_lettered,
            summary.skipped,
            summary.retried,
            "unknown" if lag is None else lag,
            self._workers_part(elapsed),
            self._outage_part(),
            self._control_part(),
        )
        self._at = now
        self._count = 0

    def _workers_part(self, elapsed: float) -> str:
        """``; workers ...`` with CONCURRENCY above 1, their utilisation over the interval; empty otherwise."""
        if self.workers_state is None:
            return ""
        state = self.workers_state()
        busy, self._busy_seconds = state.busy_seconds - self._busy_seconds, state.busy_seconds
        return "; " + state.describe(min(1.0, busy / (state.threads * elapsed)) if elapsed > 0 else 0.0)

    def _outage_part(self) -> str:
        """``; database unavailable for ...`` while the database is out; empty otherwise."""
        state = self.outage_state() if self.outage_state is not None else None
        return "" if state is None else "; " + state.describe()

    def _control_part(self) -> str:
        """``; paused from the admin console by ...`` while an operator has the topic paused; empty otherwise."""
        state = self.control_state() if self.control_state is not None else None
        return "; " + state.describe() if state is not None and state.paused else ""

    def log_stopped(self) -> None:
        """The run's last line: what it did and why it stopped."""
        logger.info(
            "Stopped consuming %s (group %s) after %d messages (%d dead-lettered, %d skipped): %s.",
            self._config.kafka_topic,
            self._config.group_id,
            self.summary.processed,
            self.summary.dead_lettered,
            self.summary.skipped,
            self.summary.stop_reason,
        )
