"""Helpers shared by the broker tests: producing, reading commits, running consume_events processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupState, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

ROOT = Path(__file__).resolve().parent.parent

#: Figure lines of the delivery and fault-injection scenarios; the session prints them at its end.
FIGURE_LINES: list[str] = []


def report_figures(line: str) -> None:
    """Record one figure line: shown in the test's output and in the session's final summary."""
    print(line)
    FIGURE_LINES.append(line)


MANAGE = ROOT / "example" / "manage.py"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Return ``predicate()``'s first truthy value; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[Any],
    *,
    key: Callable[[int], str | bytes | None] = lambda index: f"key-{index}",
    headers: list[tuple[str, bytes]] | None = None,
    raw: bool = False,
    partition: int | None = None,
) -> int:
    """Produce ``values`` (JSON-encoded unless ``raw``) and wait for every delivery; return the count."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    failures: list[str] = []

    def on_delivery(error, _message):
        if error is not None:
            failures.append(str(error))

    count = 0
    for index, value in enumerate(values):
        payload = value if raw else json.dumps(value).encode()
        kwargs = {"partition": partition} if partition is not None else {}
        producer.produce(topic, payload, key=key(index), headers=headers, on_delivery=on_delivery, **kwargs)
        producer.poll(0)
        count += 1
    remaining = producer.flush(60)
    assert remaining == 0 and not failures, f"produce failed: {remaining} undelivered, errors {failures[:3]}"
    return count


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    """Read ``count`` messages of ``topic`` from the beginning, with a throwaway group."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    assert len(messages) == count, f"read {len(messages)} of {count} messages from {topic}"
    return messages


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """Return the group's committed offset per partition (-1001 where none is committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in offsets}


@dataclass(frozen=True)
class Record:
    """One line of the test app's record file: which process handled which message."""

    pid: int
    partition: int
    offset: int
    id: int | None
    kind: str


def complete_lines(path: Path) -> list[str]:
    """
    The lines of a file that processes are appending to, without a last line still being written.

    A reader can see a write half done (the part up to a page boundary), so a last line without
    its newline is left for the next read.
    """
    if not path.exists():
        return []
    text = path.read_text()
    return text[: text.rfind("\n") + 1].splitlines()


def read_records(path: Path) -> list[Record]:
    """Parse the record file written by tests/testapp/kafka_handlers.py."""
    records = []
    for line in complete_lines(path):
        pid, partition, offset, ident, kind = line.split()
        records.append(Record(int(pid), int(partition), int(offset), None if ident == "None" else int(ident), kind))
    return records


def duplicates(records: list[Record]) -> int:
    """How many handlings were repeats of a message already handled."""
    counts = Counter((r.partition, r.offset) for r in records)
    return sum(count - 1 for count in counts.values())


def manage_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """
    The environment of a ``python example/manage.py`` subprocess: ours, with the test settings, then ``env``.

    ``env`` may name other settings (``DJANGO_SETTINGS_MODULE``, as from :func:`settings_env`) or a
    PostgreSQL database (``postgres_database.env``): merge them, e.g. ``{**settings_env(...), **database.env}``.
    """
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example")]),
        **(env or {}),
    }


class ConsumerProcess:
    """``python example/manage.py consume_events`` in a subprocess, with the test settings (see :func:`manage_env`)."""

    def __init__(
        self, bootstrap: str, topic: str, record: Path, *args: str, group: str, env: dict[str, str] | None = None
    ):
        self.log_path = record.with_name(f"{record.stem}-{time.monotonic_ns()}.log")
        self.env = manage_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "KAFKA_GROUP_ID": group,
                "TESTAPP_TOPIC": topic,
                "TESTAPP_RECORD": str(record),
                **(env or {}),
            }
        )
        self.argv = [sys.executable, str(MANAGE), "consume_events", "--topic", topic, *args]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in wait())
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        """The process id, as the test app records it."""
        return self.process.pid

    def send(self, signum: int = signal.SIGTERM) -> None:
        """Send an OS signal to the process."""
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for exit within ``timeout`` seconds and return the exit code; fail the test otherwise."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"consume_events did not exit within {timeout:g}s; output:\n{self.output()}") from None
        finally:
            self._log.close()

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process (if still running) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log.close()


def finished(records: list[Record]) -> list[Record]:
    """The records of messages whose receiver returned (without the ``started`` markers)."""
    return [r for r in records if r.kind != "started"]


