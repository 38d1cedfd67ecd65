"""`sal score`'s local copy of the resolved model: used only while the registry is unchanged."""

from __future__ import annotations

import os
import shutil
import sys
import time

import numpy as np
import pandas as pd
import pytest

from pipeline import modelcache
from pipeline.modelcache import load_alias


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
