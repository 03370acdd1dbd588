"""
Run many command lines, each in its own forked process, after one Django start-up.

``python tests/forked_commands.py < cases.pickle > results.pickle``: each case is a dict with
``argv`` (a management command and its options, or ``["probe", ...]`` for
``python -m kafka_consumer_app.probe``) and ``settings`` (keys merged over the settings'
``KAFKA_CONSUMER``; a value of ``DELETE`` removes the key). Each result has the child's
``returncode`` (negative: killed by that signal, as subprocess reports it), ``stdout`` and
``stderr``. A fork costs milliseconds where a new interpreter costs Django's start-up, and a
child killed by librdkafka's abort() takes only itself down.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import traceback
from typing import Any

#: The value of a ``settings`` key that removes it from KAFKA_CONSUMER.
DELETE = "<delete>"
#: A child still running after this many seconds is killed (SIGKILL), so a hang fails instead of stalling.
CHILD_TIMEOUT = 30
#: Children run at once.
PARALLEL = 4


def run_in_child(case: dict[str, Any]) -> int:
    """In the forked child: apply the settings, run the command as manage.py would, return the exit code."""
    from django.conf import settings
    from django.core.management import execute_from_command_line

    from kafka_consumer_app import probe

    merged = {**settings.KAFKA_CONSUMER, **case.get("settings", {})}
    settings.KAFKA_CONSUMER = {key: value for key, value in merged.items() if value != DELETE}
    try:
        if case["argv"][0] == "probe":
            return probe.main(case["argv"][1:])
        execute_from_command_line(["manage.py", *case["argv"]])
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
        return 1
    return 0


def fork_case(case: dict[str, Any], out_path: str, err_path: str) -> int:
    """Start one case in a forked child with its stdout and stderr in files; return the child's pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the parent's loop
        code = 1
        try:
            os.dup2(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
            os.dup2(os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            code = run_in_child(case)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code & 0xFF)
    return pid


def run_cases(cases: list[dict[str, Any]], directory: str) -> list[dict[str, Any]]:
    """Run the cases, PARALLEL children at a time (most of a valid case's time is a wait for the broker)."""
    results = []
    for start in range(0, len(cases), PARALLEL):
        chunk = list(enumerate(cases[start : start + PARALLEL], start))
        paths = {index: (f"{directory}/{index}.out", f"{directory}/{index}.err") for index, _case in chunk}
        pids = {index: fork_case(case, *paths[index]) for index, case in chunk}
        for index, pid in pids.items():
            status = wait_bounded(pid)
            with open(paths[index][0], errors="replace") as out, open(paths[index][1], errors="replace") as err:
                results.append({"returncode": status, "stdout": out.read(), "stderr": err.read()})
    return results


def wait_bounded(pid: int) -> int:
    """The child's exit code, or minus the signal that killed it; SIGKILL it after CHILD_TIMEOUT seconds."""
    import signal
    import time

    deadline = time.monotonic() + CHILD_TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        time.sleep(0.01)  # polling a child's exit; the deadline above bounds the wait


def main() -> None:
    """Read the pickled cases from stdin, run each, write the pickled results to stdout."""
    import django

    cases = pickle.load(sys.stdin.buffer)
    django.setup()
    with tempfile.TemporaryDirectory() as directory:
        results = run_cases(cases, directory)
    sys.stdout.buffer.write(pickle.dumps(results))


if __name__ == "__main__":
    main()
