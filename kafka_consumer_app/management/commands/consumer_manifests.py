"""
``./manage.py consumer_manifests --image IMAGE``: render the Kubernetes manifests of the consumers.

A thin adapter over :mod:`kafka_consumer_app.manifests`: YAML on stdout, or files and a
kustomization.yaml in ``--output DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafka_consumer_app import manifests
from kafka_consumer_app.validation import first_problem, non_empty_text, one_line_usage_errors, path_problem, topic_name


class Command(BaseCommand):
    """Render a Deployment, a PodDisruptionBudget and optionally a KEDA ScaledObject per topic."""

    help = (
        "Render the Kubernetes manifests of the consumers from KAFKA_CONSUMER: per topic a Deployment running "
        "consume_events, a PodDisruptionBudget and (with KEDA) a ScaledObject; a shared ConfigMap and KEDA "
        "TriggerAuthentication. Prints YAML, or writes files and a kustomization.yaml with --output."
    )
    # Settings problems are reported on one line below, as consume_events does.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the command-line options."""
        one_line_usage_errors(parser)
        parser.add_argument(
            "--image",
            required=True,
            type=non_empty_text("an image reference such as 'registry/service:1.2.3'"),
            help="The service's container image, e.g. registry/app:1.2.3.",
        )
        parser.add_argument(
            "--topic",
            action="append",
            default=[],
            dest="topics",
            type=topic_name,
            help="A topic to render (repeatable). Default: every topic of KAFKA_CONSUMER['TOPICS'].",
        )
        parser.add_argument(
            "--namespace",
            type=non_empty_text("a namespace name"),
            help="Namespace of every object; overrides MANIFESTS['NAMESPACE'].",
        )
        parser.add_argument(
            "--keda", action="store_true", help="Scale every topic rendered with KEDA, as if each had KEDA: True."
        )
        parser.add_argument(
            "--output",
            metavar="DIR",
            type=non_empty_text("a directory"),
            help="Write one file per topic, a shared file and kustomization.yaml into DIR instead of printing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Render, then print or write."""
        try:
            problem = first_problem({"--output": (options.get("output"), path_problem)})
            if problem:
                raise manifests.ManifestError(problem)
            files = manifests.render(
                options["image"], options["topics"], namespace=options.get("namespace"), keda=options["keda"]
            )
        except manifests.ManifestError as error:
            raise CommandError(str(error), returncode=error.exit_code) from error
        if not options.get("output"):
            self.stdout.write(manifests.stream(files), ending="")
            return
        try:
            written = manifests.write(files, Path(options["output"]))
        except OSError as error:  # a name too long, no permission, a file where a directory should be...
            raise CommandError(
                f"cannot write the manifests into --output {options['output']!r} ({error.strerror or error}); "
                "choose a directory this user can create and write",
                returncode=1,
            ) from error
        for path in written:
            self.stdout.write(f"Wrote {path}")
