"""The search: an Optuna study over imbalance strategy × model × hyperparameters.

Honest by construction:

* it only ever sees the training part (the caller has put the holdout aside);
* every candidate is scored by stratified K-fold cross-validation (repeated when the
  minority is small, so one lucky split cannot pick the winner), with resampling inside the
  pipeline, so synthetic rows never reach a validation fold;
* the decision threshold is tuned on out-of-fold probabilities;
* the model the holdout judges is the winner's fold models, bagged: the very models whose
  out-of-fold predictions set the threshold. Asked for (``final_rows``), the search keeps back
  the time to train the winner's recipe again, fold by fold, on more rows (``Exploration.fit_members``):
  the caller's training part and holdout together, once the holdout has judged the recipe.

Spending the budget: a small portfolio of configurations that are strong across imbalanced
tables (boosted trees with native categories and a tuned threshold, a weighted linear
model) runs first; TPE then searches the whole space. A resampling or balanced-ensemble arm
that has lost to the plain arms by more than fold noise gets no further trials (a plain arm
after two such losses to the best), and at the end a sampler, an ensemble strategy or a
blend wins only by more than twice the standard error of its paired fold differences: on a
few dozen positives most differences are noise.

The cores: a trial's folds train in waves, one fit per core side by side, each on one thread in a
worker process (``poise.tools.parallel``); on one core, one after another in this process. The results
are the same either way; only the time differs.

The clock: Optuna only stops between trials, so the search also checks it between waves of folds;
a trial that would run past the deadline is pruned. The first trial always completes one
pass over the folds (its repeats only while time allows), so there is always a candidate.
Selection keeps a little time back for the candidate it would choose now (more while that is a
large model, slow to save and register, and, when ``final_rows`` is asked for, its final fit plus a
margin for the steps before it) and stops at the deadline; a blend whose extra models would not be
saved in the time left is not kept. A stop request (``poise.stopping``) ends the search between waves.
"""

from __future__ import annotations

import math
import pickle
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from poise import stopping
from poise.contracts import Plan, TaskSpec
from poise.tools import metrics, parallel
from poise.tools.compose import build_pipeline, estimator_name, inference_pipeline
from poise.tools.models import MODELS, UNCAPPED_LEAVES
from poise.tools.planning import cv_repeats
from poise.tools.preprocess import FeatureColumns
from poise.tools.strategies import STRATEGIES, StrategyContext

if TYPE_CHECKING:  # Optuna and the pipelines load when a search runs, not when this module is imported
    from imblearn.pipeline import Pipeline as TrainingPipeline
    from optuna.study import Study
    from optuna.trial import FrozenTrial, Trial
    from sklearn.pipeline import Pipeline

    from poise.tools.ensemble import BlendClassifier

_HGB = {"hgb__learning_rate": 0.1, "hgb__max_iter": 100, "hgb__max_leaf_nodes": 31, "hgb__min_samples_leaf": 20,
        "hgb__l2_regularization": 1e-6}
_LGBM = {"lgbm__learning_rate": 0.05, "lgbm__n_estimators": 300, "lgbm__num_leaves": 31,
         "lgbm__min_child_samples": 20, "lgbm__subsample": 0.8, "lgbm__colsample_bytree": 0.8, "lgbm__reg_lambda": 1.0}
#: Boosted trees with many slow rounds: what wins on large tables.
_LGBM_LARGE = {**_LGBM, "lgbm__learning_rate": 0.03, "lgbm__n_estimators": 800, "lgbm__num_leaves": 63}
#: Shallow, column-subsampled boosting: what holds up on small, noisy tables.
_LGBM_SMALL = {**_LGBM, "lgbm__n_estimators": 400, "lgbm__num_leaves": 8, "lgbm__min_child_samples": 10,
               "lgbm__colsample_bytree": 0.5, "lgbm__reg_lambda": 5.0}
#: Four leaves under strong L2: the small, heavily regularised trees that hold up where the signal is weak and
#: noisy (bank marketing, where a flexible model's cross-validation flatters it). Measured in-process at a
#: 45 s budget on 27 tables × 2 seeds (none of the benchmark's unseen ones), with a regularised extra-trees entry
#: beside it that was later dropped (chosen once, and lower there): test average precision +0.008 (standard error
#: 0.006); chosen on bank marketing, 0.424 against 0.368.
_LGBM_TINY = {**_LGBM, "lgbm__num_leaves": 4, "lgbm__min_child_samples": 40, "lgbm__subsample": 0.7,
              "lgbm__colsample_bytree": 0.5, "lgbm__reg_lambda": 30.0}
