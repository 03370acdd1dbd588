"""
What a measured process records about the messages it handles, written to one JSON file.

The same :class:`Recorder` runs on both sides of every comparison: in the benchmark receivers
inside ``consume_events`` and in the hand-written reference loop, so both are timed by the very
same code at the same point (after decoding, before ``store_offsets``). It imports neither
Django nor confluent-kafka.

Timestamps come from :func:`time.monotonic_ns`, which on Linux reads ``CLOCK_MONOTONIC``, one
clock for every process on the machine, so the orchestrator can compare them with its own
(for the startup time). With an expected count, the process's CPU time
(:func:`time.process_time_ns`: every thread, librdkafka's included) is also read at the first
and at the expected message, so that CPU per message covers the same window as the rate. The
orchestrator passes the options in ``BENCH_*`` environment variables.

Receivers that run in several worker threads at once (``CONCURRENCY`` above 1) need a
:class:`LockedRecorder` (``RecorderOptions(locked=True)``): ``count += 1`` is not atomic.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_RESULT_FILE = "BENCH_RESULT_FILE"
ENV_EXPECTED = "BENCH_EXPECTED"
ENV_RSS_AT = "BENCH_RSS_AT"
ENV_KEEP_TIMES = "BENCH_KEEP_TIMES"
ENV_LOCKED = "BENCH_RECORDER_LOCKED"

#: Suffix of the empty file written when the first message was handled.
STARTED_SUFFIX = ".started"


@dataclass(frozen=True)
class RecorderOptions:
    """Where to write the results, and what to record besides the count and the first/last time."""

    result_path: Path | None = None
    #: Write the results as soon as this many measured messages were handled (and again at exit).
    expected: int | None = None
    #: Message counts at which to sample the process's resident set size.
    rss_at: frozenset[int] = field(default_factory=frozenset)
    #: Keep the time of every handled message (for windowed rates; costs 8 bytes a message).
    keep_times: bool = False
    #: Serialize every call with a lock, for receivers running in several threads at once.
    locked: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RecorderOptions:
        """Read the options the orchestrator put in the environment."""
        path = environ.get(ENV_RESULT_FILE)
        expected = environ.get(ENV_EXPECTED)
        rss_at = environ.get(ENV_RSS_AT, "")
        return cls(
            result_path=Path(path) if path else None,
            expected=int(expected) if expected else None,
            rss_at=frozenset(int(item) for item in rss_at.split(",") if item),
            keep_times=environ.get(ENV_KEEP_TIMES) == "1",
            locked=environ.get(ENV_LOCKED) == "1",
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that make :meth:`from_env` return these options."""
        env = {ENV_KEEP_TIMES: "1" if self.keep_times else "0", ENV_LOCKED: "1" if self.locked else "0"}
        if self.result_path is not None:
            env[ENV_RESULT_FILE] = str(self.result_path)
        if self.expected is not None:
            env[ENV_EXPECTED] = str(self.expected)
        if self.rss_at:
            env[ENV_RSS_AT] = ",".join(str(count) for count in sorted(self.rss_at))
        return env


def started_marker(result_path: Path) -> Path:
    """The file that exists once the process handled its first message."""
    return result_path.with_name(result_path.name + STARTED_SUFFIX)


