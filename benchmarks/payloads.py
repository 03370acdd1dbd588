"""
The messages the benchmarks produce, and the headers the latency benchmark adds.

Shared by the orchestrator (which produces) and the receivers (which read the headers); it
imports neither Django nor confluent-kafka.
"""

from __future__ import annotations

import json

#: Header holding ``time.time_ns()`` at the moment the latency benchmark called ``produce()``.
SENT_NS_HEADER = "bench-sent-ns"
#: Header of the latency benchmark's warm-up messages, which are handled but not measured.
WARMUP_HEADER = "bench-warmup"

_KINDS = ("order.placed", "order.paid", "order.shipped", "order.cancelled")


def make_payload(index: int, size: int) -> bytes:
    """
    A JSON object of exactly ``size`` bytes (at least its fixed fields), shaped like a business event.

    Nested fields make decoding do real work; a ``note`` string pads it to the size.
    """
    event = {
        "id": index,
        "kind": _KINDS[index % len(_KINDS)],
        "customer": {"id": 100_000 + index % 5_000, "country": "FR", "tier": "gold"},
        "items": [{"sku": f"SKU-{index % 977:05d}", "quantity": 1 + index % 3, "price_cents": 1_999}],
        "total_cents": 1_999 * (1 + index % 3),
        "note": "",
    }
    shortfall = size - len(json.dumps(event, separators=(",", ":")).encode())
    event["note"] = "x" * max(shortfall, 0)
    return json.dumps(event, separators=(",", ":")).encode()


def make_key(index: int) -> bytes:
    """The message key: the customer id, as a service keying by entity would."""
    return f"customer-{100_000 + index % 5_000}".encode()
