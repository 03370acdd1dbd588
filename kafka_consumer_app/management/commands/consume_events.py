"""
``./manage.py consume_events --topic TOPIC``: consume one topic until stopped.

A thin adapter: it parses options, maps ``--verbosity`` to a log level, and hands a
:class:`~kafka_consumer_app.composition.ConsumerSpec` to the composition root, which builds
the consumer and runs it. Exit codes are listed in :mod:`kafka_consumer_app.exceptions` and
in docs/reference/commands.rst.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafka_consumer_app.composition import ConsumerSpec, configure_logging, reset_offsets, run_consumer
from kafka_consumer_app.engine.consumer import RunOptions
from kafka_consumer_app.engine.offsets import OffsetReset, parse_offset_time
from kafka_consumer_app.exceptions import ConfigurationError, KafkaConsumerAppError
from kafka_consumer_app.validation import (
    first_problem,
    group_id_problem,
    group_name,
    one_line_usage_errors,
    port_number,
    port_problem,
    positive_int,
    positive_seconds,
    text_problem,
    topic_name,
    topic_name_problem,
)

__all__ = ["Command", "offset_time", "port_number", "positive_int", "positive_seconds"]


def offset_time(text: str) -> str:
    """argparse type: an ISO 8601 time, kept as given (an empty one, e.g. an unset variable, is refused)."""
    problem = offset_time_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def offset_time_problem(value: Any) -> str | None:
    """Why ``value`` is not an ISO 8601 time to rewind to, or None."""
    problem = text_problem(value, "an ISO 8601 time such as 2026-11-27T09:30:00Z")
    if problem:
        return problem
    try:
        parse_offset_time(value)
    except ConfigurationError:
        return f"{value!r} is not an ISO 8601 time; write e.g. 2026-11-27T09:30:00Z"
    return None


def option_problem(options: dict[str, Any]) -> str | None:
    """The first invalid option value, as one line; call_command() keywords skip argparse, so all are re-checked."""
    return first_problem(
        {
            "--topic": (options.get("topic"), topic_name_problem),
            "--group-id": (options.get("group_id"), group_id_problem),
            "--offset-time": (options.get("offset_time"), offset_time_problem),
            "--health-port": (options.get("health_port"), port_problem),
        }
    )


class Command(BaseCommand):
    """Consume one Kafka topic and send each message to its Django signal receivers."""

    help = (
        "Consume one Kafka topic and send each message to the receivers of topic_signal(TOPIC) and "
        "event_signal(ce_type). Exits 0 on SIGTERM/SIGINT or when a limit is reached, non-zero on errors."
    )
    # The settings are checked below, on one line; Django's multi-line check report is for `manage.py check`.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the command-line options."""
        one_line_usage_errors(parser)
        # -t, -g/--group_id and --extra are the options of openedx-events' own consume_events, accepted as aliases.
        parser.add_argument(
            "-t", "--topic", required=True, type=topic_name, help="Topic to consume, without TOPIC_PREFIX."
        )
        parser.add_argument(
            "-g",
            "--group-id",
            "--group_id",
            dest="group_id",
            type=group_name,
            help="Consumer group; overrides the settings.",
        )
        parser.add_argument(
            "--extra",
            type=open_edx_extra,
            metavar="JSON",
            help="openedx-events' option: a JSON object; its offset_time is --offset-time.",
        )
        add_limit_arguments(parser)
        add_replay_arguments(parser)
        parser.add_argument(
            "--allow-no-handlers",
            action="store_true",
            help="Start even when no receiver is connected (messages are then committed unhandled).",
        )
        parser.add_argument(
            "--health-port",
            type=port_number,
            metavar="PORT",
            help="Serve /healthz, /readyz and /metrics on this port; overrides KAFKA_CONSUMER['HEALTH_PORT'].",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the topic's consumer until a clean stop; turn fatal errors into one line."""
        configure_logging(options["verbosity"])
        apply_open_edx_options(options)
        try:
            problem = option_problem(options)
            if problem:
                raise ConfigurationError(problem)
            spec = ConsumerSpec(
                topic=options["topic"],
                group_id=options.get("group_id"),
                run=RunOptions(
                    max_messages=options.get("max_messages"),
                    idle_timeout=options.get("idle_timeout"),
                    allow_no_handlers=options["allow_no_handlers"],
                    reset=offset_reset(options),
                ),
                health_port=options.get("health_port"),
            )
            if options["reset_only"]:
                reset_offsets(spec)
            else:
                run_consumer(spec)
        except KafkaConsumerAppError as error:
            raise CommandError(str(error), returncode=error.exit_code) from error


def add_limit_arguments(parser: CommandParser) -> None:
    """The finite mode: stop cleanly after N messages or an idle time."""
    parser.add_argument("--max-messages", type=positive_int, help="Stop cleanly after handling this many messages.")
    parser.add_argument(
        "--idle-timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="Stop cleanly when no message arrived for this many seconds.",
    )


def add_replay_arguments(parser: CommandParser) -> None:
    """The one-time rewind of the group, and --reset-only to apply it without consuming."""
    replay = parser.add_mutually_exclusive_group()
    replay.add_argument(
        "--from-beginning",
        action="store_true",
        help="Rewind the group to the beginning of the topic once, at the first assignment, then consume.",
    )
    replay.add_argument(
        "--offset-time",
        type=offset_time,
        metavar="ISO8601",
        help="Rewind the group once to the first message at or after this time (UTC if no zone), then consume.",
    )
    parser.add_argument(
        "--reset-only",
        action="store_true",
        help="Apply --from-beginning or --offset-time for every partition and exit (stop the group first).",
    )


def offset_reset(options: dict[str, Any]) -> OffsetReset | None:
    """The one-time reset the options ask for, or None; --reset-only needs one."""
    reset = None
    if options.get("from_beginning"):
        reset = OffsetReset()
    elif options.get("offset_time") is not None:
        reset = OffsetReset(parse_offset_time(options["offset_time"]))
    if options.get("reset_only") and reset is None:
        raise ConfigurationError("--reset-only needs --from-beginning or --offset-time to say where to reset to")
    return reset


#: The keys of openedx-events' ``--extra`` JSON that this command understands (edx-event-bus-kafka's).
OPEN_EDX_EXTRA_KEYS = ("offset_time",)


def open_edx_extra(text: str) -> dict[str, Any]:
    """argparse type: the ``--extra`` JSON object of openedx-events' consume_events, with known keys only."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, not {text!r}")
    unknown = sorted(set(value) - set(OPEN_EDX_EXTRA_KEYS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"has key(s) {', '.join(unknown)} that this consumer does not understand; "
            f"it takes {', '.join(OPEN_EDX_EXTRA_KEYS)} (as --offset-time)"
        )
    return value


def apply_open_edx_options(options: dict[str, Any]) -> None:
    """
    Map openedx-events' calling conventions onto this command's options, in place.

    ``--extra '{"offset_time": ...}'`` becomes ``--offset-time``; ``topic`` and ``group_id``
    given as one-element lists (``nargs=1``, as openedx-events declares them, e.g. through
    ``call_command``) become strings.
    """
    for key in ("topic", "group_id"):
        if isinstance(options.get(key), (list, tuple)) and len(options[key]) == 1:
            options[key] = options[key][0]
    extra = options.get("extra") or {}
    if isinstance(extra, str):  # call_command(extra="...") skips argparse's type conversion
        try:
            extra = open_edx_extra(extra)
        except argparse.ArgumentTypeError as error:
            raise CommandError(f"--extra {error}", returncode=2) from error
    if "offset_time" not in extra:
        return
    if options.get("offset_time") is not None or options.get("from_beginning"):
        raise CommandError(
            "--extra offset_time is --offset-time: give only one of --extra offset_time, --offset-time and "
            "--from-beginning",
            returncode=2,
        )
    problem = offset_time_problem(extra["offset_time"])
    if problem:  # not str()'d: a number or null here is a mistake, not a time
        raise CommandError(f"--extra offset_time {problem}", returncode=2)
    options["offset_time"] = extra["offset_time"]
