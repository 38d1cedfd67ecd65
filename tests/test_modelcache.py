"""`sal score`'s local copy of the resolved model: used only while the registry is unchanged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from pipeline import modelcache
from pipeline.modelcache import load_alias
from tests.conftest import ROOT


@pytest.fixture()
def registry(trained, tmp_path):
    """A copy of the session's SQLite registry (the models' files stay where they are), so
    aliases can move here without touching the other tests' registry."""
    summary, settings, _ = trained
    database = tmp_path / "mlflow.db"
    shutil.copy(settings.tracking_uri.removeprefix("sqlite:///"), database)
    return f"sqlite:///{database}", summary.model_name, tmp_path / "cache"


def _settle(uri: str) -> None:
    """Date the registry file back, as if written a while ago (a fresh write is not trusted)."""
    path = uri.removeprefix("sqlite:///")
    past = time.time() - 60
    os.utime(path, (past, past))


def test_the_next_run_takes_the_model_from_the_cache_without_mlflow(
    registry, builtin_csv, monkeypatch
) -> None:
    uri, name, cache = registry
    leads = pd.read_csv(builtin_csv, nrows=300, dtype=str)
    _settle(uri)
    first = load_alias(uri, name, "champion", 0.5, cache)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # any import of MLflow now fails
    again = load_alias(uri, name, "champion", 0.5, cache)
    assert (again.version, again.routing_threshold) == (first.version, first.routing_threshold)
    expected = first.model.predict(leads)
    np.testing.assert_array_equal(again.model.predict(leads).to_numpy(), expected.to_numpy())


def test_a_moved_alias_is_resolved_again(registry) -> None:
    from mlflow import MlflowClient

    uri, name, cache = registry
    _settle(uri)
    first = load_alias(uri, name, "champion", 0.5, cache)
    client = MlflowClient(tracking_uri=uri)
    current = client.get_model_version(name, first.version)
    newer = client.create_model_version(name, current.source, run_id=current.run_id)
    client.set_registered_model_alias(name, "champion", newer.version)
    _settle(uri)
    assert load_alias(uri, name, "champion", 0.5, cache).version == str(newer.version)
    assert len(list(cache.glob("*/*"))) == 1  # the copy of the old state is gone


def test_a_registry_written_just_now_is_not_trusted(registry, monkeypatch) -> None:
    uri, name, cache = registry
    # Written this very moment, and the load (however slow the machine) inside the window.
    monkeypatch.setattr(modelcache, "_SETTLED_SECONDS", 3600.0)
    os.utime(uri.removeprefix("sqlite:///"))
    load_alias(uri, name, "champion", 0.5, cache)
    assert not list(cache.glob("*/*"))  # nothing filed: the next run resolves through MLflow


def test_a_damaged_copy_loads_from_the_registry(registry, caplog) -> None:
    uri, name, cache = registry
    _settle(uri)
    first = load_alias(uri, name, "champion", 0.5, cache)
    (pickled,) = cache.glob("*/*/model/artifacts/*.pkl")
    pickled.write_bytes(b"not a pickle")
    again = load_alias(uri, name, "champion", 0.5, cache)
    assert again.version == first.version
    assert "unreadable cached model" in caplog.text


def test_only_a_sqlite_registry_is_cached(tmp_path) -> None:
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"")
    assert modelcache._sqlite_file(f"sqlite:///{database}") == database
    assert modelcache._sqlite_file("postgresql://127.0.0.1:5432/test") is None
    assert modelcache._sqlite_file("http://127.0.0.1:5000") is None


def test_a_batch_run_scores_with_the_batch_form_the_same(registry, builtin_csv) -> None:
    uri, name, cache = registry
    leads = pd.read_csv(builtin_csv, nrows=300, dtype=str)
    _settle(uri)
    full = load_alias(uri, name, "champion", 0.5, cache)
    assert len(list(cache.glob("*/*/batch-*.pickle"))) == 1  # filed with the model's files
    batch = load_alias(uri, name, "champion", 0.5, cache, batch=True)
    assert not hasattr(batch.model.accept, "booster")  # the forest, not LightGBM
    assert (batch.version, batch.routing_threshold) == (full.version, full.routing_threshold)
    # Bit for bit: the forest's margins are LightGBM's own sums.
    np.testing.assert_array_equal(
        batch.model.predict(leads).to_numpy(), full.model.predict(leads).to_numpy()
    )


def test_a_copy_without_a_batch_form_gets_one(registry) -> None:
    """A copy filed by an earlier release (or under other code) is completed, not refiled."""
    uri, name, cache = registry
    _settle(uri)
    load_alias(uri, name, "champion", 0.5, cache)
    (form,) = cache.glob("*/*/batch-*.pickle")
    form.unlink()
    assert hasattr(
        load_alias(uri, name, "champion", 0.5, cache, batch=True).model.accept, "booster"
    )
    assert form.is_file()
    assert not hasattr(
        load_alias(uri, name, "champion", 0.5, cache, batch=True).model.accept, "booster"
    )


def test_a_batch_run_loads_neither_lightgbm_nor_scikit_learn(
    registry, builtin_csv, tmp_path
) -> None:
    """What makes a short list quick: LightGBM imports scikit-learn and SciPy, about 1 s, and
    Numba would import SciPy's linear algebra and cffi, 0.2 s, which models.jit keeps out of
    sight (and only while Numba looks: they import as usual afterwards). A CSV file needs no
    Parquet reader either (30 ms)."""
    uri, name, cache = registry
    _settle(uri)
    load_alias(uri, name, "champion", 0.5, cache)  # fills the cache
    script = f"""
import sys
from pathlib import Path
from pipeline.modelcache import load_alias
from pipeline.score import score_file
loaded = load_alias({uri!r}, {name!r}, "champion", 0.5, Path({str(cache)!r}), batch=True)
report = score_file(Path({str(builtin_csv)!r}), loaded, Path({str(tmp_path / "out.csv")!r}))
heavy = ("lightgbm", "sklearn", "mlflow", "scipy.linalg", "cffi", "pyarrow.parquet")
print(report.rows_scored, *[module for module in heavy if module in sys.modules])
import scipy.linalg, cffi
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    rows, *imported = done.stdout.split()
    assert imported == []
    assert int(rows) == len(pd.read_csv(tmp_path / "out.csv")) > 11_000


def test_a_batch_form_made_by_other_code_is_dropped_when_a_new_one_is_filed(registry) -> None:
    uri, name, cache = registry
    _settle(uri)
    load_alias(uri, name, "champion", 0.5, cache)
    (form,) = cache.glob("*/*/batch-*.pickle")
    stale = form.with_name("batch-000000000000.pickle")  # an earlier release's
    form.rename(stale)
    load_alias(uri, name, "champion", 0.5, cache, batch=True)
    assert form.is_file()
    assert not stale.exists()
