"""The registered model: a sampler-free pipeline plus everything needed to use it correctly.

``PoiseModel`` is the MLflow pyfunc that every registered version is. It carries the fitted
preprocessing + model pipeline, the tuned threshold and the label mapping, and answers
with two columns: ``proba`` (probability of the positive class) and ``pred`` (the label,
in the target's own values). ``ModelCard`` is its metadata, stored beside it as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext
from pydantic import BaseModel, Field

from poise.contracts import Label
from poise.errors import PoiseError

CARD_FILE = "poise_model.json"
PIPELINE_FILE = "pipeline.joblib"


class ModelInputError(PoiseError):
    """Rows that do not fit the model's input: missing, unknown or mistyped columns."""


class ModelCard(BaseModel):
    """What a registered version needs to know about its own input and output."""

    target: str
    positive_label: Label
    negative_label: Label
    threshold: float = Field(ge=0.0, le=1.0)
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    datetime: list[str] = Field(default_factory=list)
    ignored: list[str] = Field(default_factory=list, description="Columns the model knows and does not use.")
    strategy: str = ""
    estimator: str = ""
    members: list[str] = Field(default_factory=list, description="strategy/estimator of each blended member.")
    metric: str = ""
    trained_on_holdout: bool = Field(
        default=False, description="Also trained on its holdout rows, after they judged its recipe: it is scored "
                                   "there by its recipe's out-of-sample scores, kept with its reference.")
    requirements: list[str] = Field(default_factory=list, description="Pinned packages it was trained with.")

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.datetime]

    def prepare(self, frame: pd.DataFrame, *, allow_extra: bool = False) -> pd.DataFrame:
        """The model's input columns from ``frame``, or an error naming every problem at once."""
        frame = frame.rename(columns=lambda c: str(c).strip())
        missing = [c for c in self.features if c not in frame.columns]
        known = set(self.features) | set(self.ignored) | {self.target}
        unknown = [c for c in frame.columns if c not in known]
        problems = []
        if missing:
            problems.append(f"missing column(s): {', '.join(map(repr, missing))}")
        if unknown and not allow_extra:
            problems.append(f"column(s) the model does not know: {', '.join(map(repr, unknown))}")
        if problems:
            raise ModelInputError(
                "the input does not match the model: " + "; ".join(problems),
                f"pass a table with the columns {', '.join(map(repr, self.features))}"
                + ("" if allow_extra or not unknown else " (or allow extra columns to ignore the unknown ones)"),
            )
        out = frame[self.features].copy()
        for name in self.numeric:
            values = pd.to_numeric(out[name], errors="coerce")
            bad = values.isna() & out[name].notna()
            if bad.any():
                example = out.loc[bad, name].iloc[0]
                raise ModelInputError(
                    f"column {name!r} must be numeric, but row {int(bad.idxmax())} holds {example!r}",
                    f"fix or blank the non-numeric values in {name!r}",
                )
            infinite = values.abs() == float("inf")
            if infinite.any():
                raise ModelInputError(
                    f"column {name!r} holds an infinite value in row {int(infinite.idxmax())} "
                    f"({int(infinite.sum())} row(s) in all)",
                    f"send a finite number, or leave the cell empty (null) where {name!r} is not known",
                )
            out[name] = values.astype(float)
        return out

    def label_of(self, positive: pd.Series) -> pd.Series:
        return positive.map({True: self.positive_label, False: self.negative_label})


class Classifier(Protocol):
    """What the registry keeps and serves: a fitted binary classifier (an inference pipeline or a blend)."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


class PoiseModel(PythonModel):
    """MLflow pyfunc: rows in, ``proba`` and ``pred`` out."""

    def load_context(self, context: PythonModelContext) -> None:
        import joblib

        self.pipeline = joblib.load(context.artifacts["pipeline"])
        self.card = ModelCard.model_validate_json(Path(context.artifacts["card"]).read_text())

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        return self.score(self.card.prepare(pd.DataFrame(model_input), allow_extra=True))

    def score(self, prepared: pd.DataFrame) -> pd.DataFrame:
        """``proba`` and ``pred`` of rows that ``card.prepare`` has already checked."""
        proba = self.pipeline.predict_proba(prepared)[:, 1]
        return pd.DataFrame({"proba": proba, "pred": self.card.label_of(pd.Series(proba >= self.card.threshold))})


def save_artifacts(pipeline: Classifier, card: ModelCard, folder: Path) -> dict[str, str]:
    """Write the pipeline and the card where ``mlflow.pyfunc.log_model`` can pick them up."""
    import joblib

    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, folder / PIPELINE_FILE)
    (folder / CARD_FILE).write_text(json.dumps(card.model_dump(mode="json"), indent=2))
    return {"pipeline": str(folder / PIPELINE_FILE), "card": str(folder / CARD_FILE)}
