"""Batch scoring of a leads file (e.g. a marketing list) with a registered model.

Uses models.scoring, the code path the API's batches use, so a lead gets the same score, tier,
route and rule breakdown from a file as over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from models.registry import LoadedModel
from models.scoring import score_clean
from pipeline.load import LoadReport, load_leads


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
    scored = score_clean(loaded, leads.clean, lead_ids, sla_hours, with_reasons)
    table = scored.table
    if scored.reasons is not None:
        table["reasons"] = ["; ".join(r.text for r in reasons) for reasons in scored.reasons]
    output.parent.mkdir(parents=True, exist_ok=True)
    # Arrow's CSV writer is several times faster than pandas' on millions of rows.
    pacsv.write_csv(pa.Table.from_pandas(table, preserve_index=False), output)
    return ScoreReport(
        output=output,
        rows_scored=len(table),
        load=leads.report,
        routed_to_sales=int((table["route"] == "sales").sum()),
    )