#: A forest of small trees, each split on few columns: what FLAML finds on weak, noisy signals (a random forest of
#: 77 leaves on 12 % of the columns won its search on german credit, extra-trees of 43 leaves on 20 % on bank
#: marketing), where full-depth forests overfit. With the forests' leaf count searched, on the search pool
#: (benchmarks/README.md): +0.0067 average precision (standard error 0.0066) on 54 pairs.
_RF_CAPPED = {"rf__n_estimators": 150, "rf__min_samples_leaf": 1, "rf__max_features": 0.15, "rf__max_leaf_nodes": 64}
#: The portfolio: tried first, in this order, when the plan allows them. Cheap and strong first;
#: resampling and balanced ensembles after, since they rarely beat a boosted model with a tuned threshold.
DEFAULT_TRIALS: tuple[dict[str, Any], ...] = (
    {"strategy": "none", "model": "lightgbm", **_LGBM},
    {"strategy": "none", "model": "hist_gradient_boosting", **_HGB},
    {"strategy": "class_weight", "model": "logistic_regression", "cw__power": 1.0, "lr__C": 1.0},
    {"strategy": "none", "model": "lightgbm", **_LGBM_SMALL},
    {"strategy": "none", "model": "lightgbm", **_LGBM_TINY},
    {"strategy": "none", "model": "random_forest", **_RF_CAPPED},
    {"strategy": "none", "model": "lightgbm", **_LGBM_LARGE},
    {"strategy": "class_weight", "model": "lightgbm", "cw__power": 0.5, **_LGBM},
    {"strategy": "class_weight", "model": "extra_trees", "cw__power": 0.5, "et__n_estimators": 300,
     "et__min_samples_leaf": 2, "et__max_features": 0.5, "et__max_leaf_nodes": UNCAPPED_LEAVES},
    {"strategy": "balanced_random_forest", "brf__n_estimators": 300, "brf__min_samples_leaf": 1,
     "brf__max_features": 0.3, "brf__max_leaf_nodes": UNCAPPED_LEAVES},
    {"strategy": "qc_smote", "model": "hist_gradient_boosting", "qcsmote__k": 5, **_HGB},
    {"strategy": "none", "model": "mlp", "mlp__hidden": "128-64", "mlp__dropout": 0.1, "mlp__learning_rate": 1e-3,
     "mlp__weight_decay": 1e-4, "mlp__batch_size": 256, "mlp__loss": "class_balanced"},
)
_LARGE_ROWS = 10_000  # from here the many-rounds configuration runs before the shallow one
_BAGGED = 5  # how many of the best candidates keep their fold models for the final model
_SIMPLE = ("none", "weights")  # strategy kinds that leave the data as it is
_NOISE = 2.0  # standard errors a sampler, a balanced ensemble or a blend must win by
#: Saving, registering and scoring a final model take longer the larger it is: MLflow's log_model also loads
#: it back to check its input example. Measured on one busy core: a 45 MB bag of extra-trees forests took
#: 5.6 s more than a bag of boosted trees of under 1 MB. The caller's tail estimate covers the first _FREE_MB.
_SECONDS_PER_MB, _FREE_MB = 0.125, 4.0
#: From the search's end to the start of the final fit on ``final_rows`` rows: the threshold and metrics of the
#: chosen model, and the caller's steps in between (two workflow task calls). Measured 0.06-0.2 s on one busy
#: core; without this margin the fit's own estimate was all that was kept, and a fit that needed 3.78 s found
#: 3.67 s left and was skipped.
_HANDOFF_SECONDS = 1.0


def _saving_seconds(megabytes: float) -> float:
    """Saving and registering ``megabytes`` of models, beyond what the caller's tail estimate covers."""
    return _SECONDS_PER_MB * max(megabytes - _FREE_MB, 0.0)


def _size(params: dict[str, Any]) -> float:
    """Rounds of boosting or trees of a forest: what a fit's time grows with inside one arm."""
    return float(next((v for k, v in params.items() if k.endswith(("__n_estimators", "__max_iter"))), 1.0))


def portfolio(n_rows: int) -> list[dict[str, Any]]:
    """The portfolio in the order it runs on a table of ``n_rows`` rows."""
    trials = list(DEFAULT_TRIALS)
    if n_rows >= _LARGE_ROWS:
        small, large = trials.index({"strategy": "none", "model": "lightgbm", **_LGBM_SMALL}), \
            trials.index({"strategy": "none", "model": "lightgbm", **_LGBM_LARGE})
        trials[small], trials[large] = trials[large], trials[small]
    return trials


@dataclass
class TrialRecord:
    """One candidate the search tried, as the progress display and the tracking log see it."""

    number: int
    strategy: str
    estimator: str
    params: dict[str, Any]
    state: str  # complete | pruned (stopped part-way) | skipped (never started) | failed
    score: float | None
    fold_scores: list[float]
    seconds: float
    best_score: float | None
    elapsed: float
    note: str | None = None


def trained(records: list[TrialRecord]) -> int:
    """Candidates that were trained (in full or until pruned); proposals skipped unstarted do not count."""
    return sum(r.state != "skipped" for r in records)


