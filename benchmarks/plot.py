"""``docs/benchmarks.png``: one panel per scenario that ran, drawn with matplotlib's Agg backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render straight to a file

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmarks.config import TARGETS
from benchmarks.report import MB, Results
from benchmarks.scenarios.openedx import VARIANTS as OPENEDX_VARIANTS
from benchmarks.scenarios.throughput import VARIANTS

TARGET_STYLE: dict[str, Any] = {"color": "tab:red", "linestyle": "--", "linewidth": 1}


#: The short label and colour of each throughput variant's bar.
THROUGHPUT_BARS = {
    "reference": ("(a) reference", "tab:gray"),
    "noop": ("(b) no-op", "tab:blue"),
    "orm": ("(c) ORM\nSQLite", "tab:green"),
    "orm-batch": ("(d) batch\nSQLite", "tab:olive"),
    "orm-pg": ("(e) ORM\nPostgreSQL", "tab:cyan"),
    "orm-batch-pg": ("(f) batch\nPostgreSQL", "tab:purple"),
}


def draw_throughput(axes: Axes, results: Results) -> None:
    """Bars of the median msgs/s of (a) to (f), with min-max whiskers, CPU µs/msg on each, and the targets."""
    result = results.throughput
    assert result is not None
    ran = [key for key, _ in VARIANTS if key in result.rates]
    summaries = [result.summary(key) for key in ran]
    medians = [item.median for item in summaries]
    errors = [[m - item.minimum for m, item in zip(medians, summaries, strict=True)]]
    errors.append([item.maximum - m for m, item in zip(medians, summaries, strict=True)])
    labels, colors = zip(*(THROUGHPUT_BARS[key] for key in ran), strict=True)
    bars = axes.bar(labels, medians, yerr=errors, capsize=4, color=colors)
    axes.axhline(medians[0] * TARGETS.noop_ratio, label=f"{TARGETS.noop_ratio:.0%} of (a)", **TARGET_STYLE)
    for bar, key in zip(bars, ran, strict=True):
        cpu = result.cpu_summary(key).median
        axes.annotate(
            f"{cpu:.0f} µs\nCPU/msg",
            (bar.get_x() + bar.get_width() / 2, bar.get_height() / 2),
            ha="center",
            fontsize="x-small",
        )
    if "orm-pg" in ran and "orm-batch-pg" in ran:
        batch = bars[ran.index("orm-batch-pg")]
        target = result.summary("orm-pg").median * TARGETS.postgres_batch_ratio
        axes.hlines(target, batch.get_x(), batch.get_x() + batch.get_width(), color="tab:purple", linestyle="--")
        axes.plot([], [], color="tab:purple", linestyle="--", label=f"{TARGETS.postgres_batch_ratio:g} times (e)")
    axes.set_title(f"Throughput, {result.messages:,} msgs")
    axes.set_ylabel("messages / s")
    axes.tick_params(axis="x", labelsize="x-small")
    axes.legend(fontsize="small")


def draw_openedx(axes: Axes, results: Results) -> None:
    """Bars of the median msgs/s of the loop, ours and edx-event-bus-kafka's, with CPU µs/msg on each."""
    result = results.openedx
    assert result is not None
    summaries = [result.summary(key) for key, _ in OPENEDX_VARIANTS]
    medians = [item.median for item in summaries]
    errors = [[m - item.minimum for m, item in zip(medians, summaries, strict=True)]]
    errors.append([item.maximum - m for m, item in zip(medians, summaries, strict=True)])
    labels = ["(a) hand-written", "(b) consume_events", "(c) edx-event-bus-kafka"]
    bars = axes.bar(labels, medians, yerr=errors, capsize=4, color=["tab:gray", "tab:blue", "tab:orange"])
    for bar, (key, _) in zip(bars, OPENEDX_VARIANTS, strict=True):
        cpu = result.cpu_summary(key).median
        axes.annotate(f"{cpu:.0f} µs CPU/msg", (bar.get_x() + bar.get_width() / 2, bar.get_height() / 2), ha="center")
    axes.axhline(
        medians[0] * TARGETS.openedx_loop_ratio, label=f"{TARGETS.openedx_loop_ratio:.0%} of (a)", **TARGET_STYLE
    )
    peer_target = medians[2] * TARGETS.openedx_peer_ratio
    axes.axhline(peer_target, label=f"{TARGETS.openedx_peer_ratio:g} times (c)", color="tab:purple", linestyle="--")
    axes.set_title(f"Open edX events, {result.messages:,} msgs")
    axes.set_ylabel("messages / s")
    axes.tick_params(axis="x", labelsize="small")
    axes.legend(fontsize="small")


