"""
The ORM receivers' databases: one migrated template per engine, and a fresh copy of it for every run.

- SQLite: the template is a file that ``manage.py migrate`` created; a run gets a copy of the file.
- PostgreSQL: one local server (:class:`~kafka_consumer_app.testing.postgres.LocalPostgres`),
  started by the orchestrator for the whole session like the broker; the template is a database
  migrated once, and a run gets ``CREATE DATABASE <run> TEMPLATE <template>``.

Either way a run sees no other run's rows; its rows are counted afterwards and its database is
removed. Creating, copying and counting happen outside every timed window.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from benchmarks import processes
from kafka_consumer_app.testing.postgres import LocalPostgres

#: The table the ORM receivers write to (``benchmarks.benchapp.models.HandledEvent``).
TABLE = "benchapp_handledevent"
#: The PostgreSQL template's name.
POSTGRES_TEMPLATE = "bench_template"
#: On top of LocalPostgres's settings (``fsync`` off): every commit writes its WAL before it returns, but
#: without an fsync, as SQLite's ``synchronous=NORMAL`` does, so that the figures reflect the ORM and the
#: round trips rather than the disk. A production server's fsync per commit would cost the per-message
#: receiver more still.
POSTGRES_SETTINGS = {"synchronous_commit": "on"}


class RunDatabase(Protocol):
    """A database that benchmark processes can be pointed at, whose rows can be counted."""

    @property
    def name(self) -> str:
        """A name for messages: the file's or the database's."""

    def env(self) -> dict[str, str]:
        """The ``BENCH_*`` variables that make ``benchmarks.settings`` use this database."""

    def copy(self, name: str) -> RunDatabase:
        """A new database of the same engine holding what this one holds (this one is the template)."""

    def rows(self) -> int:
        """How many rows the ORM receivers' table holds."""

    def remove(self) -> None:
        """Delete the database."""


@dataclass(frozen=True)
class SqliteDatabase:
    """A SQLite file in the run's work directory."""

    path: Path

    @property
    def name(self) -> str:
        """The file's name."""
        return self.path.name

    def env(self) -> dict[str, str]:
        """``BENCH_DB_PATH``."""
        return {"BENCH_DB_PATH": str(self.path)}

    def copy(self, name: str) -> SqliteDatabase:
        """A copy of the file, ``<name>.sqlite3`` next to it."""
        target = self.path.with_name(f"{name}.sqlite3")
        shutil.copyfile(self.path, target)
        return SqliteDatabase(target)

    def rows(self) -> int:
        """``SELECT COUNT(*)`` over a connection of its own."""
        connection = sqlite3.connect(self.path)
        try:
            (count,) = connection.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()
        finally:
            connection.close()
        return int(count)

    def remove(self) -> None:
        """Delete the file and its WAL files."""
        for suffix in ("", "-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)


@dataclass(frozen=True)
class PostgresDatabase:
    """A database on the session's PostgreSQL server."""

    server: LocalPostgres
    database: str

    @property
    def name(self) -> str:
        """The database's name."""
        return self.database

    def env(self) -> dict[str, str]:
        """``BENCH_DATABASE_URL``."""
        return {"BENCH_DATABASE_URL": self.server.url(self.database)}

    def copy(self, name: str) -> PostgresDatabase:
        """``CREATE DATABASE name TEMPLATE this``: nobody may be connected to this one meanwhile."""
        from psycopg import sql  # pylint: disable=import-outside-toplevel

        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
        self.server.execute(statement.format(sql.Identifier(name), sql.Identifier(self.database)))
        return PostgresDatabase(self.server, name)

    def rows(self) -> int:
        """``SELECT COUNT(*)`` as the superuser."""
        return int(self.server.execute(f"SELECT COUNT(*) FROM {TABLE}", database=self.database)[0][0])

    def remove(self) -> None:
        """``DROP DATABASE``."""
        self.server.drop_database(self.database)


def sqlite_template(path: Path, bootstrap: str) -> SqliteDatabase:
    """The SQLite file ``path``, migrated: the template of every SQLite run."""
    template = SqliteDatabase(path)
    processes.migrate(template.env(), bootstrap, template.name)
    return template


def postgres_template(server: LocalPostgres, bootstrap: str) -> PostgresDatabase:
    """A new database on ``server``, migrated: the template of every PostgreSQL run."""
    server.create_database(POSTGRES_TEMPLATE)
    template = PostgresDatabase(server, POSTGRES_TEMPLATE)
    processes.migrate(template.env(), bootstrap, f"PostgreSQL database {template.name}")
    return template


@contextmanager
def local_postgres() -> Iterator[LocalPostgres]:
    """Start a PostgreSQL server on 127.0.0.1 for the duration of the block, then stop it and delete its data."""
    server = LocalPostgres(settings=POSTGRES_SETTINGS)
    try:
        yield server.start()
    finally:
        server.cleanup()


def run_database_name(run: str) -> str:
    """A PostgreSQL database name for the run named ``run`` (``throughput-1-orm-pg`` → ``throughput_1_orm_pg``)."""
    return run.replace("-", "_").lower()
