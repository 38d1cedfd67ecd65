"""Loading a registered model by alias: shared by the service and batch scoring.

MLflow is imported where the registry is read, not with this module: a model already on disk
(`load_saved`, e.g. from `sal score`'s cache) loads without starting MLflow, about 2 s.
"""

from __future__ import annotations

import logging
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from models.acceptance import ARTIFACT_KEY, AcceptanceModel, load_acceptance_model
from models.policy import RoutingPolicy

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from models.fastpath import LeadScorer

log = logging.getLogger(__name__)

# Where a training run keeps its HTML (pipeline/run.py writes them, the service shows them).
REPORT_ARTIFACT = "training_report.html"
CARD_ARTIFACT = "model_card.html"


@dataclass(frozen=True)
class LoadedModel:
    """A registered AcceptanceModel with its name, version and routing threshold."""

    model: AcceptanceModel
    name: str
    version: str
    routing_threshold: float
    # The training run's HTML, fetched once at load for whoever shows it (the service).
    reports: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def policy(self) -> RoutingPolicy | None:
        """The routing policy stored with this version (None for versions older than it)."""
        stored = self.model.metadata.get("routing_policy")
        return RoutingPolicy.from_dict(stored) if stored else None

    @cached_property
    def scorer(self) -> LeadScorer:
        """The single-lead hot path, prepared once per loaded version: the service asks for it
        when it loads a model, so no request pays for it. Batches never need it, and it needs
        LightGBM (see AcceptanceModel.batch_form)."""
        from models.fastpath import LeadScorer

        return LeadScorer(self.model)


def alias_version(tracking_uri: str, name: str, alias: str) -> str:
    """The version an alias points at now (one registry call, no artifact download)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    return str(client.get_model_version_by_alias(name, alias).version)


def load_by_alias(
    tracking_uri: str,
    name: str,
    alias: str,
    default_threshold: float,
    with_reports: bool = False,
    download_to: Path | None = None,
) -> LoadedModel:
    """The model the alias points at, with the routing threshold stored on its version (and its
    training report and model card when `with_reports`). `download_to`: the folder the model's
    files go to (default: a temporary one)."""
    from mlflow import MlflowClient

    version = MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(name, alias)
    return _load(tracking_uri, name, version, default_threshold, with_reports, download_to)


def load_version(
    tracking_uri: str, name: str, version: str, default_threshold: float
) -> LoadedModel:
    """One registered version, whatever alias it has (a challenger, a rollback target)."""
    from mlflow import MlflowClient

    found = MlflowClient(tracking_uri=tracking_uri).get_model_version(name, version)
    return _load(tracking_uri, name, found, default_threshold, with_reports=False)


def _load(
    tracking_uri: str,
    name: str,
    version: ModelVersion,
    default_threshold: float,
    with_reports: bool,
    download_to: Path | None = None,
) -> LoadedModel:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    local = mlflow.artifacts.download_artifacts(
        f"models:/{name}/{version.version}",
        dst_path=str(download_to) if download_to is not None else None,
    )
    return load_saved(
        Path(local),
        name,
        str(version.version),
        routing_threshold(version, default_threshold),
        _reports(tracking_uri, version.run_id) if with_reports else {},
    )


def load_saved(
    model_dir: Path,
    name: str,
    version: str,
    routing_threshold: float,
    reports: dict[str, str] | None = None,
    pickled: Path | None = None,
) -> LoadedModel:
    """A registered version from its files as MLflow downloads them (by `load_by_alias`, now or
    earlier), without MLflow: the pickled AcceptanceModel the pyfunc wraps, read where its
    MLmodel file says it is. Going through `mlflow.pyfunc.load_model` gives the same object
    after importing the pyfunc machinery and checking every installed distribution against the
    model's requirements (about 0.9 s); the same comparison is made here directly.
    `pickled`: another form of the same model to read instead (`sal score`'s batch form)."""
    if pickled is None:
        pickled = model_dir / _pyfunc_flavor(model_dir)["artifacts"][ARTIFACT_KEY]["path"]
    model = load_acceptance_model(pickled)
    warn_on_mismatches(model_dir, f"{name} v{version}")
    return LoadedModel(model, name, version, routing_threshold, reports or {})


def _pyfunc_flavor(model_dir: Path) -> dict:
    # MLmodel is YAML; reading it directly spares loading MLflow for a model already on disk.
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8")) or {}
    return (mlmodel.get("flavors") or {}).get("python_function") or {}


def warn_on_mismatches(model_dir: Path, model: str) -> list[str]:
    """Log (and return) each way this environment differs from the one the model was saved in:
    the Python minor version and the pinned packages of its requirements.txt."""
    found = []
    trained_on = str(_pyfunc_flavor(model_dir).get("python_version", ""))
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if trained_on and not (trained_on + ".").startswith(running + "."):
        found.append(f"Python {trained_on} (this is {platform.python_version()})")
    requirements = model_dir / "requirements.txt"
    lines = requirements.read_text().splitlines() if requirements.is_file() else []
    for line in lines:
        try:
            wanted = Requirement(line)
        except InvalidRequirement:  # comments, options such as -r or --index-url
            continue
        try:
            installed = metadata.version(wanted.name)
        except metadata.PackageNotFoundError:
            found.append(f"{wanted} (not installed)")
            continue
        if not wanted.specifier.contains(installed, prereleases=True):
            found.append(f"{wanted} (installed: {installed})")
    for difference in found:
        log.warning("%s was saved with %s; scores may differ", model, difference)
    return found


def routing_threshold(version: ModelVersion, default: float) -> float:
    """The threshold stored on a version by its routing policy (`default` for older versions)."""
    return float(version.tags.get("routing_threshold", default))


def _reports(tracking_uri: str, run_id: str | None) -> dict[str, str]:
    """The training run's HTML reports by name (none for runs older than the reports)."""
    if run_id is None:
        return {}
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="report", dst_path=tmp, tracking_uri=tracking_uri
            )
        except Exception:  # older runs have none; any store error means "not available"
            return {}
        found = {name: Path(folder) / name for name in (REPORT_ARTIFACT, CARD_ARTIFACT)}
        return {
            name: path.read_text(encoding="utf-8") for name, path in found.items() if path.is_file()
        }
