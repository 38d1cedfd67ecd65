"""Registration's own decisions (the gate's checks are tested in tests/test_backtest.py)."""

from __future__ import annotations

import logging
import platform
from importlib import metadata
from pathlib import Path

from pipeline.register import Champion
from pipeline.run import _gate


def test_a_champion_that_cannot_score_the_slice_is_not_replaced_blindly() -> None:
    champion = Champion("3", None, 0.8, "missing columns ['region']")
    promote, reason = _gate(record=None, champion=champion)  # decided before any scoring
    assert promote is False
    assert "champion v3 could not be scored" in reason and "missing columns" in reason
    assert "sal evaluate" in reason


def test_a_model_saved_in_another_environment_is_loaded_with_a_warning_per_difference(
    trained, tmp_path, caplog
) -> None:
    """MLflow's own requirement check is skipped at load (it costs ~0.9 s); ours compares the
    model's Python version and pinned packages with this environment."""
    import shutil

    import mlflow
    import yaml

    from models.registry import load_by_alias, warn_on_mismatches

    summary, settings, _ = trained
    mlflow.set_tracking_uri(settings.tracking_uri)
    saved = Path(mlflow.artifacts.download_artifacts(f"models:/{summary.model_name}@champion"))
    assert warn_on_mismatches(saved, "the champion") == []  # trained in this very environment
    with caplog.at_level(logging.WARNING, logger="models.registry"):
        load_by_alias(settings.tracking_uri, summary.model_name, "champion", 0.5)
    assert not caplog.records

    other = shutil.copytree(saved, tmp_path / "other")
    meta = yaml.safe_load((other / "MLmodel").read_text())
    meta["flavors"]["python_function"]["python_version"] = "3.9.18"
    (other / "MLmodel").write_text(yaml.safe_dump(meta))
    with (other / "requirements.txt").open("a") as requirements:
        requirements.write("\n# a comment\nlightgbm==3.3.5\nsal-no-such-package==1.0\n")
    with caplog.at_level(logging.WARNING, logger="models.registry"):
        found = warn_on_mismatches(other, "v9")
    assert found == [
        f"Python 3.9.18 (this is {platform.python_version()})",
        f"lightgbm==3.3.5 (installed: {metadata.version('lightgbm')})",
        "sal-no-such-package==1.0 (not installed)",
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"v9 was saved with {difference}; scores may differ" for difference in found
    ]
