"""The search: an Optuna study over imbalance strategy × model × hyperparameters.

Honest by construction:

* it only ever sees the training part (the caller has put the holdout aside);
* every candidate is scored by stratified K-fold cross-validation, with resampling inside
  the pipeline, so synthetic rows never reach a validation fold;
* the decision threshold is tuned on out-of-fold probabilities;
* the winner is refit on the whole training part.

The time budget covers search and refit. Optuna only stops between trials, so the search
also checks the clock between folds: a trial that would run past the search deadline is
pruned, and the deadline keeps back the time the current best needs for its refit. The
first trial always completes, so there is always a candidate.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from poise.contracts import Plan, TaskSpec
from poise.tools import metrics
from poise.tools.compose import build_pipeline, estimator_name, inference_pipeline
from poise.tools.models import MODELS
from poise.tools.preprocess import FeatureColumns
from poise.tools.strategies import STRATEGIES, StrategyContext

#: Strong, cheap starting points, tried first in this order when the plan allows them.
DEFAULT_TRIALS: tuple[dict[str, Any], ...] = (
    {"strategy": "none", "model": "hist_gradient_boosting", "hgb__learning_rate": 0.1, "hgb__max_leaf_nodes": 31,
     "hgb__min_samples_leaf": 20, "hgb__l2_regularization": 1e-6},
    {"strategy": "class_weight", "model": "logistic_regression", "cw__power": 1.0, "lr__C": 1.0},
    {"strategy": "balanced_random_forest", "brf__n_estimators": 300, "brf__min_samples_leaf": 1,
     "brf__max_features": 0.5},
    {"strategy": "class_weight", "model": "random_forest", "cw__power": 0.5, "rf__n_estimators": 300,
     "rf__min_samples_leaf": 2, "rf__max_features": 0.5},
    {"strategy": "class_weight", "model": "hist_gradient_boosting", "cw__power": 0.5, "hgb__learning_rate": 0.05,
     "hgb__max_leaf_nodes": 31, "hgb__min_samples_leaf": 20, "hgb__l2_regularization": 1e-6},
    {"strategy": "qc_smote", "model": "hist_gradient_boosting", "qcsmote__k": 5,
     "hgb__learning_rate": 0.1, "hgb__max_leaf_nodes": 31, "hgb__min_samples_leaf": 20,
     "hgb__l2_regularization": 1e-6},
    {"strategy": "none", "model": "mlp", "mlp__hidden": "128-64", "mlp__dropout": 0.1, "mlp__learning_rate": 1e-3,
     "mlp__weight_decay": 1e-4, "mlp__batch_size": 256, "mlp__loss": "class_balanced"},
)


@dataclass
class TrialRecord:
    """One candidate the search tried, as the progress display and the tracking log see it."""

    number: int
    strategy: str
    estimator: str
    params: dict[str, Any]
    state: str  # complete | pruned | failed
    score: float | None
    fold_scores: list[float]
    seconds: float
    best_score: float | None
    elapsed: float
    note: str | None = None


@dataclass
class SearchResult:
    pipeline: Any  # fitted, sampler-free: preprocessing + model
    strategy: str
    estimator: str
    params: dict[str, Any]
    threshold: float
    cv_score: float
    cv_metrics: dict[str, float]
    oof_proba: np.ndarray
    trials: list[TrialRecord] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    search_seconds: float = 0.0
    refit_seconds: float = 0.0

    @property
    def n_trials(self) -> int:
        return len(self.trials)


class _BudgetExceeded(Exception):
    pass


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
) -> SearchResult:
    """Find, refit and return the best pipeline for ``task`` within ``plan.budget_seconds``."""
    return _Search(X, y, task, plan, columns, storage, study_name, on_trial).run()


class _Search:
    def __init__(self, X, y, task, plan, columns, storage, study_name, on_trial) -> None:  # noqa: ANN001
        from sklearn.model_selection import StratifiedKFold

        self.X, self.y = X[columns.all].reset_index(drop=True), np.asarray(y).astype(int)
        self.task, self.plan, self.columns = task, plan, columns
        self.storage, self.study_name, self.on_trial = storage, study_name, on_trial
        self.params = task.metric_params()
        n_min = int(min(self.y.sum(), len(self.y) - self.y.sum()))
        if n_min < 2:
            raise ValueError(f"the minority class has {n_min} row(s) in the training part; cross-validation needs 2")
        self.n_folds = min(plan.cv_folds, n_min)
        self.folds = list(StratifiedKFold(self.n_folds, shuffle=True, random_state=task.seed).split(self.X, self.y))
        self.ctx = StrategyContext(
            n_minority=n_min - math.ceil(n_min / self.n_folds),
            n_majority=int(len(self.y) - n_min),
            columns=columns,
            seed=task.seed,
        )
        self.strategies, self.models, self.skipped = self._allowed()
        self.start = time.monotonic()
        self.deadline = self.start + plan.budget_seconds
        self.records: list[TrialRecord] = []
        self.best_value = -math.inf
        self.best_oof: np.ndarray | None = None
        self.best_fit_seconds = 0.0

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

    def _suggest(self, trial: Any) -> tuple[str, str, dict[str, Any]]:
        strategy = trial.suggest_categorical("strategy", self.strategies)
        spec = STRATEGIES[strategy]
        model = trial.suggest_categorical("model", self.models) if spec.kind in ("none", "weights", "sampler") \
            else None
        family = estimator_name(strategy, model)
        params = dict(spec.space(trial, self.ctx))
        if family in MODELS:
            params.update(MODELS[family].space(trial))
        return strategy, family, params

    # ------------------------------------------------------------------ the clock
    def _refit_reserve(self) -> float:
        """Seconds the current best will need to refit on all rows (a fold fit, scaled up)."""
        return 1.25 * self.best_fit_seconds * self.n_folds / max(self.n_folds - 1, 1)

    def _search_deadline(self) -> float:
        return self.deadline - self._refit_reserve()

    def _remaining(self) -> float:
        return self._search_deadline() - time.monotonic()

    # ------------------------------------------------------------------ one trial
    def _cross_validate(self, trial: Any, strategy: str, family: str, params: dict[str, Any]):  # noqa: ANN202
        import optuna
        from sklearn.base import clone

        pipeline = build_pipeline(strategy, family, params, self.ctx)
        oof = np.full(len(self.y), np.nan)
        fold_scores, fit_seconds = [], []
        first_ever = self.best_oof is None
        for step, (train, valid) in enumerate(self.folds):
            if step and not first_ever and time.monotonic() + np.mean(fit_seconds) > self._search_deadline():
                raise _BudgetExceeded()
            model = clone(pipeline)
            if family == "mlp" and not first_ever:
                model.set_params(model__max_time=max(self._remaining(), 1.0))
            tick = time.monotonic()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(self.X.iloc[train], self.y[train])
                proba = model.predict_proba(self.X.iloc[valid])[:, 1]
            fit_seconds.append(time.monotonic() - tick)
            if not np.all(np.isfinite(proba)):
                raise FloatingPointError("the model produced non-finite probabilities")
            oof[valid] = proba
            seen = ~np.isnan(oof)
            fold_scores.append(self._value(self.y[valid], proba))
            trial.report(self._value(self.y[seen], oof[seen]), step)
            if not first_ever and trial.should_prune():
                raise optuna.TrialPruned()
        return oof, fold_scores, float(np.mean(fit_seconds))

    def _value(self, y: np.ndarray, proba: np.ndarray) -> float:
        if y.min() == y.max():
            return float("nan")
        return metrics.best_threshold(self.task.metric, y, proba, self.params)[1]

    def _objective(self, trial: Any) -> float:
        import optuna

        tick = time.monotonic()
        strategy, family, params = self._suggest(trial)
        trial.set_user_attr("estimator", family)
        state, value, fold_scores, note = "failed", None, [], None
        try:
            oof, fold_scores, fit_seconds = self._cross_validate(trial, strategy, family, params)
            value, state = self._value(self.y, oof), "complete"
            if value > self.best_value:
                self.best_value, self.best_oof, self.best_fit_seconds = value, oof, fit_seconds
            return value
        except optuna.TrialPruned:
            state, note = "pruned", "pruned: worse than the median trial at the same fold"
            raise
        except _BudgetExceeded:
            state, note = "pruned", "pruned: would have run past the time budget"
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

    def _stop_when_out_of_time(self, study: Any, trial: Any) -> None:
        if self.best_oof is not None and self._remaining() <= 0:
            study.stop()
        if self.plan.max_trials is not None and len(self.records) >= self.plan.max_trials:
            study.stop()

    # ------------------------------------------------------------------ the whole search
    def run(self) -> SearchResult:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
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
        for defaults in DEFAULT_TRIALS:
            model = defaults.get("model")
            if defaults["strategy"] in self.strategies and (model is None or model in self.models):
                study.enqueue_trial(defaults, skip_if_exists=True)
        study.optimize(
            self._objective,
            timeout=max(self.deadline - time.monotonic(), 0.001),
            catch=(Exception,),
            callbacks=[self._stop_when_out_of_time],
        )
        if self.best_oof is None:
            failures = "; ".join(f"{r.strategy}/{r.estimator}: {r.note}" for r in self.records[:3])
            raise RuntimeError(f"no candidate could be trained on this data ({failures})")
        return self._refit_best(study)

    def _refit_best(self, study: Any) -> SearchResult:
        search_seconds = time.monotonic() - self.start
        best = study.best_trial
        strategy = best.params["strategy"]
        family = best.user_attrs["estimator"]
        params = {k: v for k, v in best.params.items() if k not in ("strategy", "model")}
        tick = time.monotonic()
        pipeline = build_pipeline(strategy, best.params.get("model"), params, self.ctx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline.fit(self.X, self.y)
        threshold, _ = metrics.best_threshold(self.task.metric, self.y, self.best_oof, self.params)
        return SearchResult(
            pipeline=inference_pipeline(pipeline),
            strategy=strategy,
            estimator=family,
            params=params,
            threshold=threshold,
            cv_score=float(best.value),
            cv_metrics=metrics.all_metrics(self.y, self.best_oof, threshold, self.params),
            oof_proba=self.best_oof,
            trials=self.records,
            skipped=self.skipped,
            search_seconds=search_seconds,
            refit_seconds=time.monotonic() - tick,
        )
