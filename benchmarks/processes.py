"""
The measured processes: the real ``consume_events`` command and the reference loop, as subprocesses.

Each process gets its own log file and result file in the run's work directory. ``consume_events``
runs exactly as a service runs it, ``python benchmarks/manage.py consume_events --topic T ...``
with the benchmark project's settings; the receiver and the recorder are chosen through
``BENCH_*`` environment variables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from benchmarks.cluster import BenchmarkError
from benchmarks.recorder import RecorderOptions, read_result, started_marker

REPO_ROOT = Path(__file__).resolve().parent.parent
MANAGE = REPO_ROOT / "benchmarks" / "manage.py"
SETTINGS_MODULE = "benchmarks.settings"


@dataclass
class MeasuredProcess:
    """One measured subprocess, with its log file and the result file its recorder writes."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    spawn_ns: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def result_path(self) -> Path:
        """Where the recorder writes its JSON."""
        return self.workdir / f"{self.name}.json"

    @property
    def log_path(self) -> Path:
        """The process's stdout and stderr."""
        return self.workdir / f"{self.name}.log"

    def start(self) -> MeasuredProcess:
        """Spawn the process; ``spawn_ns`` is ``time.monotonic_ns()`` just before the spawn."""
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in wait() or kill())
        self.spawn_ns = time.monotonic_ns()
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def started(self) -> bool:
        """True once the process handled its first message (its recorder touched the marker)."""
        return started_marker(self.result_path).exists()

    def has_result(self) -> bool:
        """True once the recorder wrote its results (at the expected count, or at exit)."""
        return self.result_path.exists()

    def exited(self) -> bool:
        """True once the process has exited."""
        return self._running().poll() is not None

    def terminate(self) -> None:
        """Ask for a graceful stop (SIGTERM), as Kubernetes does."""
        if not self.exited():
            self._running().send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Wait for a clean exit (status 0) within ``timeout`` seconds; raise BenchmarkError otherwise."""
        process = self._running()
        try:
            returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchmarkError(f"{self.name} did not finish within {timeout:g}s:\n{self.log_tail()}") from None
        self._close_log()
        if returncode != 0:
            raise BenchmarkError(f"{self.name} exited with status {returncode}:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the process if it still runs, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def result(self) -> dict[str, Any]:
        """What the process's recorder wrote."""
        if not self.has_result():
            raise BenchmarkError(f"{self.name} wrote no result file:\n{self.log_tail()}")
        return read_result(self.result_path)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's output, for error messages."""
        if not self.log_path.exists():
            return "(no output)"
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise BenchmarkError(f"{self.name} was never started")
        return self.process

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def base_env(bootstrap: str, recorder: RecorderOptions) -> dict[str, str]:
    """The environment every measured process gets: ours, plus the broker and the recorder options."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BENCH_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        }
    )
    env.update(recorder.to_env())
    return env


def consume_events(
    name: str,
    workdir: Path,
    *,
    bootstrap: str,
    topic: str,
    group: str,
    receiver: str,
    recorder: RecorderOptions,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> MeasuredProcess:
    """A ``manage.py consume_events`` process with the benchmark receiver ``receiver`` (not yet started)."""
    full_env = base_env(bootstrap, _with_path(recorder, workdir, name))
    full_env.update({"BENCH_TOPIC": topic, "BENCH_RECEIVER": receiver, **(env or {})})
    argv = [sys.executable, str(MANAGE), "consume_events", "--topic", topic, "--group-id", group, *args]
    return MeasuredProcess(name=name, argv=argv, env=full_env, workdir=workdir)


def reference(
    name: str,
    workdir: Path,
    *,
    bootstrap: str,
    topic: str,
    group: str,
    max_messages: int,
    recorder: RecorderOptions,
) -> MeasuredProcess:
    """A ``python -m benchmarks.reference`` process (not yet started)."""
    env = base_env(bootstrap, _with_path(recorder, workdir, name))
    argv = [sys.executable, "-m", "benchmarks.reference", "--bootstrap", bootstrap, "--topic", topic]
    argv += ["--group-id", group, "--max-messages", str(max_messages)]
    return MeasuredProcess(name=name, argv=argv, env=env, workdir=workdir)


def _with_path(recorder: RecorderOptions, workdir: Path, name: str) -> RecorderOptions:
    """The recorder options with the result file that :class:`MeasuredProcess` reads."""
    return replace(recorder, result_path=workdir / f"{name}.json")


@contextmanager
def running(*processes: MeasuredProcess) -> Iterator[tuple[MeasuredProcess, ...]]:
    """Start the processes; on any error inside the block, kill those still running."""
    try:
        for process in processes:
            process.start()
        yield processes
    except BaseException:
        for process in processes:
            process.kill()
        raise


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    processes: Sequence[MeasuredProcess] = (),
) -> None:
    """Poll ``predicate()`` every 50 ms; fail after ``timeout`` seconds or when a process died early."""
    deadline = time.monotonic() + timeout
    while not predicate():
        for process in processes:
            if process.exited():
                process.wait(0)  # raises with the log tail if the exit was not clean
                raise BenchmarkError(f"{process.name} exited before {what}:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def migrate(database_env: dict[str, str], bootstrap: str, what: str) -> None:
    """Create the benchmark app's tables in the database that ``database_env`` names (outside any timing)."""
    env = base_env(bootstrap, RecorderOptions())
    env.update(database_env)
    result = subprocess.run(
        [sys.executable, str(MANAGE), "migrate", "--verbosity", "0"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchmarkError(f"migrating {what} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
