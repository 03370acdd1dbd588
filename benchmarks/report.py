"""
The results: their metadata, the table (text and reStructuredText) and the JSON dump.

The table printed on stdout and the one in ``docs/benchmarks.rst`` are the same grid table,
rendered once by :func:`render_table`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.config import TARGETS, BenchSettings
from benchmarks.scenarios.concurrency import BacklogRun, ConcurrencyResult
from benchmarks.scenarios.latency import LatencyResult
from benchmarks.scenarios.memory import MemoryResult
from benchmarks.scenarios.openedx import VARIANTS as OPENEDX_VARIANTS
from benchmarks.scenarios.openedx import OpenEdxResult
from benchmarks.scenarios.scaling import ScalingResult
from benchmarks.scenarios.startup import StartupResult
from benchmarks.scenarios.throughput import ORM_VARIANTS, VARIANTS, ThroughputResult
from benchmarks.stats import Summary

HEADERS = ("Benchmark", "Metric", "Result", "Target", "Status")
#: Width of the prose in docs/benchmarks.rst.
RST_WIDTH = 96
MB = 1_000_000


@dataclass(frozen=True)
class Metadata:
    """Where and with what the figures were measured."""

    date: str
    cpu_count: int | None
    python: str
    platform: str
    django: str
    confluent_kafka: str
    librdkafka: str
    kafka: str
    #: The PostgreSQL server's version (of the installed binaries that LocalPostgres runs).
    postgresql: str
    app_version: str
    git_commit: str
    quick: bool

    @classmethod
    def collect(cls, quick: bool) -> Metadata:
        """Read the versions of everything involved, and the time now."""
        from importlib.metadata import version

        import confluent_kafka
        import django

        import kafka_consumer_app
        from kafka_consumer_app.testing.broker import kafka_version

        return cls(
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            cpu_count=os.cpu_count(),
            python=platform.python_version(),
            platform=platform.platform(terse=True),
            django=django.get_version(),
            confluent_kafka=version("confluent-kafka"),
            librdkafka=confluent_kafka.libversion()[0],
            kafka=kafka_version(),
            postgresql=_postgresql_version(),
            app_version=kafka_consumer_app.__version__,
            git_commit=_git_commit(),
            quick=quick,
        )


@dataclass
class Results:
    """Everything one ``python -m benchmarks`` run measured; scenarios not run stay None."""

    settings: BenchSettings
    metadata: Metadata
    throughput: ThroughputResult | None = None
    openedx: OpenEdxResult | None = None
    latency: LatencyResult | None = None
    memory: MemoryResult | None = None
    scaling: ScalingResult | None = None
    concurrency: ConcurrencyResult | None = None
    startup: StartupResult | None = None
    #: The 1-minute load average when the run started and when it ended.
    load_average: tuple[float, float] | None = None

    def busy_warning(self) -> str | None:
        """A warning when other work competed for the cores during the run, else None."""
        cores = self.metadata.cpu_count or 1
        if self.load_average is None or max(self.load_average) <= cores:
            return None
        start, end = self.load_average
        return (
            f"WARNING: the machine was busy (1-minute load average {start:.1f} at the start, {end:.1f} at the end, "
            f"on {cores} cores): other processes competed with the broker and the consumers, so the figures are "
            "pessimistic and noisy."
        )


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    benchmark: str
    metric: str
    result: str
    target: str = ""
    status: str = ""

    def cells(self) -> tuple[str, ...]:
        """The row's cells, in :data:`HEADERS` order."""
        return (self.benchmark, self.metric, self.result, self.target, self.status)


def verdict(passed: bool) -> str:
    """The Status cell of a row with a target."""
    return "PASS" if passed else "FAIL"


def build_rows(results: Results) -> list[Row]:
    """Every row of the table, scenario by scenario, for the scenarios that ran."""
    rows: list[Row] = []
    if results.throughput is not None:
        rows += throughput_rows(results.throughput, results.settings)
    if results.openedx is not None:
        rows += openedx_rows(results.openedx, results.settings)
    if results.latency is not None:
        rows += latency_rows(results.latency)
    if results.memory is not None:
        rows += memory_rows(results.memory)
    if results.scaling is not None:
        rows += scaling_rows(results.scaling, results.metadata.cpu_count or 1)
    if results.concurrency is not None:
        rows += concurrency_rows(results.concurrency)
    if results.startup is not None:
        rows += startup_rows(results.startup, results.settings)
    return rows


