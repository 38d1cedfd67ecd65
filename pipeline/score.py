"""Batch scoring of a leads file (e.g. a marketing list) with a registered model.

Uses models.scoring.score_frame, the code path the API uses, so a lead gets the same score, tier,
route and rule breakdown from a file as over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.registry import LoadedModel
from models.scoring import score_frame
from models.spec import DatasetSpec
from pipeline.load import LoadReport, load_leads


@dataclass(frozen=True)
class ScoreReport:
    output: Path
    rows_scored: int
    load: LoadReport
    routed_to_sales: int


def score_file(
    path: Path,
    spec: DatasetSpec,
    loaded: LoadedModel,
    output: Path,
    sla_hours: int = 24,
    with_reasons: bool = False,
    rejects: Path | None = None,
) -> ScoreReport:
    """Validate `path` (labels not needed), score every valid lead, write a CSV to `output`."""
    leads = load_leads(path, spec, rejects_path=rejects, labelled=False)
    scored = score_frame(loaded, leads.frame, sla_hours, with_reasons)
    table = scored.table
    if scored.reasons is not None:
        table["reasons"] = ["; ".join(r.text for r in reasons) for reasons in scored.reasons]
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False)
    return ScoreReport(
        output=output,
        rows_scored=len(table),
        load=leads.report,
        routed_to_sales=int((table["route"] == "sales").sum()),
    )
