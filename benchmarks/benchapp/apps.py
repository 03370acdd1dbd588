"""App configuration of the benchmark app."""

import os
from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created

#: Pragmas of the ORM benchmark's SQLite file: WAL with synchronous=NORMAL, so that a commit
#: costs a write() rather than an fsync() and the figure reflects the ORM path, not the disk.
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")


def tune_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Apply :data:`SQLITE_PRAGMAS` to every new SQLite connection."""
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)


class BenchAppConfig(AppConfig):
    """Receivers live in ``kafka_handlers.py`` and are autodiscovered, as in a real service."""

    name = "benchmarks.benchapp"
    label = "benchapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Tune SQLite connections (works on every supported Django, unlike OPTIONS['init_command'])."""
        connection_created.connect(tune_sqlite, dispatch_uid="benchapp.tune_sqlite")
        if os.environ.get("BENCH_RECEIVER") == "openedx":
            from benchmarks.benchapp import openedx_receiver  # needs openedx-events, only installed then

            openedx_receiver.connect()