def throughput_rows(result: ThroughputResult, settings: BenchSettings) -> list[Row]:
    """msgs/s and CPU µs/msg of (a) to (f), then b/a and c/a, f/e (PostgreSQL, the batch target) and d/c (SQLite)."""
    title = f"Throughput ({result.messages:,} msgs, {_runs(settings)}, CONCURRENCY=1)"
    labels = dict(VARIANTS)
    for key in ORM_VARIANTS:
        labels[key] += f" (CONN_MAX_AGE={settings.orm_conn_max_age.capitalize()})"
    ran = [key for key, _ in VARIANTS if key in result.rates]  # results written before (d), (e), (f) existed lack them
    rows = [Row(title, f"{labels[key]}, msgs/s", result.summary(key).format()) for key in ran]
    rows += [_cpu_row(labels[key], result.cpu_summary(key)) for key in ran]
    noop, noop_cpu = result.ratio("noop"), result.cpu_ratio("noop")
    rows += [
        _target_row("b/a, msgs/s", noop, TARGETS.noop_ratio, at_least=True),
        _target_row("b/a, CPU/msg", noop_cpu, TARGETS.noop_cpu_ratio, at_least=False),
        Row("", "c/a, msgs/s", result.ratio("orm").format("{:.3g}")),
        Row("", "c/a, CPU/msg", result.cpu_ratio("orm").format("{:.3g}")),
    ]
    return [_first_only(row, index) for index, row in enumerate(rows + _batch_rows(result))]


def _batch_rows(result: ThroughputResult) -> list[Row]:
    """Batch receiver over per-message receiver: f/e on PostgreSQL, held to the target; d/c on SQLite, informative."""
    rows: list[Row] = []
    if {"orm-pg", "orm-batch-pg"} <= result.rates.keys():
        metric = "f/e (PostgreSQL: bulk_create batch receiver over per-message), msgs/s"
        batched = result.ratio("orm-batch-pg", "orm-pg")
        rows.append(_target_row(metric, batched, TARGETS.postgres_batch_ratio, at_least=True))
        rows.append(Row("", "f/e (PostgreSQL), CPU/msg", result.cpu_ratio("orm-batch-pg", "orm-pg").format("{:.3g}")))
    if "orm-batch" in result.rates:
        metric = "d/c (SQLite, no target: bound by Django's per-object cost), msgs/s"
        rows.append(Row("", metric, result.ratio("orm-batch", "orm").format("{:.3g}")))
    return rows


def openedx_rows(result: OpenEdxResult, settings: BenchSettings) -> list[Row]:
    """msgs/s and CPU µs/msg of the loop, ours and edx-event-bus-kafka's, then ours over each."""
    title = f"Open edX events ({result.messages:,} msgs, {_runs(settings)})"
    labels = dict(OPENEDX_VARIANTS)
    rows = [Row(title, f"{labels[key]}, msgs/s", result.summary(key).format()) for key, _ in OPENEDX_VARIANTS]
    rows += [_cpu_row(labels[key], result.cpu_summary(key)) for key, _ in OPENEDX_VARIANTS]
    rows += [
        _target_row("b/c (ours/peer), msgs/s", result.ratio("ours", "peer"), TARGETS.openedx_peer_ratio, at_least=True),
        _target_row("b/a (ours/loop), msgs/s", result.ratio("ours", "loop"), TARGETS.openedx_loop_ratio, at_least=True),
        Row("", "b/c (ours/peer), CPU/msg", result.cpu_ratio("ours", "peer").format("{:.3g}")),
        Row("", "b/a (ours/loop), CPU/msg", result.cpu_ratio("ours", "loop").format("{:.3g}")),
        Row("", "c/a (peer/loop), msgs/s", result.ratio("peer", "loop").format("{:.3g}")),
    ]
    return [_first_only(row, index) for index, row in enumerate(rows)]


def _runs(settings: BenchSettings) -> str:
    return "1 run each" if settings.repetitions == 1 else f"{settings.repetitions} runs each"


def _cpu_row(label: str, summary: Summary) -> Row:
    return Row("", f"{label}, CPU µs/msg", summary.format("{:.1f}"))


def _target_row(metric: str, ratio: Summary, target: float, *, at_least: bool) -> Row:
    """A ratio with its target: ``≥ target`` when ``at_least``, else ``≤ target``."""
    passed = ratio.median >= target if at_least else ratio.median <= target
    return Row("", metric, ratio.format("{:.3g}"), f"{'≥' if at_least else '≤'} {target:.2f}", verdict(passed))


