"""The served model and its hot reload: poll the registry alias, swap atomically, keep serving.

Requests take a reference to the current LoadedModel when they start, so a swap never changes the
model under a request in flight; a failed load leaves the old model serving and records the error.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from models.registry import LoadedModel, alias_version, load_by_alias
from models.spec import load_spec
from serving.settings import ServeSettings

log = logging.getLogger(__name__)


def champion_version(settings: ServeSettings) -> str:
    return alias_version(settings.tracking_uri, settings.model_name, settings.model_alias)


def load_champion(settings: ServeSettings) -> LoadedModel:
    """The alias's model, refused if it needs fields the service's request model lacks."""
    loaded = load_by_alias(
        settings.tracking_uri,
        settings.model_name,
        settings.model_alias,
        settings.routing_threshold,
        with_reports=True,
    )
    served = load_spec(settings.spec_path)
    missing = sorted(set(loaded.model.spec.lead_columns) - set(served.lead_columns))
    if missing:
        raise ValueError(
            f"{settings.model_name} v{loaded.version} was trained on spec "
            f"{loaded.model.spec.name!r}, which needs fields {missing} that the service's spec "
            f"{served.name!r} ({settings.spec_path}) does not have"
        )
    loaded.scorer  # prepared now, before the model serves a request  # noqa: B018
    return loaded


class ModelHolder:
    """The currently served model, replaced as a whole (one reference assignment) on reload."""

    def __init__(
        self,
        settings: ServeSettings,
        loader: Callable[[ServeSettings], LoadedModel] = load_champion,
        version_of: Callable[[ServeSettings], str] = champion_version,
    ) -> None:
        self.settings = settings
        self.loaded: LoadedModel | None = None
        self.error: str | None = None
        self._loader = loader
        self._version_of = version_of
        self._lock = threading.Lock()  # one load at a time; scoring never waits on it

    def reload(self, force: bool = False) -> bool:
        """Load the alias's version if it moved (or `force`); True when the model changed."""
        with self._lock:
            try:
                unchanged = (
                    not force
                    and self.loaded is not None
                    and (self._version_of(self.settings) == self.loaded.version)
                )
                if unchanged:
                    return False
                fresh = self._loader(self.settings)
            except Exception as exc:  # any failure: keep serving what we have, and say why
                self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.error(
                    "model load failed, still serving %s: %s",
                    self.loaded.version if self.loaded else "nothing",
                    self.error,
                )
                return False
            previous, self.loaded, self.error = self.loaded, fresh, None
            log.info(
                "now serving %s v%s (was %s)",
                fresh.name,
                fresh.version,
                previous.version if previous else "none",
            )
            return True

    async def watch(self, interval: float) -> None:
        """Poll the registry every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.reload)