class Recorder:
    """
    Counts handled messages and times the first and the last one; optionally more.

    ``record()`` is called once per handled message and is kept to a few attribute updates,
    since it runs inside the measured loop.
    """

    def __init__(self, options: RecorderOptions) -> None:
        self.options = options
        self.created_ns = time.monotonic_ns()
        self.count = 0
        self.warmups = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        #: Messages counted at ``first_ns`` (1, or the first batch's size): the rate's window starts after them.
        self.first_count = 0
        #: The process's CPU time (every thread) at the first message and when the expected count was reached.
        self.cpu_first_ns: int | None = None
        self.cpu_last_ns: int | None = None
        self.latencies_ns: list[int] = []
        self.from_broker_ns: list[int] = []
        self.times_ns: list[int] = []
        self.rss: dict[int, int] = {}
        #: When each RSS sample was read (``time.monotonic_ns()``), by message count.
        self.rss_ns: dict[int, int] = {}
        self._expected = options.expected
        self._rss_at = options.rss_at
        self._keep_times = options.keep_times
        self._process = _current_process() if options.rss_at else None
        if options.result_path is not None:
            atexit.register(self.write)

    @classmethod
    def from_env(cls) -> Recorder:
        """A recorder configured by the ``BENCH_*`` environment variables (a :class:`LockedRecorder` if locked)."""
        options = RecorderOptions.from_env()
        return LockedRecorder(options) if options.locked else cls(options)

    def record(self) -> None:
        """Note that one more measured message was handled, now."""
        now = time.monotonic_ns()
        self.count += 1
        if self.first_ns is None:
            self._first(now)
        self.last_ns = now
        if self._keep_times:
            self.times_ns.append(now)
        if self._process is not None and self.count in self._rss_at:
            self.rss[self.count] = self._process.memory_info().rss
            self.rss_ns[self.count] = now
        if self.count == self._expected:
            self._last()

    def record_many(self, count: int) -> None:
        """Note that ``count`` more measured messages were handled, now (a batch receiver)."""
        now = time.monotonic_ns()
        before = self.count
        self.count += count
        if self.first_ns is None:
            self._first(now)
        self.last_ns = now
        if self._expected is not None and before < self._expected <= self.count:
            self._last()

    def _first(self, now: int) -> None:
        self.first_ns = now
        self.first_count = self.count
        self.cpu_first_ns = time.process_time_ns()
        self._mark_started()

    def _last(self) -> None:
        self.cpu_last_ns = time.process_time_ns()
        self.write()

    def record_latency(self, latency_ns: int, from_broker_ns: int) -> None:
        """Record one measured message: its produce-to-receiver and its broker-append-to-receiver latency."""
        self.latencies_ns.append(latency_ns)
        self.from_broker_ns.append(from_broker_ns)
        self.record()

    def record_warmup(self) -> None:
        """Note a warm-up message: it marks the process as started but is not measured."""
        self.warmups += 1
        if self.warmups == 1 and self.first_ns is None:
            self._mark_started()

    def as_dict(self) -> dict[str, Any]:
        """Everything recorded so far, JSON-serializable."""
        return {
            "pid": os.getpid(),
            "count": self.count,
            "warmups": self.warmups,
            "created_ns": self.created_ns,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "first_count": self.first_count,
            "cpu_first_ns": self.cpu_first_ns,
            "cpu_last_ns": self.cpu_last_ns,
            "rss": {str(count): value for count, value in sorted(self.rss.items())},
            "rss_ns": {str(count): value for count, value in sorted(self.rss_ns.items())},
            "latencies_ns": self.latencies_ns,
            "from_broker_ns": self.from_broker_ns,
            "times_ns": self.times_ns,
        }

    def write(self) -> None:
        """Write the results atomically (so a reader never sees half a file); a no-op without a path."""
        path = self.options.result_path
        if path is None:
            return
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(self.as_dict()), encoding="utf-8")
        os.replace(temporary, path)

    def _mark_started(self) -> None:
        if self.options.result_path is not None:
            started_marker(self.options.result_path).touch()


class LockedRecorder(Recorder):
    """A :class:`Recorder` whose calls hold one lock: for receivers that run in several threads at once."""

    def __init__(self, options: RecorderOptions) -> None:
        self._lock = threading.RLock()  # reentrant: record() writes the results at the expected count
        super().__init__(options)

    def record(self) -> None:
        """Note that one more measured message was handled, now (one thread at a time)."""
        with self._lock:
            super().record()

    def record_latency(self, latency_ns: int, from_broker_ns: int) -> None:
        """As :meth:`Recorder.record_latency`, one thread at a time."""
        with self._lock:
            super().record_latency(latency_ns, from_broker_ns)

    def record_warmup(self) -> None:
        """As :meth:`Recorder.record_warmup`, one thread at a time."""
        with self._lock:
            super().record_warmup()

    def record_many(self, count: int) -> None:
        """As :meth:`Recorder.record_many`, one thread at a time."""
        with self._lock:
            super().record_many(count)

    def write(self) -> None:
        """Write the results, with no thread recording meanwhile."""
        with self._lock:
            super().write()


def _current_process() -> Any:
    import psutil  # only the memory benchmark needs it, so other runs do not import it

    return psutil.Process()


def read_result(path: Path) -> dict[str, Any]:
    """Load what a recorder wrote."""
    return json.loads(path.read_text(encoding="utf-8"))
