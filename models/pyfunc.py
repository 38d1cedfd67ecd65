"""The MLflow pyfunc wrapper and the signature derived from the spec.

The pyfunc takes raw leads (the columns the spec declares, as a CRM exports them) and returns the
acceptance model's output, preprocessing included: nothing has to be re-implemented to score.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from models.acceptance import ARTIFACT_KEY, AcceptanceModel, load_acceptance_model
from models.features import redact_personal
from models.spec import DatasetSpec, FieldType

# Numbers are numbers; everything else is taken as the CRM wrote it (booleans as true/false/yes/no
# text), because normalisation, not MLflow's type coercion, decides what a raw value means.
_MLFLOW_TYPES = {FieldType.numeric: "double"}


class LeadAcceptancePyfunc(mlflow.pyfunc.PythonModel):
    """Loads the pickled AcceptanceModel from the run's artifacts and scores DataFrames of leads."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = load_acceptance_model(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict | None = None,
    ) -> pd.DataFrame:
        return self.model.predict(pd.DataFrame(model_input))


def signature_for(model: AcceptanceModel) -> ModelSignature:
    """Input and output schema of the pyfunc, derived from the spec (every input optional)."""
    spec = model.spec
    inputs = [ColSpec("string", spec.id, required=False)] if spec.id else []
    if spec.timestamp:
        inputs.append(ColSpec("string", spec.timestamp, required=False))
    inputs += [
        ColSpec(_MLFLOW_TYPES.get(f.type, "string"), name, required=False)
        for name, f in spec.fields.items()
    ]
    outputs = [ColSpec("double", "p_accept")]
    if model.sql is not None:
        outputs.append(ColSpec("double", "p_sql"))
    outputs += [ColSpec("double", "rule_score"), ColSpec("boolean", "rule_pass")]
    outputs += [ColSpec("double", f"criterion_{name}") for name in model.criteria.criteria]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def to_signature_types(leads: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Raw leads (e.g. all text from a CSV) typed as the pyfunc's signature expects."""
    columns = [c for c in (spec.id, spec.timestamp, *spec.fields) if c and c in leads]
    typed = leads[columns].copy()
    for name in columns:
        field = spec.fields.get(name)
        if field is not None and field.type is FieldType.numeric:
            typed[name] = pd.to_numeric(typed[name], errors="coerce").astype("float64")
        else:
            typed[name] = typed[name].astype(object).where(typed[name].notna(), None)
    return typed.reset_index(drop=True)


def input_example(leads: pd.DataFrame, spec: DatasetSpec, rows: int = 3) -> pd.DataFrame:
    """A few leads typed as the signature says, personal values replaced by stand-ins."""
    return redact_personal(to_signature_types(leads.head(rows), spec), spec)