@dataclass
class Member:
    """One cross-validated candidate of the search, and its weight in the final model."""

    trial: int
    strategy: str
    model: str | None  # the model the trial chose (None when the strategy fixes it)
    estimator: str
    params: dict[str, Any]
    score: float
    fit_seconds: float
    oof: np.ndarray = field(repr=False)
    weight: float = 1.0
    fold_models: list[Pipeline] | None = field(default=None, repr=False)  # fitted, sampler-free, one per fold
    megabytes: float = 0.0  # the fold models, pickled (measured when the member first leads the search)

    @property
    def label(self) -> str:
        return f"{self.strategy}/{self.estimator}"

    @property
    def simple(self) -> bool:
        """Trained on the data as it is (no resampling, no balanced ensemble)."""
        return STRATEGIES[self.strategy].kind in _SIMPLE


@dataclass
class SearchResult:
    pipeline: Pipeline | BlendClassifier  # fitted, sampler-free: preprocessing + model (or a blend of several)
    members: list[Member]
    threshold: float
    cv_score: float
    cv_metrics: dict[str, float]
    oof_proba: np.ndarray
    trials: list[TrialRecord] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    search_seconds: float = 0.0
    refit_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # why the choice is what it is, for people to read

    @property
    def n_trials(self) -> int:
        return trained(self.trials)

    @property
    def strategy(self) -> str:
        return self.members[0].strategy if len(self.members) == 1 else "ensemble"

    @property
    def estimator(self) -> str:
        return self.members[0].estimator if len(self.members) == 1 else "blend"

    @property
    def params(self) -> dict[str, Any]:
        if len(self.members) == 1:
            return dict(self.members[0].params)
        return {f"member_{i}": f"{m.label} weight {m.weight:.2f} (trial {m.trial})"
                for i, m in enumerate(self.members, 1)}


class _BudgetExceeded(Exception):
    pass


class _NoPromise(Exception):
    pass


class _NotStarted(_BudgetExceeded):
    """Not even one fold fits in the time left: the proposal is not a trial."""


def search(
    X: pd.DataFrame,
    y: np.ndarray,
    task: TaskSpec,
    plan: Plan,
    columns: FeatureColumns,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    deadline: float | None = None,
) -> SearchResult:
    """Find and return the best pipeline for ``task`` within ``plan.budget_seconds``.

    ``deadline`` (a ``time.monotonic()`` instant), when given, is when search and final model must be
    done instead: the caller has already spent part of the user's budget on its own work.
    """
    return explore(X, y, task, plan, columns, storage=storage, study_name=study_name, on_trial=on_trial,
                   deadline=deadline).refit()


def explore(
    X: pd.DataFrame,
    y: np.ndarray,
    task: TaskSpec,
    plan: Plan,
    columns: FeatureColumns,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    deadline: float | None = None,
    final_rows: int | None = None,
) -> Exploration:
    """The search without its last step: the chosen members, ready for ``Exploration.refit()``.

    ``final_rows``, when given, is how many rows the chosen recipe will be trained on afterwards
    (``Exploration.fit_members``): the search keeps back the time that fit will take.
    """
    return _Search(X, y, task, plan, columns, storage, study_name, on_trial, deadline, final_rows).explore()


@dataclass
class Exploration:
    """What the search chose (one member or a blend), before it is assembled into the final model."""

    members: list[Member]
    trials: list[TrialRecord]
    search_seconds: float
    _search: _Search = field(repr=False)
    notes: list[str] = field(default_factory=list)

    def refit(self) -> SearchResult:
        """The final model: each member's fold models bagged (refit on all rows only where none were kept)."""
        return self._search.refit(self.members, self.search_seconds, self.notes)

    def fit_seconds(self, members: list[Member], n_rows: int) -> float:
        """About how long ``fit_members`` takes on ``n_rows`` rows, with a margin."""
        return self._search.full_fit_seconds(members, n_rows)

    def fit_members(self, members: list[Member], X: pd.DataFrame, y: np.ndarray) -> BlendClassifier:
        """The chosen model again, trained on ``X``, ``y`` (more rows than the search could show it): each member's
        recipe (strategy, model, hyperparameters) trained as the search trained it, on each fold of the same
        folding of these rows, the fold models averaged, the members blended with their weights."""
        from poise.tools.ensemble import BlendClassifier

        fitted = [self._search.fit_bag(m, X[self._search.columns.all].reset_index(drop=True), np.asarray(y))
                  for m in members]
        return fitted[0] if len(fitted) == 1 else BlendClassifier(fitted, [m.weight for m in members])