def latency_rows(result: LatencyResult) -> list[Row]:
    """p50, p95, p99 (with the target) and the maximum."""
    title = f"Latency ({result.messages:,} msgs at {result.achieved_rate:,.0f}/s)"
    p99 = result.percentile(0.99)
    rows = [
        Row(title, "produce → receiver p50", f"{result.percentile(0.50):.1f} ms"),
        Row("", "p95", f"{result.percentile(0.95):.1f} ms"),
        Row("", "p99", f"{p99:.1f} ms", f"≤ {TARGETS.latency_p99_ms:g} ms", verdict(p99 <= TARGETS.latency_p99_ms)),
        Row("", "max", f"{max(result.latencies_ms):.1f} ms"),
        Row("", "broker append → receiver p50", f"{result.from_broker_percentile(0.50):.1f} ms"),
        Row("", "broker append → receiver p99", f"{result.from_broker_percentile(0.99):.1f} ms"),
    ]
    return rows


def memory_rows(result: MemoryResult) -> list[Row]:
    """RSS at the first and last checkpoints, and the growth between them."""
    first, last = result.checkpoints[0], result.checkpoints[-1]
    growth_mb = result.growth / MB
    return [
        Row("Memory (no-op receiver)", f"RSS after {first:,} msgs", f"{result.first / MB:.1f} MB"),
        Row("", f"RSS after {last:,} msgs", f"{result.last / MB:.1f} MB"),
        Row(
            "",
            f"growth {first:,} → {last:,}",
            f"{growth_mb:+.1f} MB",
            f"≤ {TARGETS.rss_growth_mb:g} MB",
            verdict(growth_mb <= TARGETS.rss_growth_mb),
        ),
    ]


def scaling_rows(result: ScalingResult, cores: int) -> list[Row]:
    """Total msgs/s per number of processes, with the efficiency target up to the core count."""
    title = f"Scaling ({result.sleep_ms:g} ms receiver, {result.partitions} partitions)"
    rows = []
    for index, step in enumerate(result.steps):
        efficiency = result.efficiency(step)
        text = f"{step.rate:,.0f} msgs/s"
        target = status = ""
        if efficiency is not None and step.processes > 1:
            text += f" ({efficiency:.0%} of linear)"
            target = f"≥ {TARGETS.scaling_efficiency:.0%} of linear"
            if step.processes <= cores:
                status = verdict(efficiency >= TARGETS.scaling_efficiency)
            else:
                target += f" (n/a: > {cores} cores)"
        noun = "process" if step.processes == 1 else "processes"
        rows.append(Row(title if index == 0 else "", f"{step.processes} {noun}, total", text, target, status))
    return rows


def concurrency_rows(result: ConcurrencyResult) -> list[Row]:
    """msgs/s and CPU µs/msg of the I/O-bound receiver at CONCURRENCY 1 and N, their ratio; RSS under a backlog."""
    return _io_bound_rows(result) + _backlog_rows(result.backlog)


def _io_bound_rows(result: ConcurrencyResult) -> list[Row]:
    title = f"Concurrency ({result.sleep_ms:g} ms receiver, {result.partitions} partitions, 1 process)"
    runs = (result.sequential, result.concurrent)
    rows = [
        Row("", f"CONCURRENCY={run.threads}, msgs/s over {run.messages:,} msgs", f"{run.rate:,.0f}") for run in runs
    ]
    rows += [Row("", f"CONCURRENCY={run.threads}, CPU µs/msg", f"{run.cpu_us:.1f}") for run in runs]
    rows.append(
        Row(
            "",
            f"{result.concurrent.threads}/1, msgs/s",
            f"{result.ratio:.3g}",
            f"≥ {TARGETS.concurrency_ratio:g}",
            verdict(result.ratio >= TARGETS.concurrency_ratio),
        )
    )
    return [dataclasses.replace(rows[0], benchmark=title), *rows[1:]]


