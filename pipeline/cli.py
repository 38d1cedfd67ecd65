"""`sal`: the command line. Thin commands: parse options, call one function, print the result."""

# The process settings below must come before the imports that read them.
# ruff: noqa: E402
from __future__ import annotations

import atexit
import gc
import os

# A command's libraries (LightGBM, MLflow, most of them imported by the command itself) and its
# model make millions of objects that live as long as it does. Python's collector, run every 700
# new objects by default, scans them over and over: about 0.6 s of a 5 s `sal score` start-up.
# Garbage with cycles is still collected, less often.
gc.set_threshold(100_000, 50, 100)
# And at exit, Python's last collection scans them all once more, for garbage the process's end
# frees anyway: about 0.45 s of every command, a third of a short `sal score`. Frozen, they are
# left to the exit. (What is not in a cycle is still freed, and its finalizer run, as before;
# the commands close their files and connections themselves.)
atexit.register(gc.freeze)

# LightGBM's OpenMP threads spin at every sync point; on a 2-core machine shared with anything else
# that turns a 3 s fit into minutes. Sleeping waits cost next to nothing when the CPU is free. Set
# before any library loads the OpenMP runtime, which reads it once.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
# NumPy's and SciPy's OpenBLAS each start a thread per core when imported, which spin before they
# sleep: about 0.2 s of a 2 s `sal score` start-up on 2 cores. No command does BLAS work big
# enough to gain from threads (LightGBM has its own).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import ctypes
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from models.spec import SpecError
from pipeline.load import LoadError
from pipeline.routing import RoutingError
from pipeline.settings import get_settings
from pipeline.split import SplitError

