"""The vocabulary every part of poise speaks.

These pydantic models are the only things that cross wings: the CLI builds them, the
agents fill them (they are also the JSON schema an LLM must answer in), the search
consumes them, the registry stores them as lineage and the audit trail records them.
A Plan is data, never code: nothing in here is executed.

Every numeric field is bounded, so a malformed or adversarial value is rejected here,
before it can reach an action.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Metric = Literal[
    "average_precision",
    "roc_auc",
    "mcc",
    "balanced_accuracy",
    "f1",
    "f_beta",
    "g_mean",
    "recall_at_precision",
    "precision_at_recall",
]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]

#: A class label as it appears in the data: "yes", 1, True, 2.0 ...
Label = bool | int | float | str

MAX_BUDGET_SECONDS = 7 * 24 * 3600
#: The budget of a task (and of its plan) that names none.
DEFAULT_BUDGET_SECONDS = 120.0

def normalise_column_name(name: object) -> str:
    """A column name as people mean it: ``"Air temperature [K]"`` and ``air_temperature_k`` are the same.

    The one key by which the data loader, the guardrails and the task parser match a name to a column.
    """
    return re.sub(r"[\W_]+", "", str(name)).lower()


#: Registered model names: what MLflow accepts and what is safe as a folder name and in a URL.
MODEL_NAME_RULE = (
    "a model name is 1 to 100 letters, digits, '-', '_' or '.', and does not start with '.' or '-'"
)
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_MODEL_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.-]")


def model_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a registered model name (naming the bad character), or None."""
    if _MODEL_NAME.fullmatch(name):
        return None
    bad = _MODEL_NAME_CHAR.search(name)
    if not name:
        what = "is empty"
    elif bad:
        what = f"has {bad.group()!r} at position {bad.start() + 1}"
    elif len(name) > 100:
        what = f"is {len(name)} characters long"
    else:
        what = f"starts with {name[0]!r}"
    return f"model name {name!r} {what}; {MODEL_NAME_RULE}"


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskSpec(_Contract):
    """What the user asked for: which table, which column to predict, and how to judge it."""

    data: str = Field(description="Path of the table (CSV, CSV.GZ or Parquet).")
    target: str = Field(min_length=1, max_length=512, description="Column to predict.")
    positive_label: Label | None = Field(
        default=None, description="The rare class to catch; None means 'the rarer class'."
    )
    metric: Metric = Field(default="average_precision", description="What the search maximises.")
    min_precision: float | None = Field(default=None, gt=0.0, le=1.0)
    min_recall: float | None = Field(default=None, gt=0.0, le=1.0)
    beta: float = Field(default=1.0, gt=0.0, le=100.0, description="Beta of f_beta.")
    budget_seconds: float = Field(default=DEFAULT_BUDGET_SECONDS, gt=0.0, le=MAX_BUDGET_SECONDS)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    model_name: str | None = Field(
        default=None, max_length=256, description="Registered model name; derived from the data file when empty."
    )
    description: str | None = Field(default=None, max_length=4000, description="The task in the user's words.")

    @field_validator("model_name")
    @classmethod
    def _model_name_is_safe(cls, name: str | None) -> str | None:
        problem = None if name is None else model_name_problem(name)
        if problem:
            raise ValueError(problem)
        return name

    @model_validator(mode="after")
    def _metric_parameters_present(self) -> TaskSpec:
        if self.metric == "recall_at_precision" and self.min_precision is None:
            raise ValueError("metric 'recall_at_precision' needs min_precision (e.g. --min-precision 0.5)")
        if self.metric == "precision_at_recall" and self.min_recall is None:
            raise ValueError("metric 'precision_at_recall' needs min_recall (e.g. --min-recall 0.8)")
        return self

    def metric_params(self) -> dict[str, float]:
        """The parameters the metric functions take, for the metric being optimised."""
        params: dict[str, float] = {"beta": self.beta}
        if self.min_precision is not None:
            params["min_precision"] = self.min_precision
        if self.min_recall is not None:
            params["min_recall"] = self.min_recall
        return params


