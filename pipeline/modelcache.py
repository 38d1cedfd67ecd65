"""`sal score`'s local copy of the model an alias points at, so a run need not start MLflow.

Resolving an alias through MLflow imports MLflow and its SQL store and queries the registry:
about 2 s of a `sal score` run, which is most of a short marketing list's. Most runs find the
registry as the last one left it, so the last resolution is kept on disk: the version, its
routing threshold and the model's files as MLflow downloaded them.

A copy is used only while the registry cannot have changed. That is knowable for a SQLite
registry: every write changes its file (or its write-ahead log), so a copy is filed under the
files' inode, size and modification time, and a write of any kind (an alias moved, a run logged)
makes the next run resolve through MLflow again. A file changed within the last few seconds is
never trusted, as its time stamp might not show a second write in the same tick. Any other
registry (PostgreSQL, a tracking server) is resolved through MLflow every time.

Beside the model's files a copy keeps the model's batch form (AcceptanceModel.batch_form: its
boosters as batch forests). It unpickles in 0.01 s, where the registered model takes 0.9 s,
most of it importing LightGBM, which imports scikit-learn and SciPy. A run without reasons
scores with it. It is filed under the code that made it, so a release that changes the
forest's layout makes a new one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from models import acceptance, forest
from models.acceptance import save_acceptance_model
from models.registry import LoadedModel, load_by_alias, load_saved
from models.uris import sqlite_file

log = logging.getLogger(__name__)

_ENTRY = "entry.json"
_MODEL = "model"
# How long a registry file must have been left alone before a copy is filed under its state.
_SETTLED_SECONDS = 2.0


def load_alias(
    tracking_uri: str,
    name: str,
    alias: str,
    default_threshold: float,
    cache_dir: Path,
    batch: bool = False,
) -> LoadedModel:
    """The model `alias` points at, as models.registry.load_by_alias loads it; from
    `cache_dir` when an earlier run filed it there under the registry's present state.
    `batch`: its batch form will do, where the copy has one (scores files only, no reasons)."""
    database = _sqlite_file(tracking_uri)
    if database is None:
        return load_by_alias(tracking_uri, name, alias, default_threshold)
    state = _state(database)
    home = cache_dir / _digest(tracking_uri, name, alias, repr(default_threshold))
    entry = home / state
    if (entry / _ENTRY).is_file():
        try:
            return _read(entry, name, batch)
        except Exception as exc:  # a damaged copy is a miss, never a failed run
            log.warning("%s: unreadable cached model (%s); loading from the registry", entry, exc)
    partial = home / f".partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        loaded = load_by_alias(
            tracking_uri, name, alias, default_threshold, download_to=partial / _MODEL
        )
        if _state(database) == state and _settled(database):
            _file(partial, entry, loaded)
        return loaded
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _read(entry: Path, name: str, batch: bool) -> LoadedModel:
    saved = json.loads((entry / _ENTRY).read_text(encoding="utf-8"))
    version, threshold = saved["version"], saved["routing_threshold"]
    form = entry / _batch_file()
    if batch and form.is_file():
        return load_saved(entry / _MODEL, name, version, threshold, pickled=form)
    loaded = load_saved(entry / _MODEL, name, version, threshold)
    if batch:  # a copy filed by a release before this one: its form is made once, now
        _file_batch_form(loaded, entry)
    return loaded


def _file(partial: Path, entry: Path, loaded: LoadedModel) -> None:
    """Move a complete download into place under the registry's state, with the model's batch
    form, and drop the copies filed under states that are gone. Another run filing the same
    state first is fine."""
    record = {"version": loaded.version, "routing_threshold": loaded.routing_threshold}
    (partial / _ENTRY).write_text(json.dumps(record), encoding="utf-8")
    _file_batch_form(loaded, partial)
    try:
        partial.rename(entry)
    except OSError:  # filed meanwhile by a run alongside (rename won't replace a full folder)
        return
    for other in entry.parent.iterdir():
        if other != entry and not other.name.startswith(".partial-"):
            shutil.rmtree(other, ignore_errors=True)


def _file_batch_form(loaded: LoadedModel, folder: Path) -> None:
    form = loaded.model.batch_form()
    if form is None:  # a booster the forest does not cover: batches use LightGBM
        return
    name = _batch_file()
    partial = folder / f".{name}.{os.getpid()}"
    try:
        save_acceptance_model(form, partial)
        partial.replace(folder / name)  # whole or none, for a run reading alongside
    except OSError as exc:  # a cache that cannot be written is a miss, not a failed run
        log.warning("%s: could not keep the model's batch form (%s)", folder, exc)
        partial.unlink(missing_ok=True)
        return
    for stale in folder.glob("batch-*.pickle"):  # made by other code, which is gone
        if stale.name != name:
            stale.unlink(missing_ok=True)


@functools.cache  # the code does not change under a running process
def _batch_file() -> str:
    """The batch form's name, for the code that pickles and reads it."""
    code = b"".join(Path(module.__file__ or "").read_bytes() for module in (acceptance, forest))
    return f"batch-{hashlib.sha256(code).hexdigest()[:12]}.pickle"


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` registry that exists (None for any other)."""
    path = sqlite_file(tracking_uri)
    return path if path is not None and path.is_file() else None


def _files(database: Path) -> list[Path]:
    # SQLite writes to the log first, when the database is in write-ahead-log mode.
    return [database, database.with_name(f"{database.name}-wal")]


def _state(database: Path) -> str:
    """A name for the registry files as they are now: any write gives another."""
    parts = []
    for path in _files(database):
        try:
            found = path.stat()
        except FileNotFoundError:
            parts.append(f"{path.name}:-")
            continue
        parts.append(f"{path.name}:{found.st_ino}:{found.st_size}:{found.st_mtime_ns}")
    return _digest(*parts)


def _settled(database: Path) -> bool:
    newest = max((p.stat().st_mtime for p in _files(database) if p.exists()), default=0.0)
    return time.time() - newest >= _SETTLED_SECONDS


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]
