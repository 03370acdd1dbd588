"""
Warnings about worker threads and database connections: W026 from the settings alone, W027 from a
PostgreSQL server's own max_connections (``manage.py check --database default``).
"""

from __future__ import annotations

import subprocess
import sys

from kafka_consumer_app.settings.checks import check_concurrency

from .kafka_utils import MANAGE, manage_env, settings_env


def test_more_than_64_worker_threads_warn_w026_naming_where_they_are_set(settings):
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "CONCURRENCY": 64,
        "TOPICS": {"orders": {"CONCURRENCY": 65}},
    }
    warnings = check_concurrency()
    assert [(w.id, w.msg.split(" is ")[0]) for w in warnings] == [
        ("kafka_consumer_app.W026", "KAFKA_CONSUMER['TOPICS']['orders']['CONCURRENCY']")
    ]


def check_database(postgres_database, tmp_path, threads):
    env = {**settings_env(tmp_path, CONCURRENCY=threads), **postgres_database.env}
    return subprocess.run(
        [sys.executable, str(MANAGE), "check", "--database", "default"],
        env=manage_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_worker_threads_that_could_take_half_the_servers_connections_warn_w027(postgres_database, tmp_path):
    # The suite's server allows 200 connections: 100 threads and the loop's would hold 101 of them.
    result = check_database(postgres_database, tmp_path, threads=100)
    assert result.returncode == 0, result.stderr
    assert "kafka_consumer_app.W027" in result.stderr and "allows 200 in all" in result.stderr, result.stderr

    result = check_database(postgres_database, tmp_path, threads=98)
    assert result.returncode == 0 and "W027" not in result.stderr, result.stderr
