"""
The liveness probe: is the consume loop's heartbeat file fresh?

It imports nothing of Django, and of this package only :mod:`kafka_consumer_app.heartbeat` and the
standard-library validators of :mod:`kafka_consumer_app.validation`, so it starts in tens of
milliseconds and works even when the app's settings are broken::

    python -m kafka_consumer_app.probe --topic orders --max-age 60
    python -m kafka_consumer_app.probe --file /tmp/kafka-consumer-orders.heartbeat

Exit 0 when the file was touched within ``--max-age`` seconds; exit 1, with one line
saying why, when it is older or missing. The loop touches the file after every poll,
empty polls included, at most once a second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from kafka_consumer_app.heartbeat import default_heartbeat_file
from kafka_consumer_app.validation import non_empty_text, one_line_usage_errors, positive_seconds, topic_name

DEFAULT_MAX_AGE = 60.0


def heartbeat_age(path: str, now: float | None = None) -> float | None:
    """Seconds since ``path`` was last touched, or None when it does not exist."""
    try:
        modified = os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - modified


def main(argv: list[str] | None = None) -> int:
    """Check the heartbeat; return the exit code."""
    parser = one_line_usage_errors(
        argparse.ArgumentParser(prog="python -m kafka_consumer_app.probe", description=__doc__.split("\n\n")[0])
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--file", type=non_empty_text("a file path"), help="The heartbeat file (HEARTBEAT_FILE).")
    where.add_argument("--topic", type=topic_name, help="The topic, when HEARTBEAT_FILE is left at its default.")
    # Not type=float: a NaN limit would make every age "healthy", an infinite one too.
    parser.add_argument(
        "--max-age", type=positive_seconds, default=DEFAULT_MAX_AGE, help="Oldest acceptable age, in seconds."
    )
    args = parser.parse_args(argv)
    path = args.file or default_heartbeat_file(args.topic)
    age = heartbeat_age(path)
    if age is None:
        print(f"unhealthy: heartbeat file {path} does not exist; the consume loop has not started", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"unhealthy: the consume loop last polled {age:.0f}s ago (limit {args.max_age:g}s)", file=sys.stderr)
        return 1
    # The loop writes a database outage into the file: alive all the same (a restart would not help).
    print(f"healthy: the consume loop polled {age:.1f}s ago{heartbeat_note(path)}")
    return 0


def heartbeat_note(path: str) -> str:
    """``; <the file's first line>`` when the loop wrote one (a database outage), else empty."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            line = file.readline(500).strip()
    except OSError:
        return ""
    return f"; {line}" if line else ""


if __name__ == "__main__":
    sys.exit(main())
