"""
A real, private PostgreSQL server for tests and demos, with no Docker.

It runs the server binaries of an installed PostgreSQL (Debian's ``postgresql`` package; ``make
postgres`` installs it): ``initdb`` makes a cluster in a temporary directory, and ``postgres``
serves it on a free port of 127.0.0.1 only, its unix socket inside that directory, tuned for
speed rather than durability (``fsync``, ``synchronous_commit`` and ``full_page_writes`` off).
``initdb`` and ``postgres`` refuse to run as root, so a root process runs them as the OS user
``postgres`` (which Debian's package creates), owner of the temporary directory.

The superuser is ``postgres``, with a random password over TCP (the unix socket trusts whoever
reaches it, and only the directory's owner can)::

    with LocalPostgres() as server:
        server.create_database("orders")
        server.django_database("orders")  # the DATABASES entry
        server.url("orders")              # postgresql://postgres:<password>@127.0.0.1:<port>/orders

``stop()`` then ``start()`` restarts the server on the same port with the same data, and
:meth:`LocalPostgres.terminate_connections` ends the sessions of a database, as a server that
drops its connections would. The command line serves one::

    python -m kafka_consumer_app.testing.postgres check
    python -m kafka_consumer_app.testing.postgres run --database orders --ready-file /tmp/postgres.env

``run`` prints ``DATABASE_URL=postgresql://...`` and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from kafka_consumer_app.testing.jars import free_port
from kafka_consumer_app.testing.servers import LocalServer, serve_until_stopped

if TYPE_CHECKING:
    from psycopg import sql

__all__ = ["LocalPostgres", "PostgresError", "django_database_from_url", "find_binaries", "main"]

#: Where Debian's packages put each major version's server binaries.
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"
#: The OS user a root process runs the server as.
OS_USER = "postgres"
SUPERUSER = "postgres"

#: Server settings for fast, disposable test clusters: nothing is worth an fsync, and a test
#: suite's consumer processes, each with its own connection, fit in ``max_connections``.
DEFAULT_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresError(RuntimeError):
    """The local PostgreSQL server could not be found or started; the first line says why."""


def find_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: the PATH's, else the newest of Debian's, else None."""
    on_path = shutil.which("initdb")
    if on_path is not None and (Path(on_path).parent / "postgres").exists():
        return Path(on_path).parent
    candidates = [path for path in Path("/").glob(DEBIAN_BINARIES.lstrip("/")) if (path / "initdb").exists()]
    versions = [(int(path.parent.name), path) for path in candidates if path.parent.name.isdigit()]
    return max(versions)[1] if versions else None


def django_database_from_url(url: str) -> dict[str, Any]:
    """
    A Django ``DATABASES`` entry for ``postgresql://user:password@host:port/name?option=value``.

    Query parameters become ``OPTIONS`` (libpq's, such as ``connect_timeout``).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        raise ValueError(f"expected postgresql://user:password@host:port/name, not {parts.scheme}://...")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": dict(parse_qsl(parts.query)),
    }


def _os_user() -> pwd.struct_passwd | None:
    """The OS user the server runs as: ``postgres`` for a root process, None (ourselves) otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise PostgresError(
            f"initdb and postgres refuse to run as root, and there is no OS user {OS_USER!r} to run them as "
            "(Debian's postgresql package creates it)"
        ) from None


