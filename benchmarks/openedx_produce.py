"""
The Open edX benchmark's producer: N events sent with edx-event-bus-kafka's own producer.

Events are ``SESSION_LOGIN_COMPLETED`` with a distinct user each (keyed by username, as Open edX
keys that signal), Avro in the Confluent wire format with CloudEvents headers, the schemas
registered by the producer's ``AvroSerializer`` in the orchestrator's registry. Run as::

    python -m benchmarks.openedx_produce --topic T --count N

with ``BENCH_SCHEMA_REGISTRY_URL`` and ``KAFKA_BOOTSTRAP_SERVERS`` in the environment.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Produce ``--count`` events to ``--topic`` and wait until the broker has every one."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.openedx_produce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from edx_event_bus_kafka.internal.producer import create_producer
    from openedx_events.data import EventsMetadata
    from openedx_events.learning.data import UserData, UserPersonalData
    from openedx_events.learning.signals import SESSION_LOGIN_COMPLETED

    producer = create_producer()
    if producer is None:
        raise SystemExit("edx-event-bus-kafka could not make its producer from the settings")
    for index in range(args.count):
        pii = UserPersonalData(username=f"user-{index}", email=f"user-{index}@example.com", name=f"User {index}")
        producer.send(
            signal=SESSION_LOGIN_COMPLETED,
            topic=args.topic,
            event_key_field="user.pii.username",
            event_data={"user": UserData(id=index, is_active=True, pii=pii)},
            event_metadata=EventsMetadata(event_type=SESSION_LOGIN_COMPLETED.event_type, minorversion=0),
        )
    left = producer.producer.flush(120)
    if left:
        raise SystemExit(f"{left} events were not delivered within 120s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
