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

from kafka_consumer_app import conf
from kafka_consumer_app.conf import FailureConfig, TopicConfig
from kafka_consumer_app.exceptions import ConfigurationError, KafkaConsumerAppError
from kafka_consumer_app.management.commands.consume_events import configure_logging, positive_int
from kafka_consumer_app.replay import DeadLetterReplayer, ReplayOptions


class Command(BaseCommand):
    """Republish the messages of a dead-letter topic to the topics they failed on."""

    help = (
        "Republish the messages parked in a dead-letter topic, keeping key, value and headers; each is "
        "committed only after its delivery is confirmed."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the command-line options."""
        parser.add_argument("--topic", required=True, help="The dead-letter topic, by its full Kafka name.")
        parser.add_argument("--to", dest="to_topic", help="Republish here instead of each message's original topic.")
        parser.add_argument("--max-messages", type=positive_int, help="Replay at most this many messages.")
        parser.add_argument("--dry-run", action="store_true", help="List what would be replayed; write nothing.")
        parser.add_argument("--group-id", help="Group that keeps the replay's progress (default: <topic>-replay).")

    def handle(self, *args: Any, **options: Any) -> None:
        """Validate settings, replay, and report how many messages were republished."""
        configure_logging(options["verbosity"])
        try:
            found = conf.problems()
            if found:
                raise ConfigurationError(found[0].one_line())
            topic = options["topic"]
            top = conf.raw_settings()
            config = TopicConfig(
                topic=topic,
                kafka_topic=topic,
                group_id=options.get("group_id") or f"{topic}-replay",
                bootstrap_servers=conf.bootstrap_servers() or "",
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
