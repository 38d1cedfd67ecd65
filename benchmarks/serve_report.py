"""What the serving benchmark measured, the issue's targets, and the printed table.

The figures are plain dataclasses (written to the JSON with `asdict`); `verdicts` checks them
against the targets and `render` prints both servers side by side. See benchmarks/README.md.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata
from typing import Any

# The issue's targets.
TARGET_P50_MS_OFF = 1.0
TARGET_P99_MS_OFF = 3.0
TARGET_P99_MS_ON = 5.0
TARGET_RPS = 1_500.0
TARGET_RATIO_VS_MLFLOW = 10.0
TARGET_CLI_LEADS_PER_S = 200_000.0

# Above this many cores' worth of other processes' CPU, the figures are flagged as contended.
_BUSY_CORES = 0.25
# Below this, a server under closed-loop load was waiting on something other than its CPU.
_SATURATED_CORES = 0.9
_COLUMN = 17  # characters per column of the table


# -- results ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Latency:
    """Sequential single-lead requests over one keep-alive connection, in milliseconds."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int
    client_cpu_cores: float
    server_cpu_cores: float
    other_cores: float


@dataclass(frozen=True)
class Throughput:
    """Closed-loop single-lead requests over several keep-alive connections at once."""

    connections: int
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu_cores: float
    server_cpu_cores: float
    other_cores: float


@dataclass(frozen=True)
class ServerResult:
    """Everything measured on one server under test (one column of the table)."""

    key: str
    label: str
    ready_seconds: float
    warmup_requests: int
    latency: Latency
    throughput: Throughput
    scoring_log_rows: int | None  # rows in our scoring log after the run; None for MLflow
    floor: Latency | None  # the same requests with a wrong API key (403): no scoring at all


@dataclass(frozen=True)
class BatchResult:
    """`sal score` on a big file and on a small one (start-up overhead), end to end."""

    rows: int
    generate_seconds: float
    leads_scored: int
    seconds: float  # the median of the big file's runs
    runs_seconds: list[float]
    leads_per_second: float
    peak_rss_gib: float
    overhead_rows: int
    overhead_seconds: float  # the small file again, the model taken from sal score's cache
    first_overhead_seconds: float  # the small file first, the alias resolved through MLflow
    scoring_seconds: float  # big minus small: the time that grows with the file
    scoring_leads_per_second: float
    double_leads_scored: int  # a file twice as long (the big one is its first half)
    double_seconds: float  # the median of its runs
    double_runs_seconds: list[float]
    steady_leads_per_second: float  # the leads the long file adds over the time it adds

    @property
    def fixed_seconds(self) -> float:
        """What a run costs once, whatever the file's length: its time less its leads at the
        steady rate (start-up, the workers' first chunks, the last chunk's idle core)."""
        return self.seconds - self.leads_scored / self.steady_leads_per_second

    @property
    def target_from_leads(self) -> int | None:
        """The file length from which a run end to end meets the target (fixed cost spread thin
        enough), when the steady rate meets it at all."""
        spare = 1 / TARGET_CLI_LEADS_PER_S - 1 / self.steady_leads_per_second
        return round(self.fixed_seconds / spare) if spare > 0 else None


# -- verdicts and the table ------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    passed: bool | None  # None: not measured


def verdicts(servers: dict[str, ServerResult], batch: BatchResult | None) -> list[Verdict]:
    """Every target's verdict (the batch's only, where no server was measured)."""
    if not servers:
        return _batch_verdicts(batch)
    off, on, mlflow = servers["ours_reasons_off"], servers["ours_reasons_on"], servers["mlflow"]
    ratio = off.throughput.requests_per_second / mlflow.throughput.requests_per_second
    found = [
        Verdict(
            f"single lead, reasons off: p50 <= {TARGET_P50_MS_OFF:g} ms",
            f"{off.latency.p50_ms:.2f} ms",
            off.latency.p50_ms <= TARGET_P50_MS_OFF,
        ),
        Verdict(
            f"single lead, reasons off: p99 <= {TARGET_P99_MS_OFF:g} ms",
            f"{off.latency.p99_ms:.2f} ms",
            off.latency.p99_ms <= TARGET_P99_MS_OFF,
        ),
        Verdict(
            f"single lead, reasons on: p99 <= {TARGET_P99_MS_ON:g} ms",
            f"{on.latency.p99_ms:.2f} ms",
            on.latency.p99_ms <= TARGET_P99_MS_ON,
        ),
        Verdict(
            f"one worker, scoring log on: >= {TARGET_RPS:,.0f} req/s",
            f"{off.throughput.requests_per_second:,.0f} req/s",
            off.throughput.requests_per_second >= TARGET_RPS,
        ),
        Verdict(
            f">= {TARGET_RATIO_VS_MLFLOW:g}x mlflow serve's throughput",
            f"{ratio:.1f}x",
            ratio >= TARGET_RATIO_VS_MLFLOW,
        ),
        Verdict(
            "better p99 than mlflow serve (1 connection)",
            f"{off.latency.p99_ms:.2f} vs {mlflow.latency.p99_ms:.2f} ms",
            off.latency.p99_ms < mlflow.latency.p99_ms,
        ),
    ]
    return [*found, *_batch_verdicts(batch)]