def _backlog_rows(backlog: BacklogRun) -> list[Row]:
    first, last = backlog.windows()
    growth_mb = backlog.growth / MB

    def window(counts: list[int]) -> str:
        seconds = f"{backlog.seconds[counts[0]]:.0f}-{backlog.seconds[counts[-1]]:.0f} s"
        return f"peak RSS, {seconds} ({counts[0]:,}-{counts[-1]:,} msgs)"

    readings = [backlog.rss_bytes[count] / MB for count in sorted(backlog.rss_bytes) if count >= first[0]]
    title = f"Backlog ({backlog.backlog:,} msgs, CONCURRENCY={backlog.threads}, {backlog.sleep_ms:g} ms receiver)"
    return [
        Row(title, window(first), f"{backlog.peak(first) / MB:.1f} MB"),
        Row("", window(last), f"{backlog.peak(last) / MB:.1f} MB"),
        Row(
            "",
            "growth of the peak",
            f"{growth_mb:+.1f} MB",
            f"≤ {TARGETS.backlog_rss_growth_mb:g} MB",
            verdict(growth_mb <= TARGETS.backlog_rss_growth_mb),
        ),
        Row("", f"RSS range of {len(readings)} readings after warm-up", f"{min(readings):.0f}-{max(readings):.0f} MB"),
        Row("", "msgs/s over the run", f"{backlog.rate:,.0f}"),
    ]


def startup_rows(result: StartupResult, settings: BenchSettings) -> list[Row]:
    """Process start to first message, and its two phases."""
    total = result.summary("total_s")
    return [
        Row(
            "Startup (1 run)" if settings.repetitions == 1 else f"Startup ({settings.repetitions} runs)",
            "process start → first message handled",
            total.format("{:.2f}", " s"),
            f"≤ {TARGETS.startup_s:g} s",
            verdict(total.median <= TARGETS.startup_s),
        ),
        Row("", "of which Python + Django setup", result.summary("django_s").format("{:.2f}", " s")),
        Row("", "of which command + Kafka connect, join, fetch", result.summary("kafka_s").format("{:.2f}", " s")),
    ]


def _first_only(row: Row, index: int) -> Row:
    return row if index == 0 else dataclasses.replace(row, benchmark="")


def render_table(rows: list[Row]) -> str:
    """A reStructuredText grid table, which reads as well in a terminal as in the docs."""
    widths = [max(len(cells[column]) for cells in [HEADERS, *(row.cells() for row in rows)]) for column in range(5)]

    def line(fill: str) -> str:
        return "+" + "+".join(fill * (width + 2) for width in widths) + "+"

    def cells(values: tuple[str, ...]) -> str:
        return "|" + "|".join(f" {value.ljust(width)} " for value, width in zip(values, widths, strict=True)) + "|"

    lines = [line("-"), cells(HEADERS), line("=")]
    for row in rows:
        lines += [cells(row.cells()), line("-")]
    return "\n".join(lines)


def summary_line(results: Results) -> str:
    """One line naming the machine and the versions, printed above the table."""
    meta = results.metadata
    mode = " (--quick)" if meta.quick else ""
    return (
        f"kafka_consumer_app benchmarks{mode}, {meta.date}, os.cpu_count()={meta.cpu_count}, "
        f"Python {meta.python}, Django {meta.django}, confluent-kafka {meta.confluent_kafka} "
        f"(librdkafka {meta.librdkafka}), Apache Kafka {meta.kafka}, PostgreSQL {meta.postgresql}"
    )


def render_text(results: Results) -> str:
    """What ``python -m benchmarks`` prints on stdout."""
    notes = ["Results are the median [min-max] of the runs; Status compares the median with the target."]
    warning = results.busy_warning()
    if warning:
        notes.append(warning)
    return "\n".join([summary_line(results), "", render_table(build_rows(results)), *notes])


def to_json(results: Results) -> str:
    """Every raw figure, for later analysis (written next to the processes' logs)."""
    return json.dumps(dataclasses.asdict(results), indent=1, default=str)


def _git_commit() -> str:
    """The checked-out commit, with ``+changes`` when the tree is dirty; ``unknown`` outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = _git(here, "rev-parse", "--short", "HEAD")
        dirty = _git(here, "status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def _postgresql_version() -> str:
    """``15.18`` or the like, from ``postgres --version``; ``unknown`` without the server binaries."""
    from kafka_consumer_app.testing.postgres import find_binaries

    bin_dir = find_binaries()
    if bin_dir is None:
        return "unknown"
    try:
        output = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    words = output.stdout.split()  # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    return words[2] if len(words) > 2 else "unknown"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def iter_settings(settings: BenchSettings) -> Iterator[tuple[str, Any]]:
    """(option, value) of every size, as ``--option`` spells it."""
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        if isinstance(value, tuple):
            value = ",".join(str(part) for part in value)
        yield "--" + item.name.replace("_", "-"), value


METHOD = """\
How it is measured
------------------