def settings_env(directory: Path, extra: str = "", **kafka_consumer: Any) -> dict[str, str]:
    """
    Environment for a ConsumerProcess whose settings are tests.settings with ``KAFKA_CONSUMER`` keys overridden.

    The overrides (plain literals, e.g. ``CONSUMER_CONFIG={"session.timeout.ms": 10000}``) are written to a
    settings module in ``directory``, which is put first on the process's PYTHONPATH; ``extra`` is code
    appended to it.
    """
    name = f"settings_{uuid.uuid4().hex[:8]}"
    (directory / f"{name}.py").write_text(
        "from tests.settings import *  # noqa: F403\n\n"
        f"KAFKA_CONSUMER = {{**KAFKA_CONSUMER, **{kafka_consumer!r}}}  # noqa: F405\n"
        # The group protocol of the test (KAFKA_GROUP_PROTOCOL) survives a CONSUMER_CONFIG of its own.
        "if GROUP_PROTOCOL_OPTIONS:  # noqa: F405\n"
        '    KAFKA_CONSUMER["CONSUMER_CONFIG"] = {**GROUP_PROTOCOL_OPTIONS, **KAFKA_CONSUMER["CONSUMER_CONFIG"]}'
        f"  # noqa: F405\n{extra}",
        encoding="utf-8",
    )
    return {
        "DJANGO_SETTINGS_MODULE": name,
        "PYTHONPATH": os.pathsep.join([str(directory), str(ROOT), str(ROOT / "example")]),
    }


#: What a group's description may answer while its coordinator loads (the group's offsets partition) or moves,
#: or while a busy broker answers late: the group is not known to be stable yet, and the caller asks again.
COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError._TIMED_OUT,
    }
)


def group_assignment(bootstrap: str, group: str, topic: str) -> list[set[int]] | None:
    """The partitions of ``topic`` each member of ``group`` holds, or None while the group is not stable."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
    except KafkaException as error:
        # A KIP-848 group is described by its coordinator only, which may still be loading or moving; a busy
        # broker may answer after the request timeout.
        if error.args and error.args[0].code() in COORDINATOR_MOVING:
            return None
        raise
    if description.state != ConsumerGroupState.STABLE:
        return None
    return [
        {tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic}
        for member in description.members
    ]


class ConsumerProcesses:
    """
    Starts the ConsumerProcesses of one test and SIGKILLs those still running when it ends.

    ``env`` goes to every process, under the ``env`` a start passes (the test's group protocol, say).
    """

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.started: list[ConsumerProcess] = []
        self.env = dict(env or {})

    def start(self, *args: Any, **kwargs: Any) -> ConsumerProcess:
        """Start a ConsumerProcess (same arguments) and remember it."""
        kwargs["env"] = {**self.env, **(kwargs.get("env") or {})}
        process = ConsumerProcess(*args, **kwargs)
        self.started.append(process)
        return process

    def kill_all(self) -> None:
        """SIGKILL and reap every process still running."""
        for process in self.started:
            process.kill()


#: A killed member stays in its group until its session times out, and a restarted consumer waits for that.
#: 10 s (the default is 45 s) keeps restarts after SIGKILL short: pass settings_env(dir, CONSUMER_CONFIG=SHORT_SESSION).
SHORT_SESSION = {"session.timeout.ms": 10000, "heartbeat.interval.ms": 1000}


class GroupProtocol:
    """
    The consumer group protocol of a test's consume_events processes (the ``group_protocol`` fixture).

    ``classic`` is the app's default (the classic protocol, cooperative-sticky assignment) and sets
    nothing; ``consumer`` is KIP-848's, set through $KAFKA_GROUP_PROTOCOL, which tests/settings.py
    adds to CONSUMER_CONFIG.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def kip848(self) -> bool:
        """Whether this is KIP-848's ``consumer`` protocol."""
        return self.name == "consumer"

    @property
    def env(self) -> dict[str, str]:
        """The environment that makes a ConsumerProcess use this protocol."""
        return {"KAFKA_GROUP_PROTOCOL": self.name} if self.kip848 else {}

    def short_session(self, bootstrap: str, group: str, session_ms: int = 10000, heartbeat_ms: int = 1000) -> dict:
        """
        The CONSUMER_CONFIG of a short session in ``group``, for a test that kills members.

        Under KIP-848 the session and the heartbeat are the group's, on the broker (librdkafka refuses
        session.timeout.ms and heartbeat.interval.ms): they are set as the group's config instead.
        """
        if not self.kip848:
            return {"session.timeout.ms": session_ms, "heartbeat.interval.ms": heartbeat_ms}
        admin = AdminClient({"bootstrap.servers": bootstrap})
        entries = [
            ConfigEntry(name, str(value), incremental_operation=AlterConfigOpType.SET)
            for name, value in (
                ("consumer.session.timeout.ms", session_ms),
                ("consumer.heartbeat.interval.ms", heartbeat_ms),
            )
        ]
        resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
        for future in admin.incremental_alter_configs([resource], request_timeout=10).values():
            future.result(timeout=20)
        return {}
