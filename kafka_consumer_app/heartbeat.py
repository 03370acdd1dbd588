"""
Where the consume loop's heartbeat file lives, shared by the settings and the Django-free probe.

This module imports only the standard library: :mod:`kafka_consumer_app.probe` must start in
tens of milliseconds and work when the app's settings are broken.
"""

from __future__ import annotations

import os
import re
import tempfile


def default_heartbeat_file(topic: str) -> str:
    """The heartbeat file of ``topic`` when HEARTBEAT_FILE is not set: ``<tmp>/kafka-consumer-<topic>.heartbeat``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", topic)
    return os.path.join(tempfile.gettempdir(), f"kafka-consumer-{safe}.heartbeat")
