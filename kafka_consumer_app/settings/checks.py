"""Django system checks for ``settings.KAFKA_CONSUMER``; ``manage.py check`` runs them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core import checks
from django.db import DatabaseError, connections

from kafka_consumer_app.settings import concurrency, health, share_groups, topics

TAG = "kafka_consumer_app"


@checks.register(TAG)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Report every missing or invalid ``KAFKA_CONSUMER`` setting as an error with a hint."""
    return [checks.Error(problem.msg, hint=problem.hint, id=problem.id) for problem in topics.problems()]


@checks.register(TAG, deploy=True)
def check_health_port(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check --deploy``: report a ``HEALTH_PORT`` that cannot be bound (in use, say) as an error."""
    return [checks.Error(problem.msg, hint=problem.hint, id=problem.id) for problem in health.health_port_problems()]


@checks.register(TAG)
def check_concurrency(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn about settings that are valid but likely wrong: more threads than databases allow, retries past a limit."""
    found = concurrency.thread_warnings() + share_groups.delivery_limit_warnings()
    return [checks.Warning(problem.msg, hint=problem.hint, id=problem.id) for problem in found]


@checks.register(TAG, checks.Tags.database)
def check_connection_limit(
    app_configs: Any = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``manage.py check --database ALIAS``: warn when CONCURRENCY could take half a PostgreSQL server's connections."""
    found = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW max_connections")
                (limit,) = cursor.fetchone()
        except DatabaseError:
            continue  # unreachable: Django's own checks and the consumer's outage rules say so
        found += concurrency.connection_limit_warnings(alias, int(limit))
    return [checks.Warning(problem.msg, hint=problem.hint, id=problem.id) for problem in found]