- One single-node Apache Kafka broker (KRaft) runs on 127.0.0.1 of the same machine, started by
  the benchmark (``kafka_consumer_app.testing.broker``). Every topic has the same number of
  partitions, filled round-robin. Producing happens before the measured processes start (or,
  for latency, in the orchestrator at a fixed rate) and is never inside a timed window.
- Every measured consumer is its own process in a fresh consumer group, reading from the
  start. ``consume_events`` runs as a service runs it: ``python benchmarks/manage.py
  consume_events --topic T --group-id G [--max-messages N]`` with the settings in
  ``benchmarks/settings.py`` (the app's defaults) and receivers in
  ``benchmarks/benchapp/kafka_handlers.py``.
- **Throughput** times each run from its first handled message to its last (``N - 1``
  intervals), with the same recorder call in the receivers of (b), (c) and (e) and in the
  reference (a), and the same count per batch in the batch receivers of (d) and (f) (their window
  starts after their first batch). The reference is a hand-written confluent-kafka loop with the
  same client options, the same decoding (key as UTF-8, value as JSON) and ``store_offsets()``
  per message (``enable.auto.offset.store=false``). Runs alternate a, b, c, d, e, f, a, b, ...;
  ratios are taken within each round.
- **The ORM receivers**: (c) and (e) insert one row per message with autocommit, (d) and (f) the
  same rows from a ``batch_signal`` receiver, one ``bulk_create`` per batch (``BATCH_SIZE`` 100,
  ``BATCH_WAIT`` 0.5 s, the defaults). (c) and (d) write to a SQLite file in WAL mode with
  ``synchronous=NORMAL``; (e) and (f) to PostgreSQL over TCP, on a server the benchmark starts on
  127.0.0.1 (``kafka_consumer_app.testing.postgres``) with ``fsync`` off and
  ``synchronous_commit`` on: on both, a commit writes its log without waiting for the disk. Each
  ORM run writes to a fresh copy of a migrated template (a copy of the file; ``CREATE DATABASE
  ... TEMPLATE``), and its rows are counted afterwards. ``CONN_MAX_AGE`` is in the rows' labels
  (``--orm-conn-max-age``): the app calls ``close_old_connections()`` before and after every
  message, so with Django's default of 0 it opens and closes a database connection per message;
  ``None`` keeps one connection, as a long-running worker should.
- **Batch over per-message** is reported on both databases. The target is on f/e, PostgreSQL:
  Django services run on a database server, where every per-message INSERT also costs a round
  trip and a commit, which a batch pays once per 100 messages. d/c, SQLite, has no target: an
  in-process SQLite insert costs so little that the batch receiver is bound by Django's own
  work per object (building the instances and their SQL, under the GIL), not by what batching
  saves. The CPU time of (e) and (f) is the consumer's only; the server's, in its own processes,
  is not counted, while SQLite's is part of (c)'s and (d)'s.
- **CPU per message** is the process's CPU time (``time.process_time_ns()``: every thread,
  librdkafka's included) between the first and the last measured message, over ``N - 1``, read
  by the same recorder; ratios of it are taken within each round, as for msgs/s.
- **Open edX events**: ``SESSION_LOGIN_COMPLETED`` events produced by edx-event-bus-kafka's own
  producer (Avro in the Confluent wire format, CloudEvents headers), consumed by (a) a
  hand-written confluent-kafka loop with the same ``AvroDeserializer`` that edx-event-bus-kafka
  builds and openedx-events' ``send_event_with_custom_metadata``, (b) ``consume_events`` on an
  ``OPENEDX_EVENTS`` topic, and (c) edx-event-bus-kafka's ``KafkaEventConsumer`` through
  openedx-events' ``consume_events`` (audit logging off, as (b) logs nothing per message). All
  three deliver to the same no-op receiver of the signal. The schema registry is a minimal
  Confluent-compatible HTTP server run by the orchestrator on 127.0.0.1
  (``benchmarks/registry.py``): every consumer fetches each writer schema once over HTTP, as from
  a real registry. (c) cannot be told where a new group starts nor when to stop: its group's
  offsets are committed at 0 beforehand, and it is killed once it handled every event.
- **Concurrency**: one ``consume_events`` process (``CONCURRENCY`` from ``BENCH_CONCURRENCY``;
  every other benchmark runs the default of 1), its receiver sleeping 5 ms per message as an
  I/O-bound one would wait: ``CONCURRENCY=1`` timed over the first 1/40 of the topic, then
  ``--concurrency-threads`` workers over all of it, each from its first handled message to its
  last, with CPU per message over the same window. The backlog run produces
  ``--concurrency-backlog`` messages first, then one process with that many workers and a 1 ms
  receiver works through them for ``--concurrency-backlog-seconds``, reading its RSS at evenly
  spaced message counts (several times a second), while 1.5 times librdkafka's prefetch buffer
  is still unconsumed (a backlog throughout). Pausing a partition makes librdkafka drop what it
  prefetched for it, so the RSS swings between readings: each checkpoint is the peak RSS of a
  window, the first and the last quarter of the time after a 5 s warm-up, and the growth is the
  last peak minus the first. Memory stays flat if backpressure works: librdkafka fetches at most
  ``queued.max.messages.kbytes`` ahead, and the engine pauses a partition holding ``MAX_QUEUED``
  (2,000) messages taken in and not finished.
- **Latency**: after warm-up, messages are produced at a fixed rate (``linger.ms=0``) with
  ``time.time_ns()`` in a header; the receiver subtracts it from ``time.time_ns()``. The topic
  uses ``LogAppendTime``, so the receiver also measures from the broker's append (to the
  millisecond): that part is the consumer's; the rest is the producer client and the broker.
