"""
``python -m benchmarks``: start a local broker (and a PostgreSQL server), run the chosen scenarios, print and
write the results.

Progress goes to stderr, the results table to stdout. Each run keeps the measured processes'
logs and result files, and ``results.json``, in ``benchmarks/results/<date-time>/``
(git-ignored); ``docs/benchmarks.rst`` and ``docs/benchmarks.png`` are rewritten unless
``--no-docs`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from benchmarks.cluster import BenchmarkError, local_cluster
from benchmarks.config import QUICK, SCENARIOS, BenchSettings
from benchmarks.context import Context
from benchmarks.databases import local_postgres
from benchmarks.processes import REPO_ROOT
from benchmarks.progress import say
from benchmarks.report import Metadata, Results, render_rst, render_text, to_json
from kafka_consumer_app.testing.broker import BrokerError
from kafka_consumer_app.testing.postgres import LocalPostgres, PostgresError

DOCS = REPO_ROOT / "docs"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


def positive_int(text: str) -> int:
    """argparse type: an integer above zero (underscores allowed: 200_000)."""
    value = int(text.replace("_", ""))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above zero."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def int_list(text: str) -> tuple[int, ...]:
    """argparse type: positive integers separated by commas, sorted, without duplicates."""
    try:
        values = tuple(sorted({positive_int(item) for item in text.split(",") if item.strip()}))
    except ValueError:
        values = ()
    if not values:
        raise argparse.ArgumentTypeError(f"must be positive integers separated by commas, not {text!r}")
    return values


def conn_max_age(text: str) -> str:
    """argparse type: ``none`` or a number of seconds, as ``CONN_MAX_AGE`` takes them."""
    value = text.strip().lower()
    if value != "none" and not value.isdigit():
        raise argparse.ArgumentTypeError(f"must be 'none' or a whole number of seconds, not {text!r}")
    return value


def scenario_list(text: str) -> tuple[str, ...]:
    """argparse type: scenario names separated by commas, returned in their running order."""
    names = {item.strip() for item in text.split(",") if item.strip()}
    unknown = sorted(names - set(SCENARIOS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(SCENARIOS)} (got {text!r})")
    return tuple(name for name in SCENARIOS if name in names)


#: The size options: (field of BenchSettings, argparse type, help).
SIZE_OPTIONS: tuple[tuple[str, Callable[[str], object], str], ...] = (
    ("messages", positive_int, "messages on the throughput topic (default 200,000; quick 20,000)"),
    ("openedx_messages", positive_int, "Open edX events on the openedx topic (default 50,000; quick 5,000)"),
    ("payload_bytes", positive_int, "bytes of each JSON message (default 300)"),
    ("partitions", positive_int, "partitions of every topic (default 6)"),
    ("repetitions", positive_int, "alternating throughput rounds, and startup runs (default 3; quick 1)"),
    ("latency_messages", positive_int, "measured messages of the latency run (default 10,000; quick 2,000)"),
    ("latency_rate", positive_int, "messages per second of the latency run (default 1,000)"),
    ("memory_checkpoints", int_list, "message counts where RSS is read (default 300000,1500000; quick 10000,100000)"),
    ("scaling_processes", int_list, "numbers of consume_events processes to try (default 1,2,3)"),
    ("scaling_seconds", positive_float, "seconds each scaling step is measured (default 20; quick 8)"),
    ("scaling_sleep_ms", positive_float, "milliseconds the scaling receiver sleeps per message (default 5)"),
    ("concurrency_threads", positive_int, "CONCURRENCY compared with 1 by the concurrency benchmark (default 32)"),
    (
        "concurrency_messages",
        positive_int,
        "messages of its 5 ms receiver, at CONCURRENCY>1 (default 80,000; quick 20,000)",
    ),
    ("concurrency_backlog", positive_int, "messages of its backlog, 1 ms receiver (default 1,000,000; quick 500,000)"),
    ("concurrency_backlog_seconds", positive_float, "seconds of its backlog run (default 45; quick 10)"),
    ("orm_conn_max_age", conn_max_age, "CONN_MAX_AGE of the ORM receivers' databases: none or seconds (default none)"),
)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark kafka_consumer_app against a local Apache Kafka broker that it starts itself.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and one run each: a smoke run")
    parser.add_argument(
        "--only",
        type=scenario_list,
        default=SCENARIOS,
        metavar="NAMES",
        help=f"comma-separated scenarios to run, among {','.join(SCENARIOS)} (default: all)",
    )
    sizes = parser.add_argument_group("sizes (override the defaults, and --quick's)")
    for name, kind, text in SIZE_OPTIONS:
        sizes.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=text)
    output = parser.add_argument_group("output")
    output.add_argument("--rst", type=Path, default=DOCS / "benchmarks.rst", help="the reStructuredText report")
    output.add_argument("--png", type=Path, default=DOCS / "benchmarks.png", help="the plot")
    output.add_argument("--no-docs", action="store_true", help="print the table only; leave docs/ alone")
    output.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where each run's logs and results.json go"
    )
    return parser


def settings_from(args: argparse.Namespace) -> BenchSettings:
    """The defaults (or ``--quick``'s), with every size option given on the command line applied."""
    base = QUICK if args.quick else BenchSettings()
    overrides = {name: getattr(args, name) for name, _, _ in SIZE_OPTIONS if getattr(args, name) is not None}
    settings = dataclasses.replace(base, **overrides)
    if min(settings.messages, settings.openedx_messages, settings.latency_messages) < 2:
        raise SystemExit(
            "error: --messages, --openedx-messages and --latency-messages must be at least 2 (a rate needs two)"
        )
    return settings


def run_scenarios(results: Results, scenarios: tuple[str, ...], workdir: Path) -> None:
    """Start the broker (and PostgreSQL, if needed) and run each scenario in turn, storing its result on ``results``."""
    from benchmarks.scenarios import NEEDS_POSTGRES, RUNNERS  # imported late: loading it is not needed for --help

    with ExitStack() as servers:  # stopped on the way out, on errors too
        say("starting the local Apache Kafka broker")
        cluster = servers.enter_context(local_cluster())
        say(f"broker on {cluster.bootstrap}; logs and raw results in {_shown(workdir)}")
        postgres: LocalPostgres | None = None
        if NEEDS_POSTGRES.intersection(scenarios):
            say("starting the local PostgreSQL server")
            postgres = servers.enter_context(local_postgres())
            say(f"PostgreSQL on {postgres.host}:{postgres.port}")
        context = Context(cluster, results.settings, workdir, postgres)
        for name in scenarios:
            started = time.monotonic()
            say(f"=== {name}")
            setattr(results, name, RUNNERS[name](context))
            say(f"=== {name} done in {time.monotonic() - started:.0f}s")


def write_docs(results: Results, rst: Path, png: Path) -> None:
    """Write the plot, then the report that shows it."""
    from benchmarks.plot import write_png  # imports matplotlib, only needed here

    write_png(results, png)
    rst.parent.mkdir(parents=True, exist_ok=True)
    image = os.path.relpath(png.resolve(), rst.resolve().parent)
    rst.write_text(render_rst(results, image), encoding="utf-8")
    say(f"wrote {_shown(rst)} and {_shown(png)}")


def _shown(path: Path) -> str:
    """``path`` relative to the checkout when inside it (no machine-specific prefixes in output)."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; return 0, or 1 when a benchmark could not produce a trustworthy figure."""
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    workdir = args.results_dir / time.strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True, exist_ok=True)
    results = Results(settings, Metadata.collect(args.quick))
    load_at_start = os.getloadavg()[0]
    try:
        run_scenarios(results, args.only, workdir)
    except (BenchmarkError, BrokerError, PostgresError) as error:
        say(f"error: {error}")
        say(f"the processes' logs are in {_shown(workdir)}")
        return 1
    results.load_average = (load_at_start, os.getloadavg()[0])
    (workdir / "results.json").write_text(to_json(results), encoding="utf-8")
    print(render_text(results), flush=True)
    if not args.no_docs:
        write_docs(results, args.rst, args.png)
    return 0
