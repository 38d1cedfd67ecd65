"""Batch scoring of a leads file (e.g. a marketing list) with a registered model.

Uses models.scoring, the code path the API's batches use, so a lead gets the same score, tier,
route and rule breakdown from a file as over HTTP.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from models.registry import LoadedModel
from models.scoring import score_clean
from pipeline import csvout, plaincells
from pipeline.load import LeadChunk, LeadStream, LoadReport

# Leads validated and scored at a time. The file streams through in chunks, checked and scored
# in worker processes (one per core) while this one reads the next; memory holds a few chunks,
# whatever the file's size.
CHUNK_ROWS = 100_000
# Each worker holds a few hundred MB while it checks a chunk, and the main process can keep about
# four busy (it spends ~1.7 CPU-us a lead, a worker ~7): more only costs memory.
_MAX_WORKERS = 6
# A long file says how far it has got at most this often (on stderr, as `sal train` does).
PROGRESS_SECONDS = 10.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreReport:
    output: Path
    rows_scored: int
    load: LoadReport
    routed_to_sales: int


def score_file(
    path: Path,
    loaded: LoadedModel,
    output: Path,
    sla_hours: int = 24,
    with_reasons: bool = False,
    rejects: Path | None = None,
    workers: int | None = None,
) -> ScoreReport:
    """Validate `path` against the model's own spec (labels not needed), score every valid
    lead and write one CSV row per lead to `output`.

    The rows are written to a file beside `output` that takes its name only once the whole file
    has passed validation: a refused file (too many bad rows) leaves no partial output behind.
    `workers`: processes that check and score the chunks (0: this process; default: one per
    core, up to _MAX_WORKERS), where that is safe (see _processes).
    """
    spec = loaded.model.spec
    stream = LeadStream(
        path, spec, rejects, labelled=False, chunk_rows=CHUNK_ROWS, categorical=True, digest=False
    )

    def score_chunk(chunk: LeadChunk) -> _ScoredChunk:
        ids = chunk.frame[spec.id].array if spec.id else None
        scored = score_clean(loaded, chunk.clean, ids, sla_hours, with_reasons)
        table = scored.table
        if scored.reasons is not None:
            table["reasons"] = ["; ".join(r.text for r in reasons) for reasons in scored.reasons]
        # Arrow's CSV text (see csvout), which formats each value on its own, so chunks write
        # exactly what one table would.
        routed = int((table["route"] == "sales").sum())  # a categorical: compares codes
        return _ScoredChunk(csvout.to_csv(table), len(table), routed)

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    rows = routed = 0
    estimated = stream.estimated_rows()
    progress = _Progress(path, estimated)
    try:
        with partial.open("wb") as sink:
            processes = _processes(loaded, with_reasons, workers, estimated)
            for number, chunk in enumerate(stream.map(score_chunk, processes)):
                # Every chunk's CSV has the header line; the file has it once.
                sink.write(chunk.csv if number == 0 else chunk.csv[chunk.csv.index(b"\n") + 1 :])
                rows += chunk.rows
                routed += chunk.routed
                progress.scored(rows)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    assert stream.report is not None  # set by a stream iterated to its end
    return ScoreReport(output=output, rows_scored=rows, load=stream.report, routed_to_sales=routed)


class _Progress:
    """Says every PROGRESS_SECONDS how many leads of a file are scored, and how fast."""

    def __init__(self, path: Path, estimated_rows: int | None) -> None:
        self.path, self.estimated = path, estimated_rows
        self.started = self.said = time.perf_counter()

    def scored(self, rows: int) -> None:
        now = time.perf_counter()
        if now - self.said < PROGRESS_SECONDS:
            return
        self.said = now
        of = f" of about {self.estimated:,}" if self.estimated else ""
        rate = rows / max(now - self.started, 1e-9)
        log.info("%s: %s%s leads scored (%s a second)", self.path, f"{rows:,}", of, f"{rate:,.0f}")


@dataclass(frozen=True)
class _ScoredChunk:
    csv: bytes
    rows: int
    routed: int


def _processes(
    loaded: LoadedModel, with_reasons: bool, requested: int | None, rows: int | None
) -> int:
    """Worker processes for a file: as many as asked (default: one per core on a multi-core
    machine, at most _MAX_WORKERS, for a file of more than one chunk), or none (scored in this
    process) where a forked worker would have to run LightGBM itself, whose OpenMP runtime does
    not survive a fork: reasons are LightGBM's contributions, and a model the batch forest does
    not cover is scored by LightGBM. The forests are built here, before the fork, so the
    workers inherit them. `rows`: the file's estimated rows (None: unknown)."""
    cores = os.cpu_count() or 1
    # One chunk has nothing to overlap with: forking and building the forests (about 0.6 s)
    # would only delay a short marketing list.
    single_chunk = rows is not None and rows <= CHUNK_ROWS
    default = min(cores, _MAX_WORKERS) if cores > 1 and not single_chunk else 0
    wanted = default if requested is None else requested
    if wanted <= 0 or with_reasons or sys.platform != "linux" or not loaded.model.prepare_batches():
        return 0
    # The compiled loops, like the forests, are loaded once here, not in each worker.
    plaincells.warm()
    csvout.warm()
    return wanted