class TaskDraft(_Contract):
    """What a Brain understood from the user's words. Every field may be missing; the guardrails
    check it against the data and turn it into a TaskSpec."""

    data: str | None = Field(default=None, max_length=1024, description="Path of the table, as written.")
    target: str | None = Field(default=None, max_length=512, description="Column to predict, as written.")
    positive_label: Label | None = Field(default=None, description="The class to catch, if stated.")
    metric: Metric | None = None
    min_precision: float | None = Field(default=None, gt=0.0, le=1.0)
    min_recall: float | None = Field(default=None, gt=0.0, le=1.0)
    beta: float | None = Field(default=None, gt=0.0, le=100.0)
    budget_seconds: float | None = Field(default=None, gt=0.0, le=MAX_BUDGET_SECONDS)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text"]


class ColumnProfile(_Contract):
    name: str
    dtype: str
    kind: ColumnKind
    n_missing: int = Field(ge=0)
    missing_share: float = Field(ge=0.0, le=1.0)
    n_unique: int = Field(ge=0)
    unique_share: float = Field(ge=0.0, le=1.0)
    is_constant: bool = False
    identifier_reason: str | None = Field(default=None, description="Why this looks like a row identifier.")
    separation: float | None = Field(
        default=None, ge=0.5, le=1.0,
        description="How well this column alone separates the classes (univariate ROC-AUC, folded to >= 0.5).",
    )
    leak_reason: str | None = Field(default=None, description="Why this looks like a label leak.")
    examples: list[str] = Field(default_factory=list, max_length=5, description="A few values, as quoted data.")

    @property
    def is_identifier(self) -> bool:
        return self.identifier_reason is not None

    @property
    def is_leak(self) -> bool:
        return self.leak_reason is not None


class DataProfile(_Contract):
    """What the data looks like, computed on the training part only (the holdout is never seen)."""

    source: str
    n_rows: int = Field(ge=0)
    n_columns: int = Field(ge=0)
    target: str
    positive_label: Label
    negative_label: Label
    class_counts: dict[str, int]
    minority_share: float = Field(ge=0.0, le=1.0)
    imbalance_ratio: float = Field(ge=1.0, description="Majority count / minority count.")
    n_duplicate_rows: int = Field(default=0, ge=0)
    n_missing_target: int = Field(default=0, ge=0)
    fingerprint: str = Field(description="sha256 of the table's content, for lineage.")
    columns: list[ColumnProfile]
    notes: list[str] = Field(
        default_factory=list, description="What poise changed in reading the data (decimal commas, junk, inf ...)."
    )

    @property
    def n_minority(self) -> int:
        return min(self.class_counts.values())

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


DataAction = Literal["drop", "datetime_features", "derive"]
DeriveOp = Literal["product", "ratio", "difference"]


class DataStep(_Contract):
    """One data step, with the reason a person can check.

    ``drop`` removes ``column``; ``datetime_features`` expands it into calendar parts;
    ``derive`` adds a new numeric ``column`` = ``op`` of the two ``inputs`` (a × b, a / b or a − b).
    """

    action: DataAction
    column: str = Field(min_length=1, max_length=512)
    reason: str = Field(max_length=1000)
    op: DeriveOp | None = None
    inputs: list[str] = Field(default_factory=list, max_length=2)

    @model_validator(mode="after")
    def _derive_has_op_and_inputs(self) -> DataStep:
        if self.action == "derive" and (self.op is None or len(self.inputs) != 2):
            raise ValueError("a 'derive' step needs an op (product, ratio, difference) and two inputs")
        if self.action != "derive" and (self.op is not None or self.inputs):
            raise ValueError(f"a '{self.action}' step takes no op or inputs")
        return self


class SearchSpace(_Contract):
    strategies: list[str] = Field(min_length=1, description="Imbalance strategies to search (registry names).")
    models: list[str] = Field(min_length=1, description="Model families to search (registry names).")


#: Quantities at the deployed threshold a gate can set a floor on, besides the metrics.
Floored = Literal["precision", "recall"]


class Gates(_Contract):
    """What a candidate must show on the holdout before it may become @champion."""

    min_holdout: dict[Metric | Floored, float] = Field(
        default_factory=dict,
        description="Floor per metric, or on precision / recall at the deployed threshold, on the holdout, "
                    "e.g. {'average_precision': 0.3, 'precision': 0.5}.",
    )
    must_beat_champion: bool = Field(
        default=True, description="The candidate must score at least the current champion on the same holdout."
    )

    @model_validator(mode="after")
    def _floors_in_range(self) -> Gates:
        for metric, floor in self.min_holdout.items():
            if not -1.0 <= floor <= 1.0:
                raise ValueError(f"gate floor for {metric} must lie in [-1, 1], got {floor}")
        return self