def _fit(pipeline: TrainingPipeline, X_train: pd.DataFrame, y_train: np.ndarray, X_valid: pd.DataFrame | None
         ) -> tuple[Pipeline, np.ndarray | None, float]:
    """One fit, in a worker process when fits run side by side (``poise.tools.parallel``): the fitted model
    without its sampler, its probabilities for ``X_valid`` when given, and the seconds it took there (a new
    worker's imports, and sending rows and models between processes, not included: they are not the fit's)."""
    tick = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(X_train, y_train)
        proba = None if X_valid is None else pipeline.predict_proba(X_valid)[:, 1]
    return inference_pipeline(pipeline), proba, time.monotonic() - tick


class _Search:
    def __init__(self, X: pd.DataFrame, y: np.ndarray, task: TaskSpec, plan: Plan, columns: FeatureColumns,
                 storage: str | None, study_name: str | None, on_trial: Callable[[TrialRecord], None] | None,
                 deadline: float | None = None, final_rows: int | None = None) -> None:
        from sklearn.model_selection import RepeatedStratifiedKFold

        self.start = time.monotonic()
        self.deadline = self.start + plan.budget_seconds if deadline is None else deadline
        self.X, self.y = X[columns.all].reset_index(drop=True), np.asarray(y).astype(int)
        self.task, self.plan, self.columns = task, plan, columns
        self.final_rows = final_rows
        self.storage, self.study_name, self.on_trial = storage, study_name, on_trial
        self.params = task.metric_params()
        n_min = int(min(self.y.sum(), len(self.y) - self.y.sum()))
        if n_min < 2:
            raise ValueError(f"the minority class has {n_min} row(s) in the training part; cross-validation needs 2")
        self.n_folds = min(plan.cv_folds, n_min)
        self.repeats = cv_repeats(len(self.y), n_min)
        splitter = RepeatedStratifiedKFold(n_splits=self.n_folds, n_repeats=self.repeats, random_state=task.seed)
        self.folds = list(splitter.split(self.X, self.y))
        self.workers = parallel.workers(len(self.folds))  # fits side by side, one thread each
        self.ctx = self._fold_context(self.y)
        self.strategies, self.models, self.skipped = self._allowed()
        self.records: list[TrialRecord] = []
        self.best: list[Member] = []  # the top candidates so far, best first
        self.fold_seconds: dict[tuple[str, str], float] = {}  # slowest fold per arm, per boosting round or tree
        self.seconds_per_cost = 0.0  # the slowest fold seen, per unit of the registries' relative cost
        self.quickest_fold = math.inf
        self.metric_seconds = 0.0  # one score of the whole out-of-fold vector
        self._chosen: tuple[tuple[int, int | None], Member] | None = None  # what _choice worked out, and for whom

    def _fold_context(self, y: np.ndarray) -> StrategyContext:
        """What a strategy needs to know of a training fold of rows labelled ``y``: its class counts."""
        n_min = int(min(y.sum(), len(y) - y.sum()))
        return StrategyContext(
            n_minority=n_min - math.ceil(n_min / self.n_folds),
            n_majority=int(len(y) - n_min) - math.ceil((len(y) - n_min) / self.n_folds),
            columns=self.columns,
            seed=self.task.seed,
        )

    @property
    def best_value(self) -> float:
        return self.best[0].score if self.best else -math.inf

    # ------------------------------------------------------------------ the space
    def _allowed(self) -> tuple[list[str], list[str], dict[str, str]]:
        skipped: dict[str, str] = {}
        models = [m for m in self.plan.search.models if m in MODELS]
        for name in self.plan.search.models:
            if name not in MODELS:
                skipped[name] = "not a known model family"
        strategies = []
        for name in self.plan.search.strategies:
            spec = STRATEGIES.get(name)
            reason = "not a known strategy" if spec is None else spec.unavailable_reason(self.ctx)
            if reason is None and spec.kind in ("none", "weights", "sampler") and not models:
                reason = "the plan allows no model family to pair it with"
            if reason is None and spec.kind == "loss" and spec.model not in models:
                reason = f"applies to the {spec.model!r} model, which the plan does not search"
            if reason is None:
                strategies.append(name)
            else:
                skipped[name] = reason
        if not strategies:
            raise ValueError(
                "no strategy in the plan can run on this data: "
                + "; ".join(f"{k}: {v}" for k, v in skipped.items())
            )
        return strategies, models, skipped

    def _suggest(self, trial: Trial) -> tuple[str, str, dict[str, Any]]:
        strategy = trial.suggest_categorical("strategy", self.strategies)
        spec = STRATEGIES[strategy]
        model = trial.suggest_categorical("model", self.models) if spec.kind in ("none", "weights", "sampler") \
            else None
        family = estimator_name(strategy, model)
        params = dict(spec.space(trial, self.ctx))
        if family in MODELS:
            params.update(MODELS[family].space(trial))
        return strategy, family, params

    # ------------------------------------------------------------------ noise
    def _fold_scores(self, oof: np.ndarray) -> np.ndarray:
        """The metric on each validation fold of the first repeat (together they cover every row once)."""
        return np.array([self._value(self.y[valid], oof[valid]) for _, valid in self.folds[: self.n_folds]])

    def _beats(self, challenger: np.ndarray, incumbent: np.ndarray) -> tuple[bool, float, float]:
        """Whether ``challenger``'s out-of-fold predictions beat ``incumbent``'s by more than the noise: higher
        on all rows, and higher per fold by more than two standard errors of the paired fold differences
        (about a one-sided 5 % test on five folds). Returns that verdict, the mean fold gain and its error."""
        diff = self._fold_scores(challenger) - self._fold_scores(incumbent)
        diff = diff[np.isfinite(diff)]
        if len(diff) < 2:
            return False, float(np.mean(diff)) if len(diff) else 0.0, math.inf
        mean, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))
        higher = self._value(self.y, challenger) > self._value(self.y, incumbent)
        return bool(higher and mean > _NOISE * se and mean > 0), mean, se

    def _best_simple(self) -> Member | None:
        return next((m for m in self.best if m.simple), None)

    def _promising(self, strategy: str, family: str) -> bool:
        """Whether an arm (strategy × model family) still earns trials. A resampling or ensemble arm stops after
        one trial that loses to the best plain candidate by more than fold noise; a plain arm after two that
        lose so to the best candidate. The rest of the budget goes to what is still in the running."""
        simple = STRATEGIES[strategy].kind in _SIMPLE
        reference = (self.best[0] if self.best else None) if simple else self._best_simple()
        tried = sum((r.strategy, r.estimator) == (strategy, family) and r.state == "complete" for r in self.records)
        if reference is None or tried < (2 if simple else 1):
            return True
        arm = next((m for m in self.best if (m.strategy, m.estimator) == (strategy, family)), None)
        if arm is None:  # fallen out of the top candidates entirely
            return False
        return arm is reference or not self._beats(reference.oof, arm.oof)[0]

    # ------------------------------------------------------------------ the clock
    def _selection_reserve(self) -> float:
        """Seconds kept back for choosing the final members (a few greedy rounds of scoring blends) and for what
        follows it within the deadline (``_after_selection``)."""
        if not self.best:
            return 0.2
        return 0.2 + 4 * _BAGGED * self.metric_seconds + self._after_selection()

    def _after_selection(self) -> float:
        """Seconds kept back for training the chosen recipe on ``final_rows`` rows when asked (and for getting
        there), and for saving it when it is too large for the caller's tail estimate. Needs a candidate."""
        chosen = self._choice()
        heavy = _saving_seconds(chosen.megabytes)
        if not self.final_rows:
            return heavy
        return heavy + _HANDOFF_SECONDS + self.full_fit_seconds([chosen], self.final_rows)

    def _choice(self) -> Member:
        """The single candidate selection would choose now (``_single``: the leader, or the best plain candidate
        when the leader resamples and does not win by more than noise), its size measured. Worked out again only
        when the leader or the best plain candidate changes: the clock asks for it between folds."""
        simple = self._best_simple()
        key = (self.best[0].trial, simple.trial if simple is not None else None)
        if self._chosen is None or self._chosen[0] != key:
            chosen = self._single()[0]
            if not chosen.megabytes:
                self._measure(chosen)
            self._chosen = (key, chosen)
        return self._chosen[1]

    def full_fit_seconds(self, members: list[Member], n_rows: int) -> float:
        """Each member's recipe trained on every fold of ``n_rows`` rows (``fit_bag``, in waves of ``workers``): its
        folds' mean fit time, scaled by rows (a fit grows at least linearly with them), with the same margin as a
        fold's estimate."""
        waves = math.ceil(len(self.folds) / self.workers)
        return sum(1.25 * m.fit_seconds * waves * n_rows / len(self.y) for m in members)

    def fit_bag(self, member: Member, X: pd.DataFrame, y: np.ndarray) -> BlendClassifier:
        """The member's recipe trained on each training fold of ``X``, ``y``, folded as the search folded its own
        rows (the same folds and repeats, in waves of ``workers``), and averaged: the member's fold models again,
        each on more rows."""
        from sklearn.model_selection import RepeatedStratifiedKFold

        from poise.tools.ensemble import BlendClassifier

        stopping.check()  # a fit is long: a stop request ends it before it starts
        splitter = RepeatedStratifiedKFold(n_splits=self.n_folds, n_repeats=self.repeats, random_state=self.task.seed)
        ctx = self._fold_context(y)  # a sampler's ratios fit these folds' class counts
        jobs = ((self._recipe(member, len(train), ctx), X.iloc[train].reset_index(drop=True), y[train], None)
                for train, _ in splitter.split(X, y))  # drawn a wave at a time: a fold's rows are copied when it runs
        models = [model for model, _, _ in parallel.run_all(_fit, jobs, self.workers)]
        return BlendClassifier(models, [1.0] * len(models))

    def _search_deadline(self) -> float:
        return self.deadline - self._selection_reserve()

    def _remaining(self) -> float:
        return self._search_deadline() - time.monotonic()

    @staticmethod
    def _relative_cost(strategy: str, family: str) -> float:
        spec = STRATEGIES[strategy]
        if spec.kind == "ensemble":
            return spec.cost
        return (MODELS[family].cost if family in MODELS else 1.0) * (1.5 if spec.kind == "sampler" else 1.0)

    def _expected_fold_seconds(self, strategy: str, family: str, params: dict[str, Any]) -> float:
        """How long one fold of a trial will take, with a margin: as seen for its arm, scaled by its number of
        rounds or trees; for an arm not tried yet, the slowest fold so far scaled by the registries' relative
        costs (so a forest is not started in a gap that fits a logistic regression)."""
        seen = self.fold_seconds.get((strategy, family), 0.0) * _size(params)
        return 1.25 * max(seen, self.seconds_per_cost * self._relative_cost(strategy, family))

    def _clock_fold(self, strategy: str, family: str, params: dict[str, Any], seconds: float) -> None:
        arm = (strategy, family)
        self.fold_seconds[arm] = max(self.fold_seconds.get(arm, 0.0), seconds / _size(params))
        self.seconds_per_cost = max(self.seconds_per_cost, seconds / self._relative_cost(strategy, family))
        self.quickest_fold = min(self.quickest_fold, seconds)

    # ------------------------------------------------------------------ one trial
    def _cross_validate(self, trial: Trial, strategy: str, family: str, params: dict[str, Any]
                        ) -> tuple[np.ndarray, list[float], float, list[Pipeline]]:
        """Out-of-fold probabilities, the score of each fold, the seconds a wave of folds took, and the fitted fold
        models. The folds run in waves of ``workers`` fits side by side; the clock, the pruner and a stop request
        are heard between waves."""
        import optuna
        from sklearn.base import clone

        pipeline = None  # built once a wave is sure to run: building an MLP's first loads torch (over a second)
        total, seen = np.zeros(len(self.y)), np.zeros(len(self.y))
        fold_scores, wave_seconds, fold_models = [], [], []
        first_ever = not self.best
        for start in range(0, len(self.folds), self.workers):
            stopping.check()  # a stop request ends the search between waves (Stopped, a KeyboardInterrupt)
            wave = range(start, min(start + self.workers, len(self.folds)))
            expected = np.mean(wave_seconds) if wave_seconds else self._expected_fold_seconds(strategy, family, params)
            if time.monotonic() + expected > self._search_deadline():
                if not first_ever:
                    raise _NotStarted() if start == 0 else _BudgetExceeded()
                # the first candidate stops after one full pass: every row scored once
                wave = range(start, min(wave.stop, self.n_folds))
                if not wave:
                    break
            if pipeline is None:
                pipeline = build_pipeline(strategy, family, params, self.ctx)
            jobs = []
            for fold in wave:
                model = clone(pipeline)
                if family == "mlp" and not first_ever:  # each wave its share of what is left, not all of it
                    waves_left = math.ceil((len(self.folds) - start) / self.workers)
                    model.set_params(model__max_time=max(self._remaining() / waves_left, 1.0))
                train, valid = self.folds[fold]
                jobs.append((model, self.X.iloc[train], self.y[train], self.X.iloc[valid]))
            fitted = parallel.run_all(_fit, jobs, self.workers)
            wave_seconds.append(max(seconds for _, _, seconds in fitted))  # side by side: the slowest fit's
            self._clock_fold(strategy, family, params, wave_seconds[-1])
            for fold, (model, proba, _) in zip(wave, fitted, strict=True):
                if not np.all(np.isfinite(proba)):
                    raise FloatingPointError("the model produced non-finite probabilities")
                # every repeat's models are kept: keeping only the first pass would make small tables' models a
                # third of the size, but averaging them all lowers the variance of a lucky pick (+0.020 average
                # precision on average over 10 small tables × 3 seeds)
                fold_models.append(model)
                valid = self.folds[fold][1]
                total[valid] += proba
                seen[valid] += 1
                fold_scores.append(self._value(self.y[valid], proba))
                covered = seen > 0
                trial.report(self._value(self.y[covered], total[covered] / seen[covered]), fold)
            if not first_ever and trial.should_prune():
                raise optuna.TrialPruned()
        return total / seen, fold_scores, float(np.mean(wave_seconds)), fold_models

    def _value(self, y: np.ndarray, proba: np.ndarray) -> float:
        if y.min() == y.max():
            return float("nan")
        return metrics.best_threshold(self.task.metric, y, proba, self.params)[1]

    def _objective(self, trial: Trial) -> float:
        import optuna

        tick = time.monotonic()
        strategy, family, params = self._suggest(trial)
        trial.set_user_attr("estimator", family)
        state, value, fold_scores, note = "failed", None, [], None
        try:
            if not self._promising(strategy, family):
                raise _NoPromise()
            oof, fold_scores, fit_seconds, fold_models = self._cross_validate(trial, strategy, family, params)
            tock = time.monotonic()
            value, state = self._value(self.y, oof), "complete"
            self.metric_seconds = max(self.metric_seconds, time.monotonic() - tock)
            self._keep(Member(trial.number, strategy, trial.params.get("model"), family, params, value,
                              fit_seconds, oof, fold_models=fold_models))
            return value
        except optuna.TrialPruned:
            state, note = "pruned", "pruned: worse than the median trial at the same fold"
            raise
        except _NotStarted:
            state, note = "skipped", "skipped: one fold would not end within the time budget"
            raise optuna.TrialPruned(note) from None
        except _BudgetExceeded:
            state, note = "pruned", "pruned: would have run past the time budget"
            raise optuna.TrialPruned(note) from None
        except _NoPromise:
            state, note = "skipped", "skipped: this strategy and model lost to the best by more than fold noise"
            raise optuna.TrialPruned(note) from None
        except Exception as exc:  # a candidate that cannot fit this data is a failed trial, not a failed search
            note = f"{type(exc).__name__}: {exc}"[:500]
            raise
        finally:
            self.records.append(
                TrialRecord(
                    number=trial.number, strategy=strategy, estimator=family,
                    params={k: v for k, v in trial.params.items() if k not in ("strategy", "model")},
                    state=state, score=value, fold_scores=fold_scores, seconds=time.monotonic() - tick,
                    best_score=None if self.best_value == -math.inf else self.best_value,
                    elapsed=time.monotonic() - self.start, note=note,
                )
            )
            if self.on_trial is not None:
                self.on_trial(self.records[-1])

    def _keep(self, member: Member, top: int = 20) -> None:
        """Remember the best candidates and their out-of-fold predictions; the fold models only of the
        few that can still become the final model (they can be large)."""
        self.best = sorted([*self.best, member], key=lambda m: (-m.score, m.trial))[:top]
        if self.best[0] is member:  # a new leader: what saving it will cost
            self._measure(member)
        simple = self._best_simple()
        for rank, kept in enumerate(self.best):
            if rank >= _BAGGED and kept is not simple:
                kept.fold_models = None

    @staticmethod
    def _measure(member: Member) -> None:
        """The size of ``member``'s fold models, pickled (one of them, a few ms even for a large forest)."""
        if member.fold_models:
            member.megabytes = len(pickle.dumps(member.fold_models[0], protocol=5)) * len(member.fold_models) / 1e6

    def _stop_when_out_of_time(self, study: Study, trial: FrozenTrial) -> None:
        # out of time, or too little left for one fold of the quickest arm seen (a proposal that does not
        # fit is skipped at once, and the sampler may still find a cheaper one that does)
        if self.best and self._remaining() <= self.quickest_fold:
            study.stop()
        if self.plan.max_trials is not None and trained(self.records) >= self.plan.max_trials:
            study.stop()

    # ------------------------------------------------------------------ the whole search
    def explore(self) -> Exploration:
        import optuna

        # a candidate that fails is a trial record with its reason (shown by the progress display, logged to
        # MLflow), not a traceback in the middle of the user's terminal
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            direction="maximize",
            storage=self.storage,
            study_name=self.study_name,
            sampler=optuna.samplers.TPESampler(
                seed=self.task.seed, multivariate=True, group=True, n_startup_trials=8
            ),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
        )
        for defaults in portfolio(len(self.y)):
            model = defaults.get("model")
            if defaults["strategy"] in self.strategies and (model is None or model in self.models):
                study.enqueue_trial(defaults, skip_if_exists=True)
        study.optimize(
            self._objective,
            timeout=max(self._search_deadline() - time.monotonic(), 0.001),
            catch=(Exception,),
            callbacks=[self._stop_when_out_of_time],
        )
        if not self.best:
            failures = "; ".join(f"{r.strategy}/{r.estimator}: {r.note}" for r in self.records[:3])
            raise RuntimeError(f"no candidate could be trained on this data ({failures})")
        members, notes = self._final_members()
        return Exploration(members, self.records, time.monotonic() - self.start, self, notes)

    def _single(self) -> tuple[Member, list[str]]:
        """The best candidate, unless it resamples and does not beat the best plain one by more than noise."""
        best, simple = self.best[0], self._best_simple()
        if best.simple or simple is None:
            return best, []
        beaten, gain, se = self._beats(best.oof, simple.oof)
        if beaten:
            return best, [f"{best.label} beats {simple.label} by {gain:+.4f} per fold (standard error {se:.4f})"]
        return simple, [f"{simple.label} kept over {best.label}: {best.label} scored {best.score:.4f} against "
                        f"{simple.score:.4f}, {gain:+.4f} per fold, less than {_NOISE:g} standard errors ({se:.4f})"]

    def _final_members(self) -> tuple[list[Member], list[str]]:
        """The chosen candidate alone, or a blend of several when the blend beats it by more than noise."""
        from poise.tools import ensemble

        chosen, notes = self._single()
        single = [replace(chosen, weight=1.0)]
        pool = [m for m in self.best if m.fold_models is not None]
        if self.plan.ensemble_size < 2 or len(pool) < 2:
            return single, notes
        weights, _ = ensemble.select({i: m.oof for i, m in enumerate(pool)}, self.y, self.task.metric,
                                     self.params, max_members=self.plan.ensemble_size,
                                     deadline=self.deadline - self._after_selection())
        if len(weights) < 2:
            return single, notes
        blend = sum(w * pool[i].oof for i, w in weights.items())
        beaten, gain, se = self._beats(blend, chosen.oof)
        if not beaten:
            return single, [*notes, f"a blend of {len(weights)} candidates was not kept: {gain:+.4f} per fold over "
                                    f"{chosen.label}, less than {_NOISE:g} standard errors ({se:.4f})"]
        for i in weights:
            self._measure(pool[i])
        members = [replace(pool[i], weight=w) for i, w in sorted(weights.items(), key=lambda kv: -kv[1])]
        verdict = f"a blend of {len(members)} candidates beats {chosen.label} by {gain:+.4f} per fold (standard " \
                  f"error {se:.4f})"
        # the time kept back covers saving the chosen candidate alone; what the blend's other bags add to saving
        # must fit in the time to spare beyond that
        megabytes = sum(m.megabytes for m in members)
        extra = _saving_seconds(megabytes) - _saving_seconds(chosen.megabytes)
        spare = self.deadline - time.monotonic() - self._after_selection()
        if extra > max(spare, 0.0):
            return single, [*notes, f"{verdict}, but was not kept: saving its {megabytes:.0f} MB of models would take "
                                    f"about {extra:.0f} s more than {chosen.label} alone, and {max(spare, 0.0):.0f} s "
                                    "are to spare"]
        return members, [*notes, verdict]

    def refit(self, members: list[Member], search_seconds: float, notes: list[str] | None = None) -> SearchResult:
        from poise.tools.ensemble import BlendClassifier

        tick = time.monotonic()
        fitted = [self._final_model(member) for member in members]
        oof = sum(m.weight * m.oof for m in members)
        final = fitted[0] if len(fitted) == 1 else BlendClassifier(fitted, [m.weight for m in members])
        threshold, cv_score = metrics.best_threshold(self.task.metric, self.y, oof, self.params)
        floors = metrics.floor_note(self.task.metric, self.y, oof, threshold, self.params)
        return SearchResult(
            pipeline=final,
            members=members,
            threshold=threshold,
            cv_score=cv_score,
            cv_metrics=metrics.all_metrics(self.y, oof, threshold, self.params),
            oof_proba=oof,
            trials=self.records,
            skipped=self.skipped,
            search_seconds=search_seconds,
            refit_seconds=time.monotonic() - tick,
            notes=[*(notes or []), *([floors] if floors else [])],
        )

    def _final_model(self, member: Member) -> Pipeline | BlendClassifier:
        """The member's fold models, bagged; a refit on all rows only where they were not kept."""
        from poise.tools.ensemble import BlendClassifier

        if member.fold_models:
            return BlendClassifier(member.fold_models, [1.0] * len(member.fold_models))
        return self.fit_recipe(member, self.X, self.y)

    def fit_recipe(self, member: Member, X: pd.DataFrame, y: np.ndarray) -> Pipeline:
        """The member's recipe trained once on ``X``, ``y``, sampler-free for prediction."""
        stopping.check()  # a fit is long: a stop request ends it before it starts
        job = (self._recipe(member, len(X), self.ctx), X.reset_index(drop=True), np.asarray(y).astype(int), None)
        return parallel.run_all(_fit, [job], self.workers)[0][0]  # in a worker: one thread, as every fit

    def _recipe(self, member: Member, n_rows: int, ctx: StrategyContext) -> TrainingPipeline:
        """The member's recipe, unfitted, for ``n_rows`` training rows."""
        pipeline = build_pipeline(member.strategy, member.model, member.params, ctx)
        if member.estimator == "mlp":  # trains until it stops improving: no longer than a search fold took, by rows
            fold_rows = len(self.y) * (self.n_folds - 1) / self.n_folds
            pipeline.set_params(model__max_time=max(1.25 * member.fit_seconds * n_rows / fold_rows, 1.0))
        return pipeline
