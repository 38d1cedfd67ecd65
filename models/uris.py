"""URI helpers and defaults shared by the pipeline's and the service's settings."""

from __future__ import annotations

from pathlib import Path

_SQLITE = "sqlite:///"

DEFAULT_MODEL_NAME = "lead-acceptance"  # the built-in spec's model_name
# The service's scoring log and outcomes: written by `sal serve`, read by `sal monitor`/`train`.
DEFAULT_DATABASE_URL = "sqlite:///sal.db"


def absolute_sqlite(uri: str) -> str:
    """Make a relative SQLite URI absolute, so it does not follow the working directory around."""
    if uri.startswith(_SQLITE) and not uri.startswith(_SQLITE + "/"):
        return _SQLITE + str(Path(uri.removeprefix(_SQLITE)).resolve())
    return uri


def sqlite_file(uri: str) -> Path | None:
    """The database file a `sqlite:///` URI names (None for any other URI)."""
    if not uri.startswith(_SQLITE):
        return None
    return Path(uri.removeprefix(_SQLITE).split("?", 1)[0])