def _batch_verdicts(batch: BatchResult | None) -> list[Verdict]:
    target = f">= {TARGET_CLI_LEADS_PER_S:,.0f} leads/s"
    if batch is None:
        return [Verdict(f"CLI batch {target}", "not measured", None)]
    return [
        Verdict(
            f"CLI batch, end to end: {target}",
            f"{batch.leads_per_second:,.0f} leads/s",
            batch.leads_per_second >= TARGET_CLI_LEADS_PER_S,
        ),
        Verdict(
            f"CLI batch, start-up subtracted: {target}",
            f"{batch.scoring_leads_per_second:,.0f} leads/s",
            batch.scoring_leads_per_second >= TARGET_CLI_LEADS_PER_S,
        ),
        Verdict(
            f"CLI batch, steady (2x file - 1x): {target}",
            f"{batch.steady_leads_per_second:,.0f} leads/s",
            batch.steady_leads_per_second >= TARGET_CLI_LEADS_PER_S,
        ),
    ]


def render(
    servers: dict[str, ServerResult], batch: BatchResult | None, found: list[Verdict]
) -> str:
    """The side-by-side table, the batch figures and the target verdicts, as printed text."""
    order = [servers[k] for k in ("ours_reasons_off", "ours_reasons_on", "mlflow") if k in servers]
    return "\n".join(
        [
            *(_render_servers(order) if order else ["servers: not measured (--batch-only)"]),
            "",
            *_render_batch(batch),
            "",
            *(f"{_word(v.passed):<5} {v.target:<52} {v.measured}" for v in found),
            *_render_warnings(order),
        ]
    )


def _render_servers(order: list[ServerResult]) -> list[str]:
    off = order[0]
    rows: list[tuple[str, list[str], str]] = []

    def add(name: str, values: list[str], ratio: str = "") -> None:
        rows.append((name, values, ratio))

    add("ready after s", [f"{r.ready_seconds:.1f}" for r in order])
    add("warm-up requests", [f"{r.warmup_requests:,}" for r in order])
    add("latency, 1 connection, sequential", ["", "", ""])
    add("  requests", [f"{r.latency.requests:,}" for r in order])
    for q in ("p50", "p90", "p99"):
        values = [getattr(r.latency, f"{q}_ms") for r in order]
        ratio = f"{values[0] / values[2]:.3f}x" if q != "p90" else ""
        add(f"  {q} ms", [f"{v:.2f}" for v in values], ratio)
    add("  server / client CPU cores", [_cores(r.latency) for r in order])
    add(f"throughput, {off.throughput.connections} connections", ["", "", ""])
    rps = [r.throughput.requests_per_second for r in order]
    add("  requests/s", [f"{v:,.0f}" for v in rps], f"{rps[0] / rps[2]:.1f}x")
    add("  p50 ms under load", [f"{r.throughput.p50_ms:.2f}" for r in order])
    add("  p99 ms under load", [f"{r.throughput.p99_ms:.2f}" for r in order])
    add("  server / client CPU cores", [_cores(r.throughput) for r in order])
    add("errors (non-200)", [f"{r.latency.errors + r.throughput.errors}" for r in order])
    add("floor: wrong key (403), p50 ms", [_floor(r) for r in order])
    add("scoring-log rows / 200 answers", [_log_rows(r) for r in order])
    w = _COLUMN
    head = (
        f"{'one worker each':<36}{'ours':>{w}}{'ours':>{w}}{'mlflow':>{w}}{'ours/mlflow':>{w}}\n"
        f"{'':<36}{'reasons off':>{w}}{'reasons on':>{w}}{'serve':>{w}}{'(reasons off)':>{w}}"
    )
    body = [f"{n:<36}" + "".join(f"{v:>{w}}" for v in vals) + f"{r:>{w}}" for n, vals, r in rows]
    return [head, *body]