Severity = Literal["none", "watch", "act"]
SEVERITIES: tuple[str, ...] = Severity.__args__  # type: ignore[attr-defined]

#: Upper bound for row counts: far above any window poise will see, low enough to reject garbage.
MAX_ROWS = 10**12


class FeatureDrift(_Contract):
    """One column's drift verdict, as the statistical test Evidently chose for it reports it."""

    column: str = Field(max_length=512)
    method: str = Field(max_length=200, description="The test or distance used, e.g. 'K-S p_value'.")
    score: float = Field(
        ge=0.0, le=1e12,
        description="The test's figure: a p-value (drift when at or below the threshold) or a distance "
        "(drift when at or above it).",
    )
    threshold: float = Field(ge=0.0, le=1e12, description="Where the method draws the line.")
    drifted: bool


class MonitorPolicy(_Contract):
    """When a monitoring window is worth a look ("watch") or a retrain ("act").

    Shares are of the monitored features; decay is the absolute drop of the task metric from the
    champion's holdout figure to its figure on labelled rows of the window.
    """

    min_rows: int = Field(
        default=200, ge=1, le=MAX_ROWS,
        description="Fewest rows in each window before any verdict; smaller windows are too noisy to act on.",
    )
    drift_share_watch: float = Field(default=0.2, ge=0.0, le=1.0, description="Share of drifted features to watch.")
    drift_share_act: float = Field(default=0.5, ge=0.0, le=1.0, description="Share of drifted features to act.")
    watch_prediction_drift: bool = Field(
        default=True, description="A drifted distribution of predicted probabilities is reason to watch."
    )
    min_labelled_rows: int = Field(
        default=100, ge=1, le=MAX_ROWS, description="Fewest labelled rows before performance decay is judged."
    )
    decay_watch: float = Field(default=0.05, gt=0.0, le=2.0, description="Metric drop (absolute) to watch.")
    decay_act: float = Field(default=0.10, gt=0.0, le=2.0, description="Metric drop (absolute) to act.")
    prior_shift_ratio: float = Field(
        default=1.5, gt=1.0, le=100.0,
        description="Minority share multiplied or divided by at least this much signals a label-prior shift.",
    )

    @model_validator(mode="after")
    def _watch_before_act(self) -> MonitorPolicy:
        if self.drift_share_watch > self.drift_share_act:
            raise ValueError(
                f"drift_share_watch ({self.drift_share_watch}) must not exceed drift_share_act ({self.drift_share_act})"
            )
        if self.decay_watch > self.decay_act:
            raise ValueError(f"decay_watch ({self.decay_watch}) must not exceed decay_act ({self.decay_act})")
        return self


RecoveryAction = Literal["retune_threshold", "retrain", "retrain_wider"]
RECOVERY_ACTIONS: tuple[str, ...] = RecoveryAction.__args__  # type: ignore[attr-defined]


class Plan(_Contract):
    """How the task will be solved: the data steps, what to search, how to evaluate, when to deploy."""

    data_steps: list[DataStep] = Field(default_factory=list)
    search: SearchSpace
    cv_folds: int = Field(default=5, ge=2, le=10)
    holdout_fraction: float = Field(default=0.2, ge=0.05, le=0.5)
    final_fit_on_all_rows: bool = Field(
        default=True,
        description="Once the holdout has judged the chosen recipe, train the deployed model on every labelled "
                    "row, holdout included; its holdout scores stay those of the recipe trained without them.",
    )
    budget_seconds: float = Field(default=DEFAULT_BUDGET_SECONDS, gt=0.0, le=MAX_BUDGET_SECONDS)
    max_trials: int | None = Field(default=None, ge=1, le=100_000)
    ensemble_size: int = Field(
        default=5, ge=1, le=10,
        description="Most distinct candidates blended into the final model; 1 keeps the single best.",
    )
    gates: Gates = Field(default_factory=Gates)
    monitor: MonitorPolicy = Field(default_factory=MonitorPolicy,
                                   description="When live data is worth a look (watch) or a recovery (act).")
    unattended_recoveries: list[RecoveryAction] = Field(
        default_factory=lambda: ["retune_threshold", "retrain"],
        description="Recoveries that may run without a person's approval; the others wait for one.",
    )
    rationale: list[str] = Field(default_factory=list, description="Why the plan looks like this, one line each.")

    @property
    def dropped_columns(self) -> list[str]:
        return [step.column for step in self.data_steps if step.action == "drop"]

    @property
    def datetime_columns(self) -> list[str]:
        return [step.column for step in self.data_steps if step.action == "datetime_features"]

    @property
    def derived(self) -> list[DataStep]:
        return [step for step in self.data_steps if step.action == "derive"]


