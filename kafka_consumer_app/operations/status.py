"""
The lag report behind ``./manage.py consumer_status``: where a consumer group stands on one topic.

:func:`read_status` asks the cluster, with librdkafka's admin client and the same connection
and security options as ``consume_events``, for

- each partition's committed offset of the group (``list_consumer_group_offsets``), its
  earliest retained offset (low watermark) and its end offset (high watermark,
  ``list_offsets``), and the timestamp of the last committed message (the one before the
  committed offset, read by a :class:`~kafka_consumer_app.operations.peek.TopicReader`);
- the group's state and members, with the partitions of this topic each one holds
  (``describe_consumer_groups``).

**The lag rule.** A partition's lag is the number of messages the group would still have to
consume: ``end - committed``. When the group has committed nothing on a partition, or
committed an offset that retention has since deleted, the consumer would start at the
earliest retained message (the app defaults ``auto.offset.reset`` to ``earliest``), so the
lag is ``end - low watermark``. A lag is never negative.

Nothing here consumes, joins the group or commits: the report can run next to the consumers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_INVALID,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec  # the package re-exports it without __all__

from kafka_consumer_app.client_errors import ClientErrors, metadata_within, reason
from kafka_consumer_app.engine.client import admin_options
from kafka_consumer_app.exceptions import (
    AuthenticationError,
    BrokerUnavailableError,
    ConfigurationError,
    TopicNotFoundError,
)
from kafka_consumer_app.operations.peek import TopicReader
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class PartitionStatus:
    """
    One partition: the group's committed offset (None when nothing is committed), the earliest
    retained offset (low watermark) and the end offset (high watermark).
    """

    partition: int
    committed: int | None
    earliest: int
    end: int
    #: The timestamp (ms since the epoch) of the last committed message (at ``committed - 1``), if still retained.
    last_committed_at: int | None = None

    @property
    def lag(self) -> int:
        """Messages left: ``end - committed``, or ``end - earliest`` when nothing usable is committed."""
        start = self.earliest if self.committed is None else max(self.committed, self.earliest)
        return max(self.end - start, 0)

    def as_dict(self) -> dict[str, Any]:
        """The partition as JSON-ready data, its lag included."""
        return {
            "partition": self.partition,
            "committed": self.committed,
            "earliest": self.earliest,
            "end": self.end,
            "lag": self.lag,
            "last_committed_timestamp": self.last_committed_at,
        }

    @property
    def last_committed_time(self) -> datetime | None:
        """:attr:`last_committed_at` as a UTC datetime."""
        return None if self.last_committed_at is None else datetime.fromtimestamp(self.last_committed_at / 1000, UTC)


@dataclass(frozen=True)
class MemberStatus:
    """One member of the group and the partitions of the reported topic assigned to it."""

    member_id: str
    client_id: str
    host: str
    partitions: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        """The member as JSON-ready data."""
        return {
            "member_id": self.member_id,
            "client_id": self.client_id,
            "host": self.host,
            "partitions": list(self.partitions),
        }


@dataclass(frozen=True)
class GroupStatus:
    """Where one consumer group stands on one topic."""

    topic: str
    kafka_topic: str
    group_id: str
    state: str
    partitions: tuple[PartitionStatus, ...]
    members: tuple[MemberStatus, ...]

    @property
    def total_lag(self) -> int:
        """The sum of every partition's lag."""
        return sum(partition.lag for partition in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what ``consumer_status --json`` prints)."""
        return {
            "topic": self.topic,
            "kafka_topic": self.kafka_topic,
            "group_id": self.group_id,
            "state": self.state,
            "total_lag": self.total_lag,
            "partitions": [partition.as_dict() for partition in self.partitions],
            "members": [member.as_dict() for member in self.members],
        }


def read_status(config: TopicConfig) -> GroupStatus:
    """
    Ask the cluster where ``config.group_id`` stands on ``config.kafka_topic``.

    Waits at most ``CONNECT_TIMEOUT`` for the cluster. Raises :class:`TopicNotFoundError`,
    :class:`BrokerUnavailableError`, :class:`AuthenticationError` or
    :class:`ConfigurationError`, each with a one-line message naming the fix.
    """
    return _StatusReader(config).read()


class _StatusReader:
    """One report: an admin client, the deadline, and the authentication errors its callback saw."""

    def __init__(self, config: TopicConfig) -> None:
        self.config = config
        self.deadline = time.monotonic() + config.connect_timeout
        self.errors = ClientErrors()

    def read(self) -> GroupStatus:
        admin = self._admin()
        try:
            partitions = self._partitions(admin)
            state, members = self._group(admin)
            committed = self._committed(admin, partitions)
            earliest = self._offsets(admin, partitions, _earliest(), "earliest offsets")
            end = self._offsets(admin, partitions, _latest(), "end offsets")
        finally:
            admin.poll(0)  # serve queued log lines and errors before the client goes
        times = self._last_committed_times(committed, earliest)
        return GroupStatus(
            topic=self.config.topic,
            kafka_topic=self.config.kafka_topic,
            group_id=self.config.group_id,
            state=state,
            partitions=tuple(
                PartitionStatus(
                    partition, committed.get(partition), earliest[partition], end[partition], times.get(partition)
                )
                for partition in partitions
            ),
            members=members,
        )

    def _last_committed_times(self, committed: dict[int, int], earliest: dict[int, int]) -> dict[int, int | None]:
        """The timestamp of the message before each committed offset still retained, read without joining the group."""
        wanted = {p: offset - 1 for p, offset in committed.items() if offset - 1 >= earliest.get(p, 0)}
        if not wanted:
            return {}
        with TopicReader(self.config, self.config.kafka_topic) as reader:
            return {partition: reader.timestamp_at(partition, offset) for partition, offset in wanted.items()}

    def admin_config(self) -> dict[str, Any]:
        """The admin client's options: the consumer's connection and security options, and the brokers."""
        options = admin_options(self.config, self.errors.record)
        if not logging.getLogger("kafka_consumer_app.librdkafka").isEnabledFor(logging.DEBUG):
            # The report, or its one-line error, says what happened; below -v 2, librdkafka's
            # reconnect lines (dozens a second while a broker is down) would only bury it.
            options["log_level"] = 0
        return options

    def _admin(self) -> AdminClient:
        try:
            return AdminClient(self.admin_config())
        except KafkaException as error:
            raise ConfigurationError(
                f"librdkafka refused the configuration ({reason(error)}); fix that option in "
                "KAFKA_CONSUMER['CONSUMER_CONFIG']"
            ) from error

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _unreachable(self, why: str) -> BrokerUnavailableError:
        return BrokerUnavailableError(
            f"could not reach Kafka at {self.config.bootstrap_servers} within {self.config.connect_timeout:g}s "
            f"({why}); check KAFKA_CONSUMER['BOOTSTRAP_SERVERS'], the network and the security settings"
        )

    def _raise_if_rejected(self) -> None:
        self.errors.raise_if_rejected()

    def _partitions(self, admin: AdminClient) -> list[int]:
        """The topic's partitions, waiting for the cluster up to CONNECT_TIMEOUT (the first request of the report)."""
        topic = self.config.kafka_topic
        metadata = metadata_within(
            admin, topic, self.config.bootstrap_servers, self.config.connect_timeout, self.errors
        )
        found = metadata.topics.get(topic)
        code = found.error.code() if found is not None and found.error is not None else None
        if found is None or code == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise TopicNotFoundError(
                f"topic {topic!r} does not exist on {self.config.bootstrap_servers}; "
                "create it, or check --topic and KAFKA_CONSUMER['TOPIC_PREFIX']"
            )
        if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise AuthenticationError(
                f"not authorized to describe topic {topic!r}; grant the principal DESCRIBE on the topic and the group"
            )
        return sorted(found.partitions)

    def _result(self, what: str, call: Callable[[float], _T]) -> _T:
        """Run one admin request within the deadline (a second at least); errors become one-line ones."""
        timeout = max(self._remaining(), 1.0)
        try:
            return call(timeout)
        except KafkaException as error:
            self._raise_if_rejected()
            kafka_error = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
            if kafka_error is not None and kafka_error.code() in (
                KafkaError.GROUP_AUTHORIZATION_FAILED,
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
            ):
                raise AuthenticationError(
                    f"not authorized to read the {what} ({reason(error)}); grant the principal DESCRIBE on "
                    f"topic {self.config.kafka_topic!r} and group {self.config.group_id!r}"
                ) from error
            raise self._unreachable(f"{what}: {reason(error)}") from error
        except TimeoutError as error:
            raise self._unreachable(f"{what}: no answer") from error

    def _group(self, admin: AdminClient) -> tuple[str, tuple[MemberStatus, ...]]:
        group = self.config.group_id

        def describe(timeout: float) -> Any:
            future = admin.describe_consumer_groups([group], request_timeout=timeout)[group]
            try:
                return future.result(timeout=timeout)
            except KafkaException as error:
                if _code(error) == KafkaError.GROUP_ID_NOT_FOUND:
                    return None  # newer brokers answer so for a group that does not exist (any more)
                raise

        description = self._result("group description", describe)
        if description is None:
            return "dead", ()
        members = tuple(
            MemberStatus(
                member_id=member.member_id,
                client_id=member.client_id,
                host=member.host,
                partitions=tuple(
                    sorted(
                        tp.partition
                        for tp in (member.assignment.topic_partitions if member.assignment else [])
                        if tp.topic == self.config.kafka_topic
                    )
                ),
            )
            for member in description.members
        )
        state = getattr(description.state, "name", str(description.state)).lower()
        # Members holding partitions of this topic first, by partition; then the others (other topics' consumers).
        return state, tuple(sorted(members, key=lambda m: (not m.partitions, m.partitions, m.member_id)))

    def _committed(self, admin: AdminClient, partitions: list[int]) -> dict[int, int]:
        """The group's committed offsets, by partition; partitions with nothing committed are left out."""
        group = self.config.group_id
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(self.config.kafka_topic, partition) for partition in partitions]
        )

        def offsets(timeout: float) -> Any:
            return admin.list_consumer_group_offsets([request], request_timeout=timeout)[group].result(timeout=timeout)

        result = self._result("committed offsets", offsets)
        return {
            tp.partition: tp.offset
            for tp in result.topic_partitions
            if tp.error is None and tp.offset != OFFSET_INVALID and tp.offset >= 0
        }

    def _offsets(self, admin: AdminClient, partitions: list[int], spec: OffsetSpec, what: str) -> dict[int, int]:
        """The earliest or latest offset of every partition."""
        request = {TopicPartition(self.config.kafka_topic, partition): spec for partition in partitions}

        def offsets(timeout: float) -> dict[int, int]:
            futures = admin.list_offsets(request, request_timeout=timeout)
            return {tp.partition: future.result(timeout=timeout).offset for tp, future in futures.items()}

        return self._result(what, offsets)


