"""Benchmark `sal train` end to end: wall time and peak memory per dataset size.

For each size the built-in dataset is generated fresh (timed apart), then `sal train --json` runs
as a child process against a throw-away MLflow store, so the project's own `mlflow.db` is never
touched. A bare `lightgbm.train` on the same rows is timed in the same run: the ratio between the
two ("overhead") reads the same on any machine, the absolute seconds do not.

    .venv/bin/python benchmarks/train_bench.py [--sizes 10000 100000 1000000] [--seed 7]
                                               [--out benchmarks/results/train.json] [--quick]

See benchmarks/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

log = logging.getLogger("train_bench")

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "data" / "specs" / "builtin.yaml"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 10_000)
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "train.json"

# The targets the project commits to, checked at exactly this size.
TARGET_ROWS = 1_000_000
TARGET_SECONDS = 180.0
TARGET_GIB = 4.0

BARE_ROUNDS = 200
BARE_REPEATS = 3
GIB = 1024**3
# Above this many cores' worth of other processes' CPU, the figures are flagged as contended.
_BUSY_CORES = 0.25
_STAGE_DONE = re.compile(r"\[(\d+)/\d+\] (.+?) done in ([\d.]+) s")


@dataclass(frozen=True)
class ChildRun:
    """One measured child process: wall seconds, its own peak RSS, and its exit code.

    `other_cores` is the CPU that everything else on the machine used meanwhile, in cores on
    average: the benchmark's own process sleeps in wait4, so that is other people's work.
    """

    seconds: float
    peak_rss_bytes: int
    returncode: int
    other_cores: float


@dataclass
class SizeResult:
    """Everything measured for one dataset size (one row of the table, one entry of the JSON)."""

    rows: int
    generate_seconds: float
    generate_peak_rss_gib: float
    train_seconds: float
    train_peak_rss_gib: float
    rows_per_second: float
    pipeline_seconds: float
    stages: dict[str, float]
    bare_lightgbm_seconds: float
    overhead_ratio: float
    rows_read: int
    labelled: int
    split: dict[str, int]
    model_roc_auc: float
    rules_roc_auc: float
    other_cores: float
    log_path: str


# -- measuring children ----------------------------------------------------------------------------
def run_measured(cmd: list[str], *, env: dict[str, str], stdout: Path, stderr: Path) -> ChildRun:
    """Run `cmd` from the project root with output to files; time it and read its own peak RSS.

    os.wait4 returns the rusage of this one child (and any grandchildren it reaped), whereas
    getrusage(RUSAGE_CHILDREN) keeps the maximum over every child so far, so a big run would mask
    every later, smaller one. Output goes to files, not pipes: nobody reads a pipe while we block
    in wait4, and a full pipe would deadlock the child.
    """
    with stdout.open("wb") as out, stderr.open("wb") as err:
        busy_before = _machine_cpu_seconds()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - started
        others = _machine_cpu_seconds() - busy_before - usage.ru_utime - usage.ru_stime
    # Tell Popen the child is reaped, so it never waits on a pid that may have been reused.
    proc.returncode = os.waitstatus_to_exitcode(status)
    # Linux reports ru_maxrss in KiB.
    return ChildRun(seconds, usage.ru_maxrss * 1024, proc.returncode, max(others, 0.0) / seconds)


def _machine_cpu_seconds() -> float:
    """CPU seconds spent by every process on the machine since boot (Linux /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _sal() -> list[str]:
    # The venv's console script when present (what users run), else the same app via -m.
    script = Path(sys.executable).with_name("sal")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]


