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
first trial always completes, so there is always a candidate. A stop request
(``poise.stopping``) ends the search between folds.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from poise import stopping
from poise.contracts import Plan, TaskSpec
from poise.tools import metrics
from poise.tools.compose import build_pipeline, estimator_name, inference_pipeline
from poise.tools.models import MODELS
from poise.tools.preprocess import FeatureColumns
from poise.tools.strategies import STRATEGIES, StrategyContext

#: Strong, cheap starting points, tried first in this order when the plan allows them.
_HGB = {"hgb__learning_rate": 0.1, "hgb__max_iter": 100, "hgb__max_leaf_nodes": 31, "hgb__min_samples_leaf": 20,
        "hgb__l2_regularization": 1e-6}
DEFAULT_TRIALS: tuple[dict[str, Any], ...] = (
    {"strategy": "none", "model": "hist_gradient_boosting", **_HGB},
    {"strategy": "class_weight", "model": "logistic_regression", "cw__power": 1.0, "lr__C": 1.0},
    {"strategy": "class_weight", "model": "hist_gradient_boosting", "cw__power": 0.5, **_HGB},
    {"strategy": "none", "model": "hist_gradient_boosting", **_HGB, "hgb__learning_rate": 0.05,
     "hgb__max_iter": 300, "hgb__max_leaf_nodes": 15},
    {"strategy": "balanced_random_forest", "brf__n_estimators": 300, "brf__min_samples_leaf": 1,
     "brf__max_features": 0.3},
    {"strategy": "class_weight", "model": "extra_trees", "cw__power": 0.5, "et__n_estimators": 300,
     "et__min_samples_leaf": 2, "et__max_features": 0.5},
    {"strategy": "qc_smote", "model": "hist_gradient_boosting", "qcsmote__k": 5, **_HGB},
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

    @property
    def label(self) -> str:
        return f"{self.strategy}/{self.estimator}"


@dataclass
class SearchResult:
    pipeline: Any  # fitted, sampler-free: preprocessing + model (or a blend of several)
    members: list[Member]
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
    """Find, refit and return the best pipeline for ``task`` within ``plan.budget_seconds``.

    ``deadline`` (a ``time.monotonic()`` instant), when given, is when search and refit must be
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
) -> Exploration:
    """The search without its last step: the chosen members, ready for ``Exploration.refit()``."""
    return _Search(X, y, task, plan, columns, storage, study_name, on_trial, deadline).explore()


@dataclass
class Exploration:
    """What the search chose (one member or a blend), before the refit on all training rows."""

    members: list[Member]
    trials: list[TrialRecord]
    search_seconds: float
    _search: _Search = field(repr=False)

    def refit(self) -> SearchResult:
        """Fit the chosen members on the whole training part; tune the threshold on their out-of-fold blend."""
        return self._search.refit(self.members, self.search_seconds)


class _Search:
    def __init__(self, X, y, task, plan, columns, storage, study_name, on_trial, deadline=None) -> None:  # noqa: ANN001
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
        self.deadline = self.start + plan.budget_seconds if deadline is None else deadline
        self.records: list[TrialRecord] = []
        self.best: list[Member] = []  # the top candidates so far, best first

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
        """Seconds the final model will need to refit on all rows: the likely members' fold fits, scaled up."""
        likely = self.best[: min(3, self.plan.ensemble_size)]
        return 1.25 * sum(m.fit_seconds for m in likely) * self.n_folds / max(self.n_folds - 1, 1)

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
        first_ever = not self.best
        for step, (train, valid) in enumerate(self.folds):
            stopping.check()  # a stop request ends the search between folds (Stopped, a KeyboardInterrupt)
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
            self._keep(Member(trial.number, strategy, trial.params.get("model"), family, params, value,
                              fit_seconds, oof))
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

    def _keep(self, member: Member, top: int = 20) -> None:
        """Remember the best candidates (and their out-of-fold predictions) for the final model."""
        self.best = sorted([*self.best, member], key=lambda m: (-m.score, m.trial))[:top]

    def _stop_when_out_of_time(self, study: Any, trial: Any) -> None:
        if self.best and self._remaining() <= 0:
            study.stop()
        if self.plan.max_trials is not None and len(self.records) >= self.plan.max_trials:
            study.stop()

    # ------------------------------------------------------------------ the whole search
    def explore(self) -> Exploration:
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
        if not self.best:
            failures = "; ".join(f"{r.strategy}/{r.estimator}: {r.note}" for r in self.records[:3])
            raise RuntimeError(f"no candidate could be trained on this data ({failures})")
        members = self._final_members()
        return Exploration(members, self.records, time.monotonic() - self.start, self)

    def _final_members(self) -> list[Member]:
        """The single best candidate, or a blend of several when that scores better out of fold."""
        from poise.tools import ensemble

        single = [replace(self.best[0], weight=1.0)]
        if self.plan.ensemble_size < 2 or len(self.best) < 2:
            return single
        weights, blended = ensemble.select({i: m.oof for i, m in enumerate(self.best)}, self.y, self.task.metric,
                                           self.params, max_members=self.plan.ensemble_size)
        if len(weights) < 2 or blended <= self.best_value:
            return single
        members = [replace(self.best[i], weight=w) for i, w in sorted(weights.items(), key=lambda kv: -kv[1])]
        # keep only the members whose refit still fits in the budget (heaviest weight first)
        room = self.deadline - time.monotonic()
        kept = []
        for member in members:
            cost = 1.25 * member.fit_seconds * self.n_folds / max(self.n_folds - 1, 1)
            if kept and cost > room:
                continue
            kept.append(member)
            room -= cost
        total = sum(m.weight for m in kept)
        return [replace(m, weight=m.weight / total) for m in kept]

    def refit(self, members: list[Member], search_seconds: float) -> SearchResult:
        from poise.tools.ensemble import BlendClassifier

        tick = time.monotonic()
        fitted = []
        for member in members:
            stopping.check()
            pipeline = build_pipeline(member.strategy, member.model, member.params, self.ctx)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline.fit(self.X, self.y)
            fitted.append(inference_pipeline(pipeline))
        oof = sum(m.weight * m.oof for m in members)
        final = fitted[0] if len(fitted) == 1 else BlendClassifier(fitted, [m.weight for m in members])
        threshold, cv_score = metrics.best_threshold(self.task.metric, self.y, oof, self.params)
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
        )