def _cores(figures: Latency | Throughput) -> str:
    return f"{figures.server_cpu_cores:.2f} / {figures.client_cpu_cores:.2f}"


def _floor(result: ServerResult) -> str:
    return "n/a" if result.floor is None else f"{result.floor.p50_ms:.2f}"


def _log_rows(result: ServerResult) -> str:
    # Every answered scoring request must have left one row (the log is written before answering).
    if result.scoring_log_rows is None:
        return "n/a"
    answered = result.warmup_requests + sum(
        f.requests - f.errors for f in (result.latency, result.throughput)
    )
    return f"{result.scoring_log_rows:,} / {answered:,}"


def _render_batch(batch: BatchResult | None) -> list[str]:
    if batch is None:
        return ["CLI batch scoring: not measured (--batch-rows 0)"]
    return [
        f"{'CLI batch scoring (sal score)':<36}{'leads':>14}{'wall s':>14}{'leads/s':>14}",
        f"{'  start-up, first run (via MLflow)':<36}{batch.overhead_rows:>14,}"
        f"{batch.first_overhead_seconds:>14.2f}{'':>14}",
        f"{'  start-up, next runs (cached model)':<36}{batch.overhead_rows:>14,}"
        f"{batch.overhead_seconds:>14.2f}{'':>14}",
        f"{'  end to end (median run)':<36}{batch.leads_scored:>14,}{batch.seconds:>14.2f}"
        f"{batch.leads_per_second:>14,.0f}",
        f"{'  start-up subtracted':<36}{batch.leads_scored - batch.overhead_rows:>14,}"
        f"{batch.scoring_seconds:>14.2f}{batch.scoring_leads_per_second:>14,.0f}",
        f"{'  twice the file, end to end':<36}{batch.double_leads_scored:>14,}"
        f"{batch.double_seconds:>14.2f}"
        f"{batch.double_leads_scored / batch.double_seconds:>14,.0f}",
        f"{'  steady: what the second half adds':<36}"
        f"{batch.double_leads_scored - batch.leads_scored:>14,}"
        f"{batch.double_seconds - batch.seconds:>14.2f}{batch.steady_leads_per_second:>14,.0f}",
        f"  fixed cost of a run: {batch.fixed_seconds:.2f} s; end to end meets "
        f"{TARGET_CLI_LEADS_PER_S:,.0f} leads/s "
        + (
            f"from about {batch.target_from_leads:,} leads"
            if batch.target_from_leads is not None
            else "at no length (the steady rate is below it)"
        ),
        f"  (runs: {_seconds(batch.runs_seconds)} s and {_seconds(batch.double_runs_seconds)} s; "
        f"generating the leads took {batch.generate_seconds:.1f} s, not counted; "
        f"peak RSS of the largest sal score process {batch.peak_rss_gib:.2f} GiB)",
    ]


def _seconds(runs: list[float]) -> str:
    return ", ".join(f"{s:.2f}" for s in runs)


def _render_warnings(order: list[ServerResult]) -> list[str]:
    # On 2 cores, anything else running takes CPU from the server or the load generator.
    lines = []
    for r in order:
        for phase, figures in (("latency", r.latency), ("throughput", r.throughput)):
            if figures.other_cores > _BUSY_CORES:
                lines.append(
                    f"warning: other processes kept {figures.other_cores:.2f} of {os.cpu_count()}"
                    f" cores busy during {r.label} {phase}; its figures are pessimistic"
                )
        # A closed loop with enough connections keeps a one-worker server at a full core; if it
        # did not, the figure says more about the client or the machine than about the server.
        if r.throughput.server_cpu_cores < _SATURATED_CORES:
            lines.append(
                f"warning: {r.label} used only {r.throughput.server_cpu_cores:.2f} cores under"
                " load; its throughput may be limited by something other than its own CPU"
            )
    return ["", *lines] if lines else []


def _word(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def machine() -> dict[str, Any]:
    """What the absolute figures depend on, recorded next to them.

    Whether uvicorn's optional C parts are installed matters here: without httptools and uvloop
    it parses HTTP with the pure-Python h11 and runs the stock asyncio loop (both servers alike).
    """
    packages = ("mlflow", "fastapi", "starlette", "uvicorn", "pydantic", "lightgbm", "sqlalchemy")
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        **{name: _version(name) for name in (*packages, "httptools", "uvloop")},
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