def _child_env(workdir: Path) -> dict[str, str]:
    """The caller's environment without SAL_* settings, plus a fresh tracking store in `workdir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAL_")}
    env["SAL_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    env["SAL_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
    return env


def _check(run: ChildRun, what: str, stderr: Path) -> None:
    if run.returncode != 0:
        tail = "\n".join(stderr.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{what} exited with {run.returncode}; last stderr lines:\n{tail}")


# -- the three measurements ------------------------------------------------------------------------
def generate(rows: int, seed: int, csv: Path, workdir: Path) -> ChildRun:
    """Write the built-in dataset with `sal generate` and measure that child."""
    cmd = [*_sal(), "generate", "--rows", str(rows), "--seed", str(seed), "-o", str(csv)]
    stderr = workdir / "generate.err"
    run = run_measured(cmd, env=_child_env(workdir), stdout=workdir / "generate.out", stderr=stderr)
    _check(run, "sal generate", stderr)
    return run


def train(csv: Path, workdir: Path, log_path: Path) -> tuple[ChildRun, dict[str, Any]]:
    """Run `sal train --json` on `csv`; return the measurement and the parsed JSON summary.

    Rejected rows go to `workdir` too: the default would write them under the project's data/.
    """
    cmd = [
        *_sal(),
        "train",
        "--data",
        str(csv),
        "--spec",
        str(SPEC),
        "--json",
        "--rejects",
        str(workdir / "rejects.csv"),
    ]
    stdout = workdir / "train.json"
    run = run_measured(cmd, env=_child_env(workdir), stdout=stdout, stderr=log_path)
    _check(run, "sal train", log_path)
    return run, json.loads(stdout.read_text())


def bare_lightgbm_seconds(csv: Path, seed: int) -> float:
    """Seconds for `lightgbm.train` alone on the file's numeric columns and acceptance label.

    Reading the CSV is not timed; building LightGBM's Dataset (binning) is, as it is part of any
    training. num_threads is left at LightGBM's default, as in the pipeline, so both use the same
    OpenMP thread count (all cores, or OMP_NUM_THREADS). Best of BARE_REPEATS, as timeit does: a
    burst of other work on the machine only ever adds time, and the yardstick should not move.
    """
    # pyarrow reads each column whole, so a column sparse at the top (sql_at) gets one dtype.
    frame = pd.read_csv(csv, engine="pyarrow")
    decided = frame["sal_status"].isin(["accepted", "rejected"])
    x = frame.loc[decided].select_dtypes(include=["number", "bool"]).astype("float32")
    y = (frame.loc[decided, "sal_status"] == "accepted").astype("int8")
    del frame
    params = {"objective": "binary", "verbose": -1, "seed": seed}
    return min(_timed_fit(params, x.to_numpy(), y.to_numpy()) for _ in range(BARE_REPEATS))


def _timed_fit(params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> float:
    started = time.perf_counter()
    lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=BARE_ROUNDS)
    return time.perf_counter() - started


def stage_seconds(stderr_text: str) -> dict[str, float]:
    """The pipeline's own "[n/N] <stage> done in X s" progress lines, as {"n <stage>": X}."""
    return {f"{m[1]} {m[2]}": float(m[3]) for m in _STAGE_DONE.finditer(stderr_text)}