- **Memory**: the receiver reads its own process's RSS (``psutil``) at exact message counts.
  The topic holds more messages than the last count, so that librdkafka's prefetch buffer
  (up to 64 MiB by default, part of the RSS) is full at every reading, as with a backlog.
- **Scaling**: N processes in one group, a receiver sleeping per message; the total rate is
  counted within the window where all N were consuming (after a settling second).
- **Startup**: from just before the spawn (orchestrator) to the first handled message
  (receiver), both on ``CLOCK_MONOTONIC``; the split is at the import of the receivers module
  during ``django.setup()``.
- The broker, the orchestrator and the consumers share the machine's cores, as do any other
  programs running at the time: compare figures from the same run, and read the [min-max].
  The 1-minute load average is checked at the start and the end; a warning above the table
  says when it exceeded the number of cores.

How to run
----------

``make bench`` runs every benchmark at full size and rewrites this page and its plot;
``make bench BENCH_ARGS=--quick`` is a smoke run of a few minutes. Like ``make test`` it needs
PostgreSQL's server binaries, and installs Debian's package when they are missing (``make
postgres``). ``python -m benchmarks --help`` lists the options (``--only``, every size, the
output paths). Each run keeps the measured processes' logs and raw figures in
``benchmarks/results/`` (git-ignored).
"""


def render_rst(results: Results, image: str | None) -> str:
    """The content of ``docs/benchmarks.rst``: context, the table, the plot and the method."""
    meta = results.metadata
    sizes = ", ".join(f"``{option} {value}``" for option, value in iter_settings(results.settings))
    mode = "a ``--quick`` smoke run (small sizes, one run each)" if meta.quick else "a full run"
    context = (
        f"Measured on {meta.date} by {mode}, on a machine with ``os.cpu_count()`` = {meta.cpu_count} "
        f"({meta.platform}): Python {meta.python}, Django {meta.django}, confluent-kafka {meta.confluent_kafka} "
        f"(librdkafka {meta.librdkafka}), Apache Kafka {meta.kafka}, PostgreSQL {meta.postgresql}, "
        f"kafka_consumer_app {meta.app_version} "
        f"(commit ``{meta.git_commit}``)."
    )
    parts = [
        ".. Generated by ``python -m benchmarks`` (``make bench``); do not edit by hand.",
        "",
        "Benchmarks",
        "==========",
        "",
        textwrap.fill(context, RST_WIDTH, break_long_words=False, break_on_hyphens=False),
        "",
        textwrap.fill(f"Sizes: {sizes}.", RST_WIDTH, break_long_words=False, break_on_hyphens=False),
        "",
        "Results",
        "-------",
        "",
        "Results are the median [min-max] of the runs; Status compares the median with the target.",
        "",
        render_table(build_rows(results)),
        "",
    ]
    warning = results.busy_warning()
    if warning:
        parts += [f".. warning:: {warning}", ""]
    if image:
        parts += [f".. image:: {image}", "   :alt: Plots of the figures in the table above.", ""]
    parts.append(METHOD)
    return "\n".join(parts)