def draw_latency(axes: Axes, results: Results) -> None:
    """Cumulative distributions of the latency, end to end and from the broker's append."""
    result = results.latency
    assert result is not None
    for values, label, color in (
        (result.latencies_ms, "produce → receiver", "tab:blue"),
        (result.from_broker_ms, "broker append → receiver", "tab:green"),
    ):
        ordered = sorted(max(value, 0.1) for value in values)  # the log axis cannot show 0
        axes.plot(ordered, [(index + 1) / len(ordered) for index in range(len(ordered))], color=color, label=label)
    for fraction in (0.5, 0.95, 0.99):
        value = result.percentile(fraction)
        axes.plot([value], [fraction], "o", color="tab:blue")
        axes.annotate(
            f"p{fraction * 100:g} {value:.1f} ms", (value, fraction), xytext=(5, -12), textcoords="offset points"
        )
    axes.axvline(TARGETS.latency_p99_ms, label=f"p99 target {TARGETS.latency_p99_ms:g} ms", **TARGET_STYLE)
    axes.set_xscale("log")
    axes.set_title(f"Latency at {result.target_rate:,}/s")
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("fraction of messages")
    axes.legend(fontsize="small", loc="lower right")


def draw_memory(axes: Axes, results: Results) -> None:
    """RSS against messages handled."""
    result = results.memory
    assert result is not None
    counts = sorted(result.rss_bytes)
    axes.plot(counts, [result.rss_bytes[count] / MB for count in counts], marker=".", color="tab:purple")
    axes.axhline(result.first / MB + TARGETS.rss_growth_mb, label="first checkpoint + target growth", **TARGET_STYLE)
    axes.set_title("Memory, no-op receiver")
    axes.set_xlabel("messages handled")
    axes.set_ylabel("RSS (MB)")
    axes.set_ylim(bottom=0)
    axes.legend(fontsize="small", loc="lower right")


def draw_scaling(axes: Axes, results: Results) -> None:
    """Total msgs/s against processes, next to linear scaling and the target."""
    result = results.scaling
    assert result is not None
    counts = [step.processes for step in result.steps]
    single = next((step.rate for step in result.steps if step.processes == 1), result.steps[0].rate)
    axes.plot(counts, [step.rate for step in result.steps], marker="o", label="measured", color="tab:blue")
    axes.plot(counts, [single * count for count in counts], color="tab:gray", linestyle=":", label="linear")
    target = [single * count * TARGETS.scaling_efficiency for count in counts]
    axes.plot(counts, target, label=f"{TARGETS.scaling_efficiency:.0%} of linear", **TARGET_STYLE)
    if results.metadata.cpu_count:
        axes.axvline(results.metadata.cpu_count, color="tab:orange", linewidth=1, label="core count")
    axes.set_xticks(counts)
    axes.set_title(f"Scaling, {result.sleep_ms:g} ms receiver")
    axes.set_xlabel("consume_events processes in the group")
    axes.set_ylabel("total messages / s")
    axes.legend(fontsize="small")


