"""A fresh database on the suite's PostgreSQL server: its settings, its environment for subprocesses, SQL."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import psycopg

from kafka_consumer_app.testing.postgres import LocalPostgres

from .kafka_utils import MANAGE, manage_env


@dataclass
class PostgresDatabase:
    """
    One database of a :class:`LocalPostgres`, for one test.

    The test process's own Django database stays SQLite: code that reaches this one runs in a
    subprocess given :attr:`env` (``consume_events``, ``migrate``), or is SQL through :meth:`execute`.
    """

    server: LocalPostgres
    name: str
    _connections: list[psycopg.Connection[Any]] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        """``postgresql://...`` of this database, as ``TEST_DATABASE_URL`` carries it."""
        return self.server.url(self.name)

    @property
    def django_database(self) -> dict[str, Any]:
        """This database's entry for Django's ``DATABASES``."""
        return self.server.django_database(self.name)

    @property
    def env(self) -> dict[str, str]:
        """What a subprocess with tests.settings (or settings importing it) needs to use this database."""
        return {"TEST_DATABASE_URL": self.url}

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection (closed when the test ends, if still open)."""
        connection = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        self._connections.append(connection)
        return connection

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one SQL statement on a connection of its own, and return its rows (if any)."""
        return self.server.execute(query, params, database=self.name)

    def tables(self) -> set[str]:
        """The names of the tables in the public schema."""
        rows = self.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        return {name for (name,) in rows}

    def migrate(self, env: dict[str, str] | None = None, timeout: float = 120.0) -> str:
        """Run ``manage.py migrate`` on this database in a subprocess (``env`` as for a consumer); return its output."""
        result = subprocess.run(
            [sys.executable, str(MANAGE), "migrate", "--no-input"],
            env=manage_env({**(env or {}), **self.env}),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"migrate exited {result.returncode}:\n{output}"
        return output

    def close(self) -> None:
        """Close the connections :meth:`connect` opened."""
        for connection in self._connections:
            connection.close()
