"""
What the local servers of the tests and the demo share: a child process in a private directory.

:class:`~kafka_consumer_app.testing.kraft.LocalKafkaBroker`,
:class:`~kafka_consumer_app.testing.postgres.LocalPostgres` and
:class:`~kafka_consumer_app.testing.registry.LocalSchemaRegistry` each start their server their own way;
they stop it, delete its directory and serve as context managers the same way, and their command lines
serve until SIGTERM or SIGINT with :func:`serve_until_stopped`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


class LocalServer:
    """A server process this process started, with its data in ``workdir``."""

    #: The signals that stop the server, in turn, each given ``timeout`` seconds before the next.
    STOP_SIGNALS: tuple[int, ...] = (signal.SIGTERM, signal.SIGKILL)

    process: subprocess.Popen[bytes] | None
    workdir: Path

    @property
    def log_file(self) -> Path:
        """The server's log."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start the server and wait until it answers."""
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server with each of ``STOP_SIGNALS`` in turn until it exits; its data stays."""
        if self.process is None:
            return
        for signum in self.STOP_SIGNALS:
            if self.process.poll() is not None:
                break
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()


def serve_until_stopped(server: LocalServer, lines: Sequence[str], ready_file: Path | None, what: str) -> int:
    """
    Print ``lines`` (how to reach ``server``), write them to ``ready_file``, and serve until SIGTERM or
    SIGINT: 0 then, 1 if the server exits first.
    """
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    print("\n".join(lines), flush=True)
    if ready_file:
        ready_file.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    while not stopped.wait(0.5):
        if server.process is None or server.process.poll() is not None:
            print(f"error: the {what} exited; see {server.log_file}", file=sys.stderr)
            return 1
    return 0
