"""
``./manage.py consumer_status --topic TOPIC``: the consumer group's lag and members on one topic.

A thin adapter over :mod:`kafka_consumer_app.operations.status`: it resolves the topic's settings as
``consume_events`` does (``TOPIC_PREFIX``, the group), reads the report and prints it as an
aligned table, or as JSON with ``--json``. Errors are one line with the exit codes of
``consume_events`` (1 for a missing topic, an unreachable cluster or rejected credentials).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafka_consumer_app.composition import configure_logging
from kafka_consumer_app.exceptions import KafkaConsumerAppError
from kafka_consumer_app.operations.status import read_status, render_json, render_table
from kafka_consumer_app.settings import topics
from kafka_consumer_app.validation import group_name, one_line_usage_errors, topic_name


class Command(BaseCommand):
    """Print a consumer group's committed offsets, end offsets, lag and members for one topic."""

    help = (
        "Show where a consumer group stands on one topic: per partition the committed offset, the end offset "
        "and the lag, plus the group's state and members. Reads only; it never joins the group."
    )
    # Settings are checked below and reported on one line, as consume_events does.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the command-line options."""
        one_line_usage_errors(parser)
        parser.add_argument("--topic", required=True, type=topic_name, help="Topic, without TOPIC_PREFIX.")
        parser.add_argument(
            "--group-id", type=group_name, help="Consumer group; default: the one consume_events would use."
        )
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args: Any, **options: Any) -> None:
        """Read the report and print it; turn failures into one line and an exit code."""
        configure_logging(options["verbosity"])
        try:
            config = topics.get_topic_config(options["topic"], options.get("group_id"))
            status = read_status(config)
        except KafkaConsumerAppError as error:
            raise CommandError(str(error), returncode=error.exit_code) from error
        self.stdout.write(render_json(status) if options["json"] else render_table(status))