class LocalPostgres(LocalServer):
    """
    One PostgreSQL server on 127.0.0.1, its cluster in a temporary directory.

    ``stop()`` is a fast shutdown (SIGINT, ending the sessions), then an immediate one (SIGQUIT), then SIGKILL,
    each after ``timeout`` seconds.

    ``start()`` returns once the server accepts connections; ``stop()`` shuts it down, and
    ``start()`` again restarts it on the same port with the same data. Use it as a context
    manager to remove its data afterwards.
    """

    STOP_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL)

    host = "127.0.0.1"
    user = SUPERUSER

    def __init__(
        self, port: int | None = None, settings: Mapping[str, str] | None = None, bin_dir: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.bin_dir = bin_dir
        self.password = secrets.token_hex(16)
        self.workdir = Path(tempfile.mkdtemp(prefix="postgres-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.workdir / "data"

    @property
    def log_file(self) -> Path:
        """The server's own log, useful when a test fails."""
        return self.workdir / "postgres.log"

    def url(self, name: str = "postgres") -> str:
        """``postgresql://postgres:<password>@127.0.0.1:<port>/<name>``, for libpq, psycopg and DATABASE_URL."""
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{quote(name)}"

    def django_database(self, name: str) -> dict[str, Any]:
        """The Django ``DATABASES`` entry of database ``name`` on this server."""
        return django_database_from_url(self.url(name))

    def start(self, timeout: float = 30.0) -> LocalPostgres:
        """Start (or restart) the server, making its cluster first if needed, and wait until it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return self
        bin_dir = self.bin_dir or find_binaries()
        if bin_dir is None:
            raise PostgresError(
                f"no PostgreSQL server binaries (initdb, postgres) on the PATH or in {DEBIAN_BINARIES}; "
                "install Debian's postgresql package (make postgres)"
            )
        user = _os_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir, user, timeout)
        command = [str(bin_dir / "postgres"), "-D", str(self.data_dir), *self._options()]
        self.process = self._spawn(command, user, self.log_file)
        self._wait_until_ready(timeout)
        return self

    def _options(self) -> list[str]:
        settings = {
            **self.settings,
            "port": str(self.port),
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.workdir),
        }
        return [argument for key, value in settings.items() for argument in ("-c", f"{key}={value}")]

    def _initdb(self, bin_dir: Path, user: pwd.struct_passwd | None, timeout: float) -> None:
        if user is not None:
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
        password_file = self.workdir / "password"
        password_file.write_text(self.password + "\n", encoding="utf-8")
        password_file.chmod(0o600)
        if user is not None:
            os.chown(password_file, user.pw_uid, user.pw_gid)
        command = [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user, f"--pwfile={password_file}"]
        command += ["--auth-host=scram-sha-256", "--auth-local=trust", "--encoding=UTF8", "--locale=C"]
        command += ["--no-sync", "--no-instructions"]
        process = self._spawn(command, user, self.workdir / "initdb.log")
        try:
            returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            returncode = process.wait()
        finally:
            password_file.unlink()
        if returncode != 0:
            hint = f" (it runs as OS user {user.pw_name}, who must be able to reach {self.workdir})" if user else ""
            raise PostgresError(
                f"initdb failed with exit code {returncode}{hint}:\n{self._log_tail(self.workdir / 'initdb.log')}"
            )

    def _spawn(self, command: list[str], user: pwd.struct_passwd | None, log_file: Path) -> subprocess.Popen[bytes]:
        """Run ``command`` in its own session as ``user`` (None: ourselves), its output appended to ``log_file``."""
        as_user: dict[str, Any] = {}
        if user is not None:
            as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        with open(log_file, "ab") as log:
            return subprocess.Popen(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_user,
            )

    def _wait_until_ready(self, timeout: float) -> None:
        import psycopg  # pylint: disable=import-outside-toplevel

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                self.process = None
                raise PostgresError(f"PostgreSQL exited during startup; see {self.log_file}:\n{self._log_tail()}")
            # Only once the server says it is ready: before that, the port may be someone else's.
            if self._pid_file_status() == "ready":
                try:
                    psycopg.connect(self.url(), connect_timeout=2).close()
                    return
                except psycopg.OperationalError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise PostgresError(
            f"PostgreSQL did not accept connections within {timeout:g}s; see {self.log_file}:\n{self._log_tail()}"
        )

    def _pid_file_status(self) -> str:
        """The status line of ``postmaster.pid`` ("starting", "ready", ...), or "" while it has none."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return ""
        return lines[7].strip() if len(lines) > 7 else ""

    def _log_tail(self, log_file: Path | None = None) -> str:
        path = log_file or self.log_file
        if path.exists():
            return path.read_text(encoding="utf-8", errors="replace")[-3000:]
        return "(no log)"

    def execute(
        self, query: str | sql.Composed, params: tuple[Any, ...] = (), database: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Run one SQL statement as the superuser, outside any transaction, and return its rows (if any)."""
        import psycopg  # pylint: disable=import-outside-toplevel

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as connection:
            cursor = connection.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> None:
        """Create an empty database (owned by the superuser)."""
        from psycopg import sql  # pylint: disable=import-outside-toplevel

        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, ending the sessions still connected to it."""
        from psycopg import sql  # pylint: disable=import-outside-toplevel

        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def terminate_connections(self, name: str) -> int:
        """End every session connected to database ``name`` (``pg_terminate_backend``); return how many."""
        rows = self.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        return int(rows[0][0])


def main(argv: list[str] | None = None) -> int:
    """Command line: ``check`` for the server binaries, or ``run`` a server until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m kafka_consumer_app.testing.postgres", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("check", help="Exit 0 if the server binaries are found (and can be run), 1 otherwise.")
    run = sub.add_parser("run", help="Run a server on 127.0.0.1 until SIGTERM or SIGINT.")
    run.add_argument("--port", type=int, help="TCP port (default: a free one).")
    run.add_argument("--database", help="Create this database; DATABASE_URL names it (default: postgres).")
    run.add_argument("--ready-file", type=Path, help="Write DATABASE_URL=... here once ready.")
    args = parser.parse_args(argv)
    try:
        if args.action == "check":
            return _check()
        return _run(args)
    except PostgresError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _check() -> int:
    bin_dir = find_binaries()
    if bin_dir is None:
        raise PostgresError(f"no PostgreSQL server binaries (initdb, postgres) on the PATH or in {DEBIAN_BINARIES}")
    user = _os_user()
    version = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False)
    runs_as = f", run as OS user {user.pw_name}" if user else ""
    print(f"{version.stdout.strip() or 'PostgreSQL'} in {bin_dir}{runs_as}")
    return 0


def _run(args: argparse.Namespace) -> int:
    with LocalPostgres(port=args.port) as server:
        if args.database:
            server.create_database(args.database)
        line = f"DATABASE_URL={server.url(args.database or 'postgres')}"
        return serve_until_stopped(server, [line], args.ready_file, "server")


if __name__ == "__main__":
    sys.exit(main())
