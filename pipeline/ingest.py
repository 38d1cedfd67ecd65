"""Ingest the service's scoring log and outcomes as a training file.

The result is an ordinary leads file the spec describes, so it goes through exactly the same
validation, audit and split as a CRM export.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from models import store
from models.spec import DatasetSpec


def export_scoring_log(database_url: str, spec: DatasetSpec, out_dir: Path) -> Path:
    """Write the point-in-time training set from the scoring log + outcomes to a CSV; its path."""
    engine = store.connect(database_url)
    try:
        frame = store.training_frame(engine, spec)
    finally:
        engine.dispose()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"scoring-log-{datetime.now(UTC):%Y%m%dT%H%M%S}.csv"
    frame.to_csv(path, index=False)
    return path
