"""
The broker side of the benchmarks: start the local broker, create topics, produce messages.

Producing always happens before (bulk) or independently of (paced) the measured processes, and
its cost is never inside a timed window: the consumers time themselves.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from confluent_kafka import KafkaError, Producer
from confluent_kafka import Message as KafkaMessage

from benchmarks.payloads import SENT_NS_HEADER, WARMUP_HEADER, make_key, make_payload
from benchmarks.progress import say
from kafka_consumer_app.testing.broker import BrokerError, LocalKafkaBroker

#: Message headers as confluent-kafka takes them.
Headers = list[tuple[str, str | bytes | None]]


class BenchmarkError(RuntimeError):
    """A benchmark could not produce a trustworthy figure; the message says why."""


@dataclass
class Cluster:
    """The running broker and the names of this session's topics."""

    broker: LocalKafkaBroker
    session: str

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the broker."""
        return self.broker.bootstrap_servers

    def new_topic(self, purpose: str, partitions: int, config: dict[str, str] | None = None) -> str:
        """Create a topic unique to this session (with topic-level ``config``) and return its name."""
        name = f"bench-{purpose}-{self.session}"
        self.broker.create_topic(name, partitions, config)
        return name

    def new_group(self, purpose: str) -> str:
        """A consumer group that has never been used, so it reads its topic from the beginning."""
        return f"bench-{purpose}-{uuid.uuid4().hex[:10]}"


#: Broker start attempts. A start can fail by chance: ``LocalKafkaBroker`` draws a random cluster id
#: that starts with "-" about once in 64, and ``kafka-storage format -t -...`` then rejects it.
START_ATTEMPTS = 3


@contextmanager
def local_cluster() -> Iterator[Cluster]:
    """Start the local KRaft broker for the duration of the block, then delete its data."""
    broker = _start_broker()
    try:
        yield Cluster(broker=broker, session=time.strftime("%Y%m%d-%H%M%S"))
    finally:
        broker.cleanup()


def _start_broker() -> LocalKafkaBroker:
    """A started broker; retried on failure, since one start in 64 fails on its random cluster id."""
    for attempt in range(1, START_ATTEMPTS + 1):
        broker = LocalKafkaBroker()
        try:
            return broker.start()
        except BrokerError as error:
            broker.cleanup()
            if attempt == START_ATTEMPTS:
                raise
            first_line = str(error).splitlines()[0]
            say(f"the broker did not start ({first_line}); trying again")
    raise AssertionError("unreachable")


class _DeliveryErrors:
    """A delivery callback that remembers failures, so producing fails loudly instead of silently."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, error: KafkaError | None, message: KafkaMessage) -> None:
        if error is not None:
            self.errors.append(error.str())

    def raise_if_any(self, what: str) -> None:
        if self.errors:
            raise BenchmarkError(f"{what}: {len(self.errors)} messages were not delivered, e.g. {self.errors[0]}")


def _produce(
    producer: Producer,
    topic: str,
    partition: int,
    value: bytes,
    key: bytes,
    *,
    headers: Headers | None = None,
    on_delivery: _DeliveryErrors | None = None,
) -> None:
    """``produce()``, waiting for room in the local queue instead of failing when it is full."""
    while True:
        try:
            producer.produce(topic, value, key=key, partition=partition, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


def produce_bulk(bootstrap: str, topic: str, count: int, payload_bytes: int, partitions: int) -> float:
    """
    Produce ``count`` JSON messages round-robin over ``partitions``, wait for all; return the seconds taken.

    Partitions get equal shares, so that a consumer group splits the work evenly.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000})
    errors = _DeliveryErrors()
    started = time.monotonic()
    for index in range(count):
        _produce(
            producer,
            topic,
            index % partitions,
            make_payload(index, payload_bytes),
            make_key(index),
            on_delivery=errors,
        )
        if index % 1_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise BenchmarkError(f"producing to {topic}: messages still undelivered after 120s")
    errors.raise_if_any(f"producing to {topic}")
    return time.monotonic() - started


def latency_producer(bootstrap: str) -> Producer:
    """
    A producer that sends each message at once (``linger.ms=0``).

    librdkafka's default ``linger.ms`` of 5 ms would add up to 5 ms of batching to every
    latency; with 0 the figure is dominated by the broker and the consumer.
    """
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})


def warm_up(
    producer: Producer,
    topic: str,
    partitions: int,
    payload_bytes: int,
    ready: Callable[[], bool],
    timeout: float,
) -> int:
    """Send one unmeasured message every 100 ms until ``ready()``; return how many were sent."""
    deadline = time.monotonic() + timeout
    sent = 0
    while not ready():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"no warm-up message of {topic} was handled within {timeout:g}s")
        _produce(
            producer,
            topic,
            sent % partitions,
            make_payload(sent, payload_bytes),
            make_key(sent),
            headers=[(WARMUP_HEADER, b"1")],
        )
        producer.poll(0)
        sent += 1
        time.sleep(0.1)
    return sent


def produce_paced(
    producer: Producer, topic: str, count: int, rate: float, partitions: int, payload_bytes: int
) -> float:
    """
    Produce ``count`` messages at ``rate`` per second, each stamped with its send time; return the achieved rate.

    Message ``i`` is due at ``start + i / rate``; the loop sleeps until then, reads
    ``time.time_ns()`` into the ``bench-sent-ns`` header and calls ``produce()`` right away.
    Payloads are built beforehand so that their cost does not delay the schedule.
    """
    payloads = [(make_payload(index, payload_bytes), make_key(index)) for index in range(count)]
    errors = _DeliveryErrors()
    started = time.perf_counter()
    for index, (value, key) in enumerate(payloads):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        headers: Headers = [(SENT_NS_HEADER, str(time.time_ns()).encode())]
        _produce(producer, topic, index % partitions, value, key, headers=headers, on_delivery=errors)
        producer.poll(0)
    elapsed = time.perf_counter() - started
    if producer.flush(60) != 0:
        raise BenchmarkError(f"producing to {topic}: messages still undelivered after 60s")
    errors.raise_if_any(f"producing to {topic}")
    return (count - 1) / elapsed if elapsed > 0 else float("nan")
