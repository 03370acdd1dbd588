#!/usr/bin/env python
"""The benchmark project's manage.py: ``python benchmarks/manage.py consume_events --topic T``."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Import from the checkout's root (benchmarks.settings, kafka_consumer_app), not from this
    # directory, whose module names (settings, report, ...) would otherwise shadow others.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
