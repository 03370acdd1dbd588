"""Progress lines on stderr, so that stdout holds only the results table."""

import sys
import time


def say(text: str) -> None:
    """Print one timestamped progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