def draw_concurrency(axes: Axes, results: Results) -> None:
    """Two halves of one panel: msgs/s at CONCURRENCY 1 and N (5 ms receiver); RSS over time under a backlog."""
    result = results.concurrency
    assert result is not None
    spec = axes.get_subplotspec()
    assert spec is not None
    figure = axes.get_figure()
    assert isinstance(figure, Figure)
    axes.remove()
    left, right = (figure.add_subplot(cell) for cell in spec.subgridspec(1, 2, wspace=0.45))
    runs = (result.sequential, result.concurrent)
    bars = left.bar([f"C={run.threads}" for run in runs], [run.rate for run in runs], color=["tab:gray", "tab:blue"])
    left.bar_label(bars, labels=[f"{run.rate:,.0f}\n{run.cpu_us:.0f} µs" for run in runs], fontsize="x-small")
    left.axhline(
        result.sequential.rate * TARGETS.concurrency_ratio,
        label=f"{TARGETS.concurrency_ratio:g} times C=1",
        **TARGET_STYLE,
    )
    left.set_ylim(0, max(result.concurrent.rate, result.sequential.rate * TARGETS.concurrency_ratio) * 1.25)
    left.set_title(f"Concurrency, {result.sleep_ms:g} ms receiver", fontsize="medium")
    left.set_ylabel("messages / s (and CPU µs/msg)")
    left.legend(fontsize="x-small", loc="upper left")
    backlog = result.backlog
    counts = sorted(backlog.rss_bytes)
    right.plot(
        [backlog.seconds[c] for c in counts],
        [backlog.rss_bytes[c] / MB for c in counts],
        linewidth=0.8,
        color="tab:purple",
    )
    first, last = backlog.windows()
    for window in (first, last):
        right.axvspan(backlog.seconds[window[0]], backlog.seconds[window[-1]], color="tab:gray", alpha=0.2)
    limit = backlog.peak(first) / MB + TARGETS.backlog_rss_growth_mb
    right.axhline(limit, label="first peak + target", **TARGET_STYLE)
    right.set_title(f"Backlog, C={backlog.threads}, {backlog.sleep_ms:g} ms", fontsize="medium")
    right.set_xlabel("seconds since first message")
    right.set_ylabel("RSS (MB)")
    right.set_ylim(bottom=0)
    right.legend(fontsize="x-small", loc="lower right")


def draw_startup(axes: Axes, results: Results) -> None:
    """Each run's startup, split into Python + Django setup and Kafka."""
    result = results.startup
    assert result is not None
    runs = [str(index + 1) for index in range(len(result.total_s))]
    axes.bar(runs, result.django_s, label="Python + Django setup", color="tab:blue")
    axes.bar(
        runs, result.kafka_s, bottom=result.django_s, label="command + Kafka connect, join, fetch", color="tab:cyan"
    )
    axes.axhline(TARGETS.startup_s, label=f"target {TARGETS.startup_s:g} s", **TARGET_STYLE)
    axes.set_title("Startup to first message")
    axes.set_xlabel("run")
    axes.set_ylabel("seconds")
    axes.set_ylim(0, max(TARGETS.startup_s, *result.total_s) * 1.5)  # room for the legend above the bars
    axes.legend(fontsize="small", loc="upper left")


PANELS: dict[str, Callable[[Axes, Results], None]] = {
    "throughput": draw_throughput,
    "openedx": draw_openedx,
    "latency": draw_latency,
    "memory": draw_memory,
    "scaling": draw_scaling,
    "concurrency": draw_concurrency,
    "startup": draw_startup,
}


def write_png(results: Results, path: Path) -> None:
    """Draw a panel for every scenario that ran, three per row, into ``path``."""
    drawn = [(name, draw) for name, draw in PANELS.items() if getattr(results, name) is not None]
    columns = min(3, len(drawn))
    rows = -(-len(drawn) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.2 * rows), squeeze=False)
    for axes, (_, draw) in zip(grid.flat, drawn, strict=False):
        draw(axes, results)
    for axes in list(grid.flat)[len(drawn) :]:
        axes.set_visible(False)
    mode = " (--quick)" if results.metadata.quick else ""
    figure.suptitle(
        f"kafka_consumer_app benchmarks{mode}, {results.metadata.date}, os.cpu_count()={results.metadata.cpu_count}"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
