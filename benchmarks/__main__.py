"""``python -m benchmarks``: run the benchmarks and print the results table."""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
