"""Batch scoring of a leads file (e.g. a marketing list) with a registered model.

Uses models.scoring, the code path the API's batches use, so a lead gets the same score, tier,
route and rule breakdown from a file as over HTTP.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from models.registry import LoadedModel
from models.scoring import score_clean
from pipeline.load import LeadChunk, LeadStream, LoadReport

# Leads validated and scored at a time. The file streams through in chunks: while LightGBM
# (which releases the GIL) walks the trees for the chunks in flight, the next chunk is
# validated, so both cores stay busy; memory holds a few chunks, whatever the file's size.
CHUNK_ROWS = 100_000
_IN_FLIGHT = 2


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
) -> ScoreReport:
    """Validate `path` against the model's own spec (labels not needed), score every valid
    lead and write one CSV row per lead to `output`.

    The rows are written to a file beside `output` that takes its name only once the whole file
    has passed validation: a refused file (too many bad rows) leaves no partial output behind.
    """
    spec = loaded.model.spec
    stream = LeadStream(path, spec, rejects, labelled=False, chunk_rows=CHUNK_ROWS)

    def score_chunk(chunk: LeadChunk) -> pd.DataFrame:
        ids = chunk.frame[spec.id].to_numpy() if spec.id else None
        scored = score_clean(loaded, chunk.clean, ids, sla_hours, with_reasons)
        table = scored.table
        if scored.reasons is not None:
            table["reasons"] = ["; ".join(r.text for r in reasons) for reasons in scored.reasons]
        return table

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    written = _Written()
    try:
        with pa.OSFile(str(partial), "wb") as sink, ThreadPoolExecutor(_IN_FLIGHT) as pool:
            in_flight: deque[Future[pd.DataFrame]] = deque()
            for chunk in stream:
                in_flight.append(pool.submit(score_chunk, chunk))
                while in_flight and (len(in_flight) > _IN_FLIGHT or in_flight[0].done()):
                    written.add(in_flight.popleft().result(), sink)
            while in_flight:
                written.add(in_flight.popleft().result(), sink)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    assert stream.report is not None  # set by a stream iterated to its end
    return ScoreReport(
        output=output,
        rows_scored=written.rows,
        load=stream.report,
        routed_to_sales=written.to_sales,
    )


class _Written:
    """Scored chunks written in file order, and what they added up to."""

    def __init__(self) -> None:
        self.rows = self.to_sales = 0
        self.header = True

    def add(self, table: pd.DataFrame, sink: pa.NativeFile) -> None:
        # Arrow's CSV writer is several times faster than pandas' on millions of rows, and
        # formats each value on its own, so chunks write exactly what one table would.
        options = pacsv.WriteOptions(include_header=self.header)
        pacsv.write_csv(pa.Table.from_pandas(table, preserve_index=False), sink, options)
        self.header = False
        self.rows += len(table)
        self.to_sales += int(np.count_nonzero(table["route"].to_numpy() == "sales"))