# -- one size --------------------------------------------------------------------------------------
def bench_size(rows: int, seed: int, log_dir: Path) -> SizeResult:
    """Generate, time the bare LightGBM baseline, then train; the temp folder goes afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"sal-bench-{rows}-") as tmp:
        workdir = Path(tmp)
        csv = workdir / "leads.csv"
        log.info("%s rows: generating", f"{rows:,}")
        gen = generate(rows, seed, csv, workdir)
        log.info("%s rows: bare lightgbm.train, %d rounds", f"{rows:,}", BARE_ROUNDS)
        bare = bare_lightgbm_seconds(csv, seed)
        log_path = log_dir / f"train-{rows}.log"
        log.info("%s rows: sal train (progress in %s)", f"{rows:,}", log_path)
        run, summary = train(csv, workdir, log_path)
    return _result(rows, gen, run, summary, bare, log_path)


def _result(
    rows: int,
    gen: ChildRun,
    run: ChildRun,
    summary: dict[str, Any],
    bare: float,
    log_path: Path,
) -> SizeResult:
    data, metrics = summary["data"], summary["metrics"]
    return SizeResult(
        rows=rows,
        generate_seconds=round(gen.seconds, 2),
        generate_peak_rss_gib=round(gen.peak_rss_bytes / GIB, 3),
        train_seconds=round(run.seconds, 2),
        train_peak_rss_gib=round(run.peak_rss_bytes / GIB, 3),
        rows_per_second=round(data["rows_read"] / run.seconds, 1),
        pipeline_seconds=summary["seconds"],
        stages=stage_seconds(log_path.read_text(errors="replace")),
        bare_lightgbm_seconds=round(bare, 2),
        overhead_ratio=round(run.seconds / bare, 1),
        rows_read=data["rows_read"],
        labelled=data["labelled"],
        split=data["split"]["rows"],
        model_roc_auc=metrics["model"]["roc_auc"],
        rules_roc_auc=metrics["rules"]["roc_auc"],
        other_cores=round(run.other_cores, 2),
        log_path=str(log_path),
    )


# -- reporting -------------------------------------------------------------------------------------
def targets(results: list[SizeResult]) -> dict[str, Any]:
    """PASS/FAIL of the 1M-row targets, or None verdicts when that size was not run."""
    at_target = next((r for r in results if r.rows == TARGET_ROWS), None)
    if at_target is None:
        return {"rows": TARGET_ROWS, "seconds_pass": None, "memory_pass": None}
    return {
        "rows": TARGET_ROWS,
        "max_seconds": TARGET_SECONDS,
        "seconds": at_target.train_seconds,
        "seconds_pass": at_target.train_seconds < TARGET_SECONDS,
        "max_gib": TARGET_GIB,
        "gib": at_target.train_peak_rss_gib,
        "memory_pass": at_target.train_peak_rss_gib < TARGET_GIB,
    }


def render(results: list[SizeResult], verdict: dict[str, Any]) -> str:
    """The summary table, the per-stage seconds, and the target verdicts, as printed text."""
    head = (
        f"{'rows':>10}{'generate s':>12}{'train wall s':>14}{'peak RSS GiB':>14}"
        f"{'rows/s':>10}{'model AUC':>11}{'rules AUC':>11}{'bare LGBM s':>13}"
        f"{'overhead x':>12}"
    )
    lines = [head]
    for r in results:
        lines.append(
            f"{r.rows:>10,}{r.generate_seconds:>12.1f}{r.train_seconds:>14.1f}"
            f"{r.train_peak_rss_gib:>14.2f}{r.rows_per_second:>10,.0f}{r.model_roc_auc:>11.4f}"
            f"{r.rules_roc_auc:>11.4f}{r.bare_lightgbm_seconds:>13.2f}{r.overhead_ratio:>12.1f}"
        )
    lines += ["", *_render_stages(results), "", *_render_targets(verdict), *_render_load(results)]
    return "\n".join(lines)


def _render_stages(results: list[SizeResult]) -> list[str]:
    names = list(dict.fromkeys(name for r in results for name in r.stages))
    lines = [
        "seconds per pipeline stage (from the [n/N] progress lines; 'other' = start-up,"
        " imports, MLflow store creation)",
        f"{'stage':<44}" + "".join(f"{r.rows:>12,}" for r in results),
    ]
    for name in names:
        lines.append(f"{name:<44}" + "".join(f"{r.stages.get(name, 0.0):>12.1f}" for r in results))
    other = "".join(f"{r.train_seconds - sum(r.stages.values()):>12.1f}" for r in results)
    return [*lines, f"{'other':<44}{other}"]


def _render_targets(verdict: dict[str, Any]) -> list[str]:
    if verdict["seconds_pass"] is None:
        return [f"targets at {TARGET_ROWS:,} rows: not measured (size not in --sizes)"]
    word = {True: "PASS", False: "FAIL"}
    return [
        f"target at {TARGET_ROWS:,} rows: train wall < {TARGET_SECONDS:.0f} s: "
        f"{word[verdict['seconds_pass']]} ({verdict['seconds']:.1f} s)",
        f"target at {TARGET_ROWS:,} rows: peak RSS < {TARGET_GIB:.0f} GiB: "
        f"{word[verdict['memory_pass']]} ({verdict['gib']:.2f} GiB)",
    ]


def _render_load(results: list[SizeResult]) -> list[str]:
    # LightGBM's OpenMP threads spin at every barrier; when other processes hold the cores, small
    # fits slow down by 10-100x. Say so next to the figures rather than let them mislead.
    busy = [r for r in results if r.other_cores > _BUSY_CORES]
    if not busy:
        return []
    cores = ", ".join(f"{r.other_cores:.2f} at {r.rows:,} rows" for r in busy)
    return [
        f"warning: other processes kept {cores} of {os.cpu_count()} cores busy during "
        "sal train; absolute seconds are pessimistic, the overhead ratio less so"
    ]


def machine() -> dict[str, Any]:
    """What the absolute figures depend on, recorded next to them."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / GIB, 1),
        "lightgbm": lgb.__version__,
        "pandas": pd.__version__,
    }


# -- entry point -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(DEFAULT_SIZES),
        help="Dataset sizes (rows) to benchmark [default: 10k 100k 1M].",
    )
    parser.add_argument("--seed", type=int, default=7, help="Seed for `sal generate`.")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="JSON file for all figures [default: benchmarks/results/train.json].",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"Smoke test: sizes {' '.join(map(str, QUICK_SIZES))} (overrides --sizes).",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    sizes = list(QUICK_SIZES) if args.quick else args.sizes
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = [bench_size(rows, args.seed, args.out.parent) for rows in sizes]
    verdict = targets(results)
    report = {
        "machine": machine(),
        "seed": args.seed,
        "bare_lightgbm_rounds": BARE_ROUNDS,
        "bare_lightgbm_repeats": BARE_REPEATS,
        "results": [asdict(r) for r in results],
        "targets": verdict,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(render(results, verdict))
    print(f"\nfigures written to {args.out}")
    # Non-zero when a measured target fails, so `make bench` can gate on it.
    return 1 if False in (verdict["seconds_pass"], verdict["memory_pass"]) else 0


if __name__ == "__main__":
    sys.exit(main())
