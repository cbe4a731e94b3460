"""What the model server reads and answers: one pydantic model per body.

The routes are typed with these models, so ``/docs`` and ``/openapi.json`` describe exactly what is
sent and answered, and FastAPI checks every answer against its model before it leaves.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from poise.contracts import Label

MAX_RECORDS = 100_000

Scalar = str | int | float | bool | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests --------------------------------------------------------------------------------------------------


class PredictRequest(_Body):
    """Either ``records`` (a batch) or ``record`` (one row): column name → value; null means missing."""

    records: list[dict[str, Scalar]] | None = Field(default=None, min_length=1, max_length=MAX_RECORDS)
    record: dict[str, Scalar] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.records is None) == (self.record is None):
            raise ValueError('send either "records": [{...}, ...] or "record": {...}')
        return self

    def rows(self) -> list[dict[str, Scalar]]:
        return self.records if self.records is not None else [self.record or {}]


class FeedbackRequest(_Body):
    """True labels for a logged request: ``labels`` for all its rows in order, or one ``row`` and ``label``."""

    request_id: str = Field(min_length=1, max_length=64)
    labels: list[Label] | None = Field(default=None, min_length=1, max_length=MAX_RECORDS)
    row: int | None = Field(default=None, ge=0)
    label: Label | None = None

    @model_validator(mode="after")
    def _labels_or_one_row(self) -> FeedbackRequest:
        one_row = self.row is not None or self.label is not None
        complete = self.row is not None and self.label is not None
        if (self.labels is not None and one_row) or (self.labels is None and not complete):
            raise ValueError('send either "labels": [...] (every row, in order) or "row" and "label" (one row)')
        return self


# --- answers ---------------------------------------------------------------------------------------------------


class Prediction(_Body):
    proba: float = Field(description="Probability of the positive class.")
    pred: Label = Field(description="The decision at the model's tuned threshold, in the target's own values.")


class PredictResponse(_Body):
    model: str
    version: str
    request_id: str | None = Field(description="Quote it (with the row number) in /feedback; null if logging failed.")
    predictions: list[Prediction]
    warnings: list[str] = Field(default_factory=list, description="What reading the uploaded CSV changed.")


class FeedbackResponse(_Body):
    request_id: str
    labelled: int = Field(description="How many logged rows now carry a true label.")


class ModelInfo(_Body):
    """The served version's card: read once when the version is loaded, so ``/model`` never asks the registry."""

    name: str
    version: str
    alias: str = Field(description="The registry alias the server follows.")
    created_at: str | None = Field(description="When the version was registered (ISO 8601, UTC).")
    trained_at: str | None = Field(description="When its training run ended (ISO 8601, UTC).")
    run_id: str | None = Field(description="The MLflow run that trained it.")
    holdout_metrics: dict[str, float] = Field(description="Scores on the holdout, judged once by the final model.")
    metric: str | None = Field(description="The metric the search optimised.")
    threshold: float = Field(ge=0.0, le=1.0, description="Probability at or above which `pred` is the positive class.")
    strategy: str = Field(description="The imbalance strategy (resampling or weighting).")
    estimator: str
    target: str
    positive_label: Label
    negative_label: Label
    features: list[str] = Field(description="Every column a request must carry.")
    numeric: list[str]
    categorical: list[str]
    datetime: list[str]


class SwapError(_Body):
    """Why the server is not serving ``@champion``; the version before keeps serving."""

    version: str | None = Field(description="The version that failed to load; null if the registry was unreadable.")
    error: str
    at: str


class LogError(_Body):
    """The last failure to log a prediction; the prediction itself was still answered."""

    error: str
    at: str


class HealthResponse(_Body):
    status: Literal["ok", "degraded"] = Field(description="Degraded while the newest @champion could not be loaded.")
    model: str
    version: str
    loaded_at: str
    last_checked_at: str | None = Field(description="When @champion was last looked up.")
    last_swap_error: SwapError | None
    last_log_error: LogError | None


class ReloadResponse(_Body):
    changed: bool = Field(description="True if a new version now serves.")
    model: str
    version: str
    last_swap_error: SwapError | None
