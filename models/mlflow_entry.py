"""MLflow "models from code" entry point: MLflow runs this file to build the pyfunc.

Logged as the model's code (not pickled), so loading a model never unpickles our class definition;
only the fitted AcceptanceModel travels as an artifact.
"""

import mlflow

from models.pyfunc import LeadAcceptancePyfunc

mlflow.models.set_model(LeadAcceptancePyfunc())