app = typer.Typer(
    help="Lead acceptance predictor: train, track and register MQL acceptance models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_USER_ERRORS = (SpecError, LoadError, SplitError, RoutingError)
_MODEL_NAME = typer.Option(
    None, help="Registered model [default: SAL_MODEL_NAME or lead-acceptance]."
)


@contextmanager
def _user_errors(*extra: type[Exception]) -> Iterator[None]:
    """Bad input ends a command with its message and exit code 2, never a traceback."""
    try:
        yield
    except (*_USER_ERRORS, *extra) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # MLflow and alembic narrate every migration and upload at INFO; keep our progress readable.
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def generate(
    rows: int = typer.Option(50_000, min=1, help="Number of MQLs to generate."),
    seed: int = typer.Option(7, help="Random seed: the same seed gives the same file."),
    output: Path = typer.Option(
        None, "--output", "-o", help="CSV to write [default: data/leads.csv]."
    ),
) -> None:
    """Generate the built-in MQL dataset (deterministic for a seed)."""
    from pipeline.generate import generate_leads, write_leads

    path = output or get_settings().builtin_data
    path.parent.mkdir(parents=True, exist_ok=True)
    write_leads(generate_leads(rows, seed=seed), path)
    typer.echo(f"wrote {rows:,} leads to {path}")


@app.command()
def train(
    data: Path = typer.Option(
        None,
        "--data",
        "-d",
        help="Leads file (CSV or Parquet) [default: the built-in dataset, generated if missing].",
    ),
    spec: Path = typer.Option(None, "--spec", "-s", help="Dataset spec YAML [default: built-in]."),
    criteria: Path = typer.Option(None, help="Rule criteria YAML [default: the spec's]."),
    config: Path = typer.Option(
        None, help="Training config YAML [default: data/config/train.yaml]."
    ),
    model_name: str = typer.Option(None, help="Registered model name [default: the spec's]."),
    rejects: Path = typer.Option(
        None, help="Where to write rejected rows [default: data/rejects/]."
    ),
    from_log: str = typer.Option(
        None,
        "--from-log",
        help="Train on the service's scoring log joined with outcomes at this database URL "
        "(e.g. sqlite:///sal.db), with features as they were when scored.",
    ),
    routing_target: float = typer.Option(
        None,
        min=0.01,
        max=0.99,
        help="Acceptance rate routed leads must reach [default: the config's, 0.90].",
    ),
    split: str = typer.Option(
        None,
        help="Override the spec's hold-out: 'time', 'order' (rows in time order, the last are "
        "the most recent) or 'stratified'.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON (for scripts)."),
) -> None:
    """Train on a leads file, evaluate against the rules, log to MLflow, register, gate champion."""
    from pipeline.run import TrainInputs, summary_json, train_from_file

    settings = get_settings()
    if from_log is not None:
        from models.spec import load_spec
        from pipeline.ingest import export_scoring_log

        spec = spec or settings.builtin_spec
        data = export_scoring_log(from_log, load_spec(spec), settings.data_dir / "from-log")
        typer.echo(f"training set from the scoring log written to {data}", err=True)
    if data is None:
        data = settings.builtin_data
        spec = spec or settings.builtin_spec
        if not data.exists():
            generate(rows=50_000, seed=7, output=data)
    if spec is None:
        raise typer.BadParameter("--spec is required with --data (which columns mean what)")
    inputs = TrainInputs(
        data=data,
        spec=spec,
        criteria=criteria,
        config=config,
        model_name=model_name,
        rejects=rejects,
        routing_target=routing_target,
        split=split,
    )
    with _user_errors():
        summary = train_from_file(inputs, settings)
    typer.echo(summary_json(summary) if as_json else _render(summary))


@app.command()
def score(
    data: Path = typer.Argument(
        ..., help="Leads file to score (CSV or Parquet; labels not needed)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the scored CSV."),
    model_name: str = _MODEL_NAME,
    alias: str = typer.Option("champion", help="Registry alias to score with."),
    reasons: bool = typer.Option(False, help="Add the top reasons each way (slower)."),
    rejects: Path = typer.Option(None, help="Where to write rows that fail validation."),
    workers: int = typer.Option(
        None,
        min=0,
        help="Processes that check and score chunks [default: one per core, up to 6; 0: none].",
    ),
) -> None:
    """Score a file of leads with the registered champion: the API's fields, one row a lead."""
    from models.decision import DEFAULT_ROUTING_THRESHOLD, DEFAULT_SLA_HOURS
    from pipeline.modelcache import load_alias
    from pipeline.score import score_file

    settings = get_settings()
    name = settings.registered_name(model_name)
    _keep_freed_memory()
    with _user_errors():
        loaded = load_alias(
            settings.tracking_uri,
            name,
            alias,
            DEFAULT_ROUTING_THRESHOLD,
            settings.cache_dir,
            batch=not reasons,  # reasons are LightGBM's contributions: the boosters load
        )
        rejects = rejects or output.with_name(f"{output.stem}.rejects.csv")
        report = score_file(data, loaded, output, DEFAULT_SLA_HOURS, reasons, rejects, workers)
    typer.echo(
        f"scored {report.rows_scored:,} leads with {name} v{loaded.version} -> "
        f"{report.output} ({report.routed_to_sales:,} routed to sales; "
        f"{report.load.rows_rejected:,} rows rejected)"
    )


def _keep_freed_memory() -> None:
    """Have glibc's malloc keep what is freed for reuse instead of handing it back to the kernel.

    A batch allocates and frees hundreds of MB per chunk; by default glibc returns big blocks at
    once and the kernel must zero fresh pages for the next chunk (a quarter of `sal score`'s CPU
    time on a million leads). Kept, the memory is bounded by one chunk's peak per process.
    Elsewhere than glibc (macOS, musl), the default stays.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    # mallopt's parameters (malloc.h): M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD.
    libc.mallopt(-1, 1 << 30)
    libc.mallopt(-2, 256 << 20)
    libc.mallopt(-3, 1 << 30)


@app.command()
def evaluate(
    data: Path = typer.Option(
        None, "--data", "-d", help="Labelled leads file [default: the built-in dataset]."
    ),
    model_name: str = _MODEL_NAME,
    challenger: str = typer.Option(None, help="Version to test [default: the newest]."),
    n_boot: int = typer.Option(1000, min=100, help="Bootstrap resamples."),
    promote: bool = typer.Option(True, help="Move `champion` when the gate passes."),
) -> None:
    """Backtest challenger vs champion vs rule criteria on the most recent out-of-time slice
    (bootstrap intervals); promote the challenger only if the gate passes. Logged to MLflow."""
    from pipeline.champion import DecisionError, EvaluateOptions, evaluate_challenger

    settings = get_settings()
    options = EvaluateOptions(
        data=data or settings.builtin_data,
        model_name=settings.registered_name(model_name),
        challenger=challenger,
        n_boot=n_boot,
        promote=promote,
    )
    with _user_errors(DecisionError):
        run = evaluate_challenger(options, settings)
    table = run.backtest.table
    typer.echo(
        f"{options.model_name}: challenger v{run.challenger} vs "
        f"{'champion v' + run.champion if run.champion else 'no champion'} on "
        f"{run.backtest.rows:,} recent leads ({run.backtest.n_boot} paired resamples)"
    )
    roles = {f"v{run.challenger}": "challenger", f"v{run.champion}": "champion"}
    for row in table.to_dict("records"):
        rate = row["routed_rate"]
        who = f"{roles.get(row['name'], '')} {row['name']}".strip()
        typer.echo(
            f"  {who:<18} ROC AUC {row['roc_auc']:.4f} "
            f"[{row['roc_auc_low']:.4f}, {row['roc_auc_high']:.4f}]  ECE {row['ece']:.4f}  "
            f"routed {row['coverage']:.1%} at {_pct(rate, 0).strip()} accepted"
        )
    verdict = (
        "PROMOTED"
        if run.promoted
        else ("PASSES (not promoted: --no-promote)" if run.decision.promote else "REJECTED")
    )
    typer.echo(f"{verdict}: {run.decision.reason}")
    typer.echo(f"report: {run.report}")


@app.command()
def rollback(
    model_name: str = _MODEL_NAME,
    to: str = typer.Option(None, help="Version to serve [default: the previous champion]."),
    reason: str = typer.Option("", help="Why, for the record in MLflow."),
) -> None:
    """Point `champion` back to an earlier version (the service picks it up on its next poll)."""
    from pipeline.champion import DecisionError
    from pipeline.champion import rollback as roll_back

    settings = get_settings()
    name = settings.registered_name(model_name)
    with _user_errors(DecisionError):
        previous, now = roll_back(name, settings, to, reason)
    typer.echo(f"{name}: champion moved from v{previous} back to v{now}")


@app.command()
def monitor(
    database_url: str = typer.Option(
        None, help="The service's scoring log and outcomes [default: SAL_DATABASE_URL, sal.db]."
    ),
    model_name: str = _MODEL_NAME,
    alias: str = typer.Option("champion", help="Registry alias of the model being served."),
    period: str = typer.Option("week", help="Group by 'week' or 'day'."),
    weeks: int = typer.Option(8, min=1, help="How many weeks of the log to read."),
    decision_window_hours: float = typer.Option(
        48, help="Leads younger than this without a decision are pending, not rejected."
    ),
    min_rows: int = typer.Option(200, min=1, help="Fewest leads in a period to judge its drift."),
    as_of: str = typer.Option(None, help="Replay as of this ISO time [default: now]."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check the live model: input drift (PSI), score shift, realised acceptance of routed leads
    vs the target, calibration, volume. Exits 1 on an alarm, so a scheduler can act on it."""
    import json
    from datetime import datetime

    from pipeline.monitor import render_text
    from pipeline.watch import MonitorOptions, monitor_champion

    if period not in ("week", "day"):
        raise typer.BadParameter("--period is 'week' or 'day'")
    settings = get_settings()
    with _user_errors(ValueError):  # a bad --as-of too
        options = MonitorOptions(
            database_url=database_url or settings.database_url,
            model_name=settings.registered_name(model_name),
            alias=alias,
            weeks=weeks,
            period="W" if period == "week" else "D",
            decision_window_hours=decision_window_hours,
            min_rows=min_rows,
            now=datetime.fromisoformat(as_of) if as_of else None,
        )
        run = monitor_champion(options, settings)
    result = run.result
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        typer.echo(f"{options.model_name} v{run.model_version}\n{render_text(result)}")
        typer.echo(f"report: {run.report}")
    raise typer.Exit(code=result.exit_code)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
) -> None:
    """Serve the registered champion over HTTP (FastAPI + uvicorn); see /docs for the API."""
    import secrets

    import uvicorn

    # The CLI is the one place that wires both deployables; pipeline's training modules never
    # import serving/, and serving/ never imports them.
    from serving.settings import get_settings as serve_settings

    if not (serve_settings().score_keys or serve_settings().admin_keys):
        key = secrets.token_urlsafe(24)
        os.environ["SAL_ADMIN_KEYS"] = key  # inherited by the workers
        serve_settings.cache_clear()  # a single worker reads the settings in this process
        typer.echo(
            f"no SAL_SCORE_KEYS/SAL_ADMIN_KEYS set; generated a local admin key:\n  {key}", err=True
        )
    uvicorn.run(
        "serving.main:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,  # a log line per request costs more than scoring the lead
    )


