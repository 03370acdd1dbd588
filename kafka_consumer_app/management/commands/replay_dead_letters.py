"""
``./manage.py replay_dead_letters --topic <dead-letter topic>``: republish parked messages.

Each message goes back to the topic named in its ``dlt.original.topic`` header (or to
``--to``) with its original key, value and headers, and its dead-letter offset is
committed only after the broker confirmed the copy. The replay's progress is kept in its
own consumer group, so running it again does not republish what was already replayed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafka_consumer_app.composition import configure_logging
from kafka_consumer_app.exceptions import ConfigurationError, KafkaConsumerAppError
from kafka_consumer_app.operations.replay import DeadLetterReplayer, ReplayOptions
from kafka_consumer_app.settings import base, connection, topics
from kafka_consumer_app.settings.failures import FailureConfig
from kafka_consumer_app.settings.topics import TopicConfig
from kafka_consumer_app.validation import (
    first_problem,
    group_id_problem,
    group_name,
    one_line_usage_errors,
    positive_int,
    positive_int_problem,
    topic_name,
    topic_name_problem,
)


class Command(BaseCommand):
    """Republish the messages of a dead-letter topic to the topics they failed on."""

    help = (
        "Republish the messages parked in a dead-letter topic, keeping key, value and headers; each is "
        "committed only after its delivery is confirmed."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the command-line options."""
        one_line_usage_errors(parser)
        parser.add_argument(
            "--topic", required=True, type=topic_name, help="The dead-letter topic, by its full Kafka name."
        )
        parser.add_argument(
            "--to", dest="to_topic", type=topic_name, help="Republish here instead of each message's original topic."
        )
        parser.add_argument("--max-messages", type=positive_int, help="Replay at most this many messages.")
        parser.add_argument("--dry-run", action="store_true", help="List what would be replayed; write nothing.")
        parser.add_argument(
            "--group-id", type=group_name, help="Group that keeps the replay's progress (default: <topic>-replay)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Validate settings, replay, and report how many messages were republished."""
        configure_logging(options["verbosity"])
        try:
            problem = replay_option_problem(options)
            if problem:
                raise ConfigurationError(problem)
            found = topics.problems()
            if found:
                raise ConfigurationError(found[0].one_line())
            topic = options["topic"]
            top = base.raw_settings()
            config = TopicConfig(
                topic=topic,
                kafka_topic=topic,
                group_id=replay_group(options),
                bootstrap_servers=connection.bootstrap_servers() or "",
                connect_timeout=float(top.get("CONNECT_TIMEOUT", 30.0)),
                consumer_config=dict(top.get("CONSUMER_CONFIG") or {}),
                failure=FailureConfig(producer_config=dict(top.get("PRODUCER_CONFIG") or {})),
            )
            replay_options = ReplayOptions(
                to_topic=options.get("to_topic"), max_messages=options.get("max_messages"), dry_run=options["dry_run"]
            )
            summary = DeadLetterReplayer(config, replay_options, echo=self.stdout.write).run()
        except KafkaConsumerAppError as error:
            raise CommandError(str(error), returncode=error.exit_code) from error
        verb = "Would replay" if summary.dry_run else "Replayed"
        self.stdout.write(f"{verb} {summary.replayed} message(s) from {topic}.")


def replay_group(options: dict[str, Any]) -> str:
    """The group keeping the replay's progress: --group-id, else ``<topic>-replay``."""
    group = options.get("group_id")
    return f"{options['topic']}-replay" if group is None else group


def replay_option_problem(options: dict[str, Any]) -> str | None:
    """The first invalid option, as one line; call_command() keywords skip argparse, so all are re-checked."""
    problem = first_problem(
        {
            "--topic": (options.get("topic"), topic_name_problem),
            "--to": (options.get("to_topic"), topic_name_problem),
            "--max-messages": (options.get("max_messages"), positive_int_problem),
            "--group-id": (options.get("group_id"), group_id_problem),
        }
    )
    default_problem = group_id_problem(replay_group(options)) if problem is None else None
    if default_problem:
        # A 249-character topic makes a default group one too long: say which option fixes it.
        problem = f"--group-id (default: <topic>-replay) {default_problem}: pass a shorter --group-id"
    return problem
