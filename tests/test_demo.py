"""
``make demo``, the README's first command, keeps working: the example service's consumer on a broker of its own.

The demo starts the broker launcher, runs ``consume_events`` as its own process, produces its sample
events (one of them malformed), and exits 0 only when every event was handled once, the malformed one
was parked, the positions were written with the receivers' rows and the consumer stopped cleanly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.broker


def test_the_demo_handles_its_events_parks_the_malformed_one_and_exits_0():
    # As from a developer's shell: none of the suite's own settings, but its jar cache and Kafka release.
    env = {
        key: value
        for key, value in os.environ.items()
        if key.startswith("KAFKA_CONSUMER_APP_") or not key.startswith(("KAFKA_", "DJANGO_"))
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "example" / "demo.py"), "--no-console"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "consume_events exited with 0." in output
    assert "(7 messages audited, 5 orders, duplicate absorbed)" in output
    assert "Parked in orders-dlt: 1 message" in output
    assert "Traceback" not in output
