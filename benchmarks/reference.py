"""
The reference consumer of the throughput benchmark: a hand-written confluent-kafka poll loop.

It does the work a careful hand-written at-least-once consumer does, and no more, so that the
ratio to it is kafka_consumer_app's own overhead:

- the client configuration that ``EventConsumer.client_config()`` builds (earliest reset,
  cooperative-sticky assignment, ``enable.auto.offset.store=false``, background commits);
- per message: ``poll()``, decode the key as UTF-8 and the value as JSON (what the app's
  default ``KEY_DESERIALIZER='str'`` and ``DESERIALIZER='json'`` do), hand it to "the handler"
  (the same :class:`~benchmarks.recorder.Recorder` call the benchmark receivers make), then
  ``store_offsets()``;
- a synchronous commit and ``close()`` at the end, outside the timed window.

Run by the orchestrator as::

    python -m benchmarks.reference --bootstrap 127.0.0.1:PORT --topic T --group-id G --max-messages N

with the ``BENCH_*`` recorder variables in the environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import Message as KafkaMessage

from benchmarks.recorder import Recorder


def client_config(bootstrap: str, group_id: str) -> dict[str, Any]:
    """The librdkafka options, matching what kafka_consumer_app sets for a topic without overrides."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.offset.store": False,
        "enable.auto.commit": True,
    }


def handle(raw: KafkaMessage, recorder: Recorder) -> None:
    """Decode the key and the value as kafka_consumer_app's defaults do, then record the message."""
    key = raw.key()
    if key is not None:
        key.decode("utf-8")
    value = raw.value()
    if value is not None:
        json.loads(value)
    recorder.record()


def consume(consumer: Consumer, max_messages: int, recorder: Recorder, poll_timeout: float) -> int:
    """Poll, handle and store offsets until ``max_messages`` were handled; return the count."""
    handled = 0
    while handled < max_messages:
        raw = consumer.poll(poll_timeout)
        if raw is None:
            continue
        error = raw.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            continue
        handle(raw, recorder)
        consumer.store_offsets(message=raw)
        handled += 1
    return handled


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of the reference consumer."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="host:port of the broker")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group-id", required=True)
    parser.add_argument("--max-messages", type=int, required=True)
    parser.add_argument("--poll-timeout", type=float, default=1.0, help="as KAFKA_CONSUMER['POLL_TIMEOUT']")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Consume ``--max-messages`` messages of ``--topic``, commit, close."""
    args = parse_args(argv)
    recorder = Recorder.from_env()
    consumer = Consumer(client_config(args.bootstrap, args.group_id))
    try:
        consumer.subscribe([args.topic])
        consume(consumer, args.max_messages, recorder, args.poll_timeout)
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