class Candidate(_Contract):
    """A trained, evaluated and registered model: the search's answer."""

    model_name: str
    version: str | None = None
    run_id: str | None = None
    strategy: str
    estimator: str
    params: dict[str, Label | None] = Field(default_factory=dict)
    threshold: float = Field(ge=0.0, le=1.0)
    metric: Metric
    cv_score: float = Field(description="Task metric on out-of-fold predictions of the training part.")
    cv_metrics: dict[str, float] = Field(default_factory=dict)
    holdout_metrics: dict[str, float] = Field(default_factory=dict)
    n_trials: int = Field(default=0, ge=0)
    search_seconds: float = Field(default=0.0, ge=0.0)
    positive_label: Label
    negative_label: Label
    features: list[str] = Field(default_factory=list)
    trained_on: str = Field(default="", description="Which rows the registered model learned from, in words: "
                                                    "'the registered model learned from ...'.")
    choices: list[str] = Field(default_factory=list, description="Why the search chose this model and threshold, "
                                                                 "in words: a candidate kept over another on noise, "
                                                                 "how the threshold keeps the task's floors.")
    trained_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class GateReport(_Contract):
    """Whether a candidate may become @champion, and why (or why not)."""

    passed: bool
    reasons: list[str] = Field(default_factory=list)
    metric: Metric
    candidate_score: float
    champion_version: str | None = None
    champion_score: float | None = None
    difference_ci: tuple[float, float] | None = Field(
        default=None, description="95% paired-bootstrap interval of candidate − champion on the judging rows."
    )
    intervals: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="95% stratified-bootstrap interval, on the holdout at the deployed threshold, of each floored "
                    "quantity.",
    )
    warnings: list[str] = Field(
        default_factory=list, description="What a person should look at before trusting this candidate."
    )


class ColumnDrop(_Contract):
    column: str = Field(max_length=512)
    reason: str = Field(max_length=300)


class DerivedFeature(_Contract):
    op: DeriveOp
    a: str = Field(max_length=512, description="First input column.")
    b: str = Field(max_length=512, description="Second input column.")
    reason: str = Field(max_length=300)


#: Bounded strings for what an LLM writes: a schema-guided decoder stops at the bound.
ShortName = Annotated[str, Field(max_length=40)]
Sentence = Annotated[str, Field(max_length=300)]


class PlanDraft(_Contract):
    """What a Brain proposes as the plan. Bounded everywhere: it is what an LLM fills in, and the
    guardrails check every entry against the data and the registries before it becomes a Plan."""

    drop: list[ColumnDrop] = Field(default_factory=list, max_length=50)
    derive: list[DerivedFeature] = Field(default_factory=list, max_length=8)
    strategies: list[ShortName] = Field(default_factory=list, max_length=20, description="Imbalance strategy names.")
    models: list[ShortName] = Field(default_factory=list, max_length=10, description="Model family names.")
    cv_folds: int | None = Field(default=None, ge=2, le=10)
    rationale: list[Sentence] = Field(default_factory=list, max_length=20)


Mind = str  # "rules", or "llm:<model name>"