def render_table(status: GroupStatus) -> str:
    """The report as aligned text: a summary line, the partitions, then the members."""
    members = len(status.members)
    topic = status.topic if status.topic == status.kafka_topic else f"{status.topic} (Kafka topic {status.kafka_topic})"
    lines = [
        f"Group {status.group_id} on topic {topic}: state {status.state}, "
        f"{members} member{'' if members == 1 else 's'}, total lag {status.total_lag}",
        "",
    ]
    rows = [
        [
            str(p.partition),
            "-" if p.committed is None else str(p.committed),
            str(p.earliest),
            str(p.end),
            str(p.lag),
            "-" if p.last_committed_time is None else p.last_committed_time.isoformat(timespec="seconds"),
        ]
        for p in status.partitions
    ]
    lines += _align(["PARTITION", "COMMITTED", "EARLIEST", "END", "LAG", "LAST COMMITTED AT"], rows, right=True)
    if any(p.committed is None for p in status.partitions):
        lines.append("(-: nothing committed; the lag counts from the earliest retained offset)")
    lines.append("")
    if status.members:
        rows = [[m.member_id, m.client_id, m.host, ",".join(map(str, m.partitions)) or "-"] for m in status.members]
        lines += _align(["MEMBER", "CLIENT ID", "HOST", "PARTITIONS"], rows)
    else:
        lines.append("No active members.")
    return "\n".join(lines)


def render_json(status: GroupStatus) -> str:
    """The report as one JSON document (see :meth:`GroupStatus.as_dict`)."""
    return json.dumps(status.as_dict(), indent=2)


def _align(header: list[str], rows: list[list[str]], right: bool = False) -> list[str]:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [cell.rjust(width) if right else cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        return "  ".join(padded).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _code(error: KafkaException) -> int | None:
    first = error.args[0] if error.args else None
    return first.code() if isinstance(first, KafkaError) else None


def _earliest() -> OffsetSpec:
    """The low watermark spec of ``list_offsets``."""
    spec: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]  # confluent-kafka leaves it untyped
    return spec


def _latest() -> OffsetSpec:
    """The high watermark (end offset) spec of ``list_offsets``."""
    spec: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # confluent-kafka leaves it untyped
    return spec
