"""Batch scoring of a leads file (e.g. a marketing list) with a registered model.

Uses models.scoring, the code path the API's batches use, so a lead gets the same score, tier,
route and rule breakdown from a file as over HTTP.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from models.registry import LoadedModel
from models.scoring import score_clean
from pipeline.load import LoadReport, load_leads

# Leads scored per call of score_clean. Two chunks are in flight at once: while LightGBM (which
# releases the GIL) walks the trees for one, the other's encoding, rules and table are built, and
# the chunk before is written; every lead's result is independent of the chunk it is in.
CHUNK_ROWS = 100_000


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
    lead and write one CSV row per lead to `output`."""
    spec = loaded.model.spec
    leads = load_leads(path, spec, rejects_path=rejects, labelled=False)
    lead_ids = leads.frame[spec.id].to_numpy() if spec.id else None

    def score_chunk(rows: slice) -> pd.DataFrame:
        ids = lead_ids[rows] if lead_ids is not None else None
        scored = score_clean(loaded, leads.clean.iloc[rows], ids, sla_hours, with_reasons)
        table = scored.table
        if scored.reasons is not None:
            table["reasons"] = ["; ".join(r.text for r in reasons) for reasons in scored.reasons]
        return table

    output.parent.mkdir(parents=True, exist_ok=True)
    chunks = [  # an empty file still gets one (empty) chunk, so the output has its header
        slice(start, start + CHUNK_ROWS) for start in range(0, max(len(leads.clean), 1), CHUNK_ROWS)
    ]
    rows_scored = routed_to_sales = 0
    with pa.OSFile(str(output), "wb") as sink, ThreadPoolExecutor(max_workers=2) as pool:
        for i, table in enumerate(pool.map(score_chunk, chunks)):
            # Arrow's CSV writer is several times faster than pandas' on millions of rows, and
            # formats each value on its own, so chunks write exactly what one table would.
            options = pacsv.WriteOptions(include_header=i == 0)
            pacsv.write_csv(pa.Table.from_pandas(table, preserve_index=False), sink, options)
            rows_scored += len(table)
            routed_to_sales += int(np.count_nonzero(table["route"].to_numpy() == "sales"))
    return ScoreReport(
        output=output,
        rows_scored=rows_scored,
        load=leads.report,
        routed_to_sales=routed_to_sales,
    )