def _render(summary) -> str:
    lines = [
        f"run {summary.run_id} ({summary.experiment}) in {summary.seconds:.0f} s",
        f"model {summary.model_name} v{summary.model_version}: champion "
        f"{'MOVED' if summary.champion_moved else 'unchanged'} — {summary.champion_reason}",
        f"data: {summary.data['rows_read']:,} rows read, {summary.data['rows_rejected']:,} rejected"
        + (f" (see {summary.data['rejects_path']})" if summary.data["rejects_path"] else "")
        + f", {summary.data['labelled']:,} labelled, {summary.data['undecided']:,} undecided "
        f"(kept out), split {summary.data['split']['method']} {summary.data['split']['rows']}",
        "",
        f"{'P(accept) on test':<18}{'ROC AUC':>9}{'PR AUC':>8}{'Brier':>8}{'logloss':>9}{'ECE':>7}"
        f"{'top10%':>8}{'lift':>6}",
    ]
    for table in (summary.metrics, summary.sql_metrics):
        if table is not summary.metrics:
            lines.append("P(SQL) on test")
        for scorer, m in table.items():
            lines.append(
                f"  {scorer:<16}{m['roc_auc']:>9.4f}{m['pr_auc']:>8.4f}{m['brier']:>8.4f}"
                f"{m['log_loss']:>9.4f}{m['ece']:>7.4f}{m['top_decile_rate']:>8.3f}"
                f"{m['top_decile_lift']:>6.2f}"
            )
    lines += ["", *_render_routing(summary.routing), ""]
    if summary.leakage:
        lines.append("leakage audit:")
        lines += [
            f"  {f['column']}: {f['action']} ({f['signal']}): {f['evidence']}"
            for f in summary.leakage
        ]
    else:
        lines.append("leakage audit: no column flagged")
    lines += [f"warning: {w}" for w in summary.warnings]
    lines.append(f"report: {summary.report}")
    return "\n".join(lines)


def _render_routing(routing: dict) -> list[str]:
    from pipeline.routing import comparison

    policy = routing["policy"]
    lines = [
        f"routing ({policy['mode'].replace('_', ' ')}): P(accept) >= {policy['threshold']:.4f}"
        + ("" if policy["met"] else "  [TARGET NOT MET: best achievable]"),
        f"  {policy['note']}",
        f"{'':<28}{'routed':>8}{'accept rate':>13}{'lower bound':>13}{'recall':>8}",
    ]
    for name, *values in comparison(routing):
        cells = zip(values, (8, 13, 13, 8), strict=True)
        lines.append(f"  {name:<26}" + "".join(_pct(v, w) for v, w in cells))
    return lines


def _pct(value: float | None, width: int) -> str:
    missing = value is None or value != value  # None or NaN
    return f"{'-':>{width}}" if missing else f"{value:>{width}.1%}"


if __name__ == "__main__":
    app()