class AuditEvent(_Contract):
    """One decision: who (which mind, which person) decided what, why, and on which evidence."""

    run_id: str
    step: str
    mind: Mind
    summary: str = Field(max_length=2000, description="What was decided, in a sentence.")
    inputs: dict = Field(default_factory=dict, description="The evidence, summarised.")
    output: dict = Field(default_factory=dict)
    repairs: list[str] = Field(default_factory=list, description="Fields a guardrail changed, and why.")
    not_understood: list[str] = Field(
        default_factory=list, description="Numbers and durations of the task that poise did not use, as written."
    )
    latency_seconds: float | None = None
    tokens: int | None = None
    approver: str | None = None
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class DriftReport(_Contract):
    """What one monitoring window showed against the reference, and how serious it is.

    ``check_drift`` fills the evidence; ``assess`` judges it against a ``MonitorPolicy`` and sets
    ``severity``, ``reasons``, ``prior_shift`` and the ``policy`` it used (None: not judged yet).
    """

    model_name: str | None = Field(default=None, max_length=256)
    model_version: str | None = Field(default=None, max_length=64)
    reference_rows: int = Field(ge=0, le=MAX_ROWS)
    current_rows: int = Field(ge=0, le=MAX_ROWS)
    features: list[FeatureDrift] = Field(default_factory=list, description="One entry per monitored feature.")
    drifted_share: float = Field(ge=0.0, le=1.0, description="Share of monitored features that drifted.")
    prediction_drift: FeatureDrift | None = Field(
        default=None, description="Drift of the predicted positive-class probability, when predictions were given."
    )
    minority_share_source: Literal["labels", "predictions"] | None = Field(
        default=None, description="Whether the minority shares are label shares or mean predicted probabilities."
    )
    reference_minority_share: float | None = Field(default=None, ge=0.0, le=1.0)
    current_minority_share: float | None = Field(default=None, ge=0.0, le=1.0)
    prior_shift: bool = Field(default=False, description="The minority share moved past the policy's ratio.")
    labelled_rows: int = Field(default=0, ge=0, le=MAX_ROWS, description="Rows of the window with a known label.")
    metric: Metric | None = None
    reference_score: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="The champion's figure on its holdout."
    )
    current_score: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="The same metric on the window's labelled rows."
    )
    decay: float | None = Field(
        default=None, ge=-2.0, le=2.0, description="reference_score - current_score; positive means worse."
    )
    severity: Severity = "none"
    reasons: list[str] = Field(default_factory=list, description="Why this severity, one sentence each.")
    policy: MonitorPolicy | None = Field(default=None, description="The thresholds the severity was judged by.")
    html_path: str | None = Field(default=None, description="Evidently's HTML report, when one was saved.")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def drifted_features(self) -> list[str]:
        return [f.column for f in self.features if f.drifted]

    @property
    def minority_share_ratio(self) -> float | None:
        """current / reference minority share (inf when the reference had none and the window has some)."""
        ref, cur = self.reference_minority_share, self.current_minority_share
        if ref is None or cur is None:
            return None
        if ref == 0.0:
            return 1.0 if cur == 0.0 else float("inf")
        return cur / ref


class RecoveryDecision(_Contract):
    """What a recovery will do about a drift report, and why: the recovery graph's plan."""

    action: RecoveryAction | None = Field(description="None: nothing worth doing.")
    diagnosis: list[str] = Field(default_factory=list, description="What the evidence shows, one line each.")
    reasons: list[str] = Field(default_factory=list, description="Why this action, one line each.")
    reference_fraction: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="Share of the champion's training rows kept beside the recent labelled rows in a retrain.",
    )
    recent_eval_fraction: float = Field(
        default=0.5, ge=0.1, le=0.9,
        description="Share of the recent labelled rows held out to judge challenger against champion.",
    )
    plan: Plan | None = Field(default=None, description="The training plan of a retrain.")
    unattended: bool = Field(default=False, description="The champion's plan lets this action run unattended.")


class RecoveryDraft(_Contract):
    """A Brain's proposal for answering a drift report; the guardrails turn it into a RecoveryDecision."""

    action: Literal["none", "retune_threshold", "retrain", "retrain_wider"] = Field(
        description="none: keep the champion; retune_threshold: same model, new decision threshold from recent "
                    "labels (for a shift of the class balance alone); retrain: same search on recent rows plus "
                    "reference rows; retrain_wider: search every strategy and model family."
    )
    reference_fraction: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of the old training rows to keep beside the recent ones."
    )
    reasons: list[Sentence] = Field(default_factory=list, max_length=6)
