"""The model-from-code entry MLflow runs when it loads a poise model (see ``versions.register_model``)."""

import mlflow

from poise.registry.model import PoiseModel

mlflow.models.set_model(PoiseModel())
