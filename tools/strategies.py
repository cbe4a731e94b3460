"""Imbalance strategies: a registry of name → builder + Optuna search space.

Five kinds, which decide how a strategy meets a model:

* ``none``      — train on the data as it is; the tuned threshold does the balancing;
* ``weights``   — class weights passed to the model (or its loss);
* ``sampler``   — an imblearn sampler placed in the pipeline before the model, so it only
                  ever resamples training folds;
* ``ensemble``  — a balanced ensemble that is itself the model (BalancedRandomForest, EasyEnsemble);
* ``loss``      — a loss for one model family (focal loss for the MLP).

Oversampling helps only under misspecification and is not monotone in the amount added,
so "none" and "weights" always stand beside the samplers, and the resampling ratio is a
searched hyperparameter, never fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from poise.tools.models import ClassWeight, Params, forest_leaves, leaf_cap
from poise.tools.preprocess import FeatureColumns, categorical_positions

if TYPE_CHECKING:  # Optuna loads when a search runs, imbalanced-learn and scikit-learn when a pipeline is built
    from imblearn.base import BaseSampler
    from optuna.trial import BaseTrial
    from sklearn.base import BaseEstimator

T = TypeVar("T")

StrategyKind = Literal["none", "weights", "sampler", "ensemble", "loss"]


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy needs to know about the data it will see."""

    n_minority: int  # the fewest minority rows any fit will see (one training fold)
    n_majority: int  # the fewest majority rows any fit will see
    columns: FeatureColumns
    seed: int = 0

    @property
    def ratio(self) -> float:
        """Minority/majority rows in a training fold."""
        return self.n_minority / max(self.n_majority, 1)

    def ratio_adding(self, rows: int) -> float:
        """The lowest ratio that adds at least ``rows`` minority rows on every training fold (a fold can hold
        one minority row more than the fewest: stratified folds differ by one). imbalanced-learn refuses a
        ratio that adds or removes no row at all, so a sampler is never asked for less than ``rows=1``."""
        return (self.n_minority + 1 + rows) / max(self.n_majority, 1)

    def neighbours(self, wanted: int) -> int:
        """k for a k-NN sampler: as wanted, but never more than the minority rows allow."""
        return max(1, min(wanted, self.n_minority - 1))


def _no_params(trial: BaseTrial, ctx: StrategyContext) -> Params:
    return {}


@dataclass(frozen=True)
class StrategySpec:
    name: str
    description: str
    kind: StrategyKind
    space: Callable[[BaseTrial, StrategyContext], Params] = _no_params
    sampler: Callable[[Params, StrategyContext], BaseSampler] | None = None
    estimator: Callable[[Params, StrategyContext], BaseEstimator] | None = None
    model: str | None = None
    min_minority: int = 1
    needs_categorical: bool = False
    cost: float = 1.0  # fit time of a balanced ensemble relative to 100 rounds of boosting; a sampler's overhead

    def unavailable_reason(self, ctx: StrategyContext) -> str | None:
        """Why this strategy cannot run on this data, or None when it can."""
        if ctx.n_minority < self.min_minority:
            return (
                f"needs at least {self.min_minority} minority rows per training fold, "
                f"the data gives {ctx.n_minority}"
            )
        if self.needs_categorical and not (ctx.columns.categorical and (ctx.columns.numeric or ctx.columns.datetime)):
            return "needs both categorical and numeric columns"
        return None


def class_weight(params: Params, ctx: StrategyContext) -> ClassWeight:
    """Positive-class weight (majority/minority)^power; power = 1 is sklearn's 'balanced' ratio."""
    power = params.get("cw__power", 1.0)
    return {0: 1.0, 1: float((1.0 / max(ctx.ratio, 1e-9)) ** power)}


# ---------------------------------------------------------------- shared search-space pieces
def _least(ctx: StrategyContext, prefix: str) -> float:
    """The lowest ratio the ``prefix`` sampler is asked for (at most 1.0, balanced)."""
    # ADASYN shares its new rows among the minority rows by how hard each is to learn and rounds every share:
    # with fewer new rows than minority rows all shares can round to none, and it refuses to run
    rows = ctx.n_minority + 1 if prefix == "adasyn" else 1
    return min(1.0, ctx.ratio_adding(rows))


def _ratio(trial: BaseTrial, ctx: StrategyContext, prefix: str) -> float:
    """Minority/majority ratio after resampling, from a little above today's up to balanced."""
    return trial.suggest_float(f"{prefix}__ratio", max(_least(ctx, prefix), 0.1), 1.0)


def _k(trial: BaseTrial, ctx: StrategyContext, prefix: str, name: str = "k") -> int:
    high = ctx.neighbours(10)
    if high <= 3:
        return high
    return trial.suggest_int(f"{prefix}__{name}", 3, high)


def _ratio_space(prefix: str) -> Callable[[BaseTrial, StrategyContext], Params]:
    def space(trial: BaseTrial, ctx: StrategyContext) -> Params:
        return {f"{prefix}__ratio": _ratio(trial, ctx, prefix)}

    return space


def _ratio_k_space(prefix: str) -> Callable[[BaseTrial, StrategyContext], Params]:
    def space(trial: BaseTrial, ctx: StrategyContext) -> Params:
        return {f"{prefix}__ratio": _ratio(trial, ctx, prefix), f"{prefix}__k": _k(trial, ctx, prefix)}

    return space


def _get(params: Params, prefix: str, name: str, default: T) -> T:
    return params.get(f"{prefix}__{name}", default)


def _k_of(params: Params, ctx: StrategyContext, prefix: str) -> int:
    return ctx.neighbours(_get(params, prefix, "k", 5))


def _ratio_of(params: Params, ctx: StrategyContext, prefix: str) -> float:
    return max(_get(params, prefix, "ratio", 1.0), _least(ctx, prefix))


# ---------------------------------------------------------------- samplers
def _random_over(params: Params, ctx: StrategyContext) -> BaseSampler:
    from imblearn.over_sampling import RandomOverSampler

    return RandomOverSampler(sampling_strategy=_ratio_of(params, ctx, "ros"), random_state=ctx.seed)


def _random_under(params: Params, ctx: StrategyContext) -> BaseSampler:
    from imblearn.under_sampling import RandomUnderSampler

    return RandomUnderSampler(sampling_strategy=_ratio_of(params, ctx, "rus"), random_state=ctx.seed)


def _smote(params: Params, ctx: StrategyContext) -> BaseSampler:
    from imblearn.over_sampling import SMOTE

    return SMOTE(sampling_strategy=_ratio_of(params, ctx, "smote"), k_neighbors=_k_of(params, ctx, "smote"),
                 random_state=ctx.seed)


def _smote_nc(params: Params, ctx: StrategyContext) -> BaseSampler:
    from imblearn.over_sampling import SMOTENC

    return SMOTENC(
        categorical_features=categorical_positions(ctx.columns),
        sampling_strategy=_ratio_of(params, ctx, "smotenc"),
        k_neighbors=_k_of(params, ctx, "smotenc"),
        random_state=ctx.seed,
    )


def _borderline(params: Params, ctx: StrategyContext) -> BaseSampler:
    from imblearn.over_sampling import BorderlineSMOTE

    return BorderlineSMOTE(
        sampling_strategy=_ratio_of(params, ctx, "bsmote"),
        k_neighbors=_k_of(params, ctx, "bsmote"),
        m_neighbors=_get(params, "bsmote", "m", 10),
        kind=_get(params, "bsmote", "kind", "borderline-1"),
        random_state=ctx.seed,
    )


def _borderline_space(trial: BaseTrial, ctx: StrategyContext) -> Params:
    return {
        **_ratio_k_space("bsmote")(trial, ctx),
        "bsmote__m": trial.suggest_int("bsmote__m", 5, 15),
        "bsmote__kind": trial.suggest_categorical("bsmote__kind", ["borderline-1", "borderline-2"]),
    }


def _adasyn(params: Params, ctx: StrategyContext) -> BaseSampler:
    from imblearn.over_sampling import ADASYN

    return ADASYN(sampling_strategy=_ratio_of(params, ctx, "adasyn"), n_neighbors=_k_of(params, ctx, "adasyn"),
                  random_state=ctx.seed)


def _smote_tomek(params: Params, ctx: StrategyContext) -> BaseSampler:
    from imblearn.combine import SMOTETomek
    from imblearn.over_sampling import SMOTE

    smote = SMOTE(k_neighbors=_k_of(params, ctx, "stomek"), random_state=ctx.seed)
    return SMOTETomek(sampling_strategy=_ratio_of(params, ctx, "stomek"), smote=smote, random_state=ctx.seed)


def _smote_enn(params: Params, ctx: StrategyContext) -> BaseSampler:
    from imblearn.combine import SMOTEENN
    from imblearn.over_sampling import SMOTE

    smote = SMOTE(k_neighbors=_k_of(params, ctx, "senn"), random_state=ctx.seed)
    return SMOTEENN(sampling_strategy=_ratio_of(params, ctx, "senn"), smote=smote, random_state=ctx.seed)


def _qc_smote(params: Params, ctx: StrategyContext) -> BaseSampler:
    from poise.tools.qc_smote import QCSMOTE

    return QCSMOTE(sampling_strategy=_ratio_of(params, ctx, "qcsmote"), k_neighbors=_k_of(params, ctx, "qcsmote"),
                   random_state=ctx.seed)


# ---------------------------------------------------------------- balanced ensembles
def _balanced_rf(params: Params, ctx: StrategyContext) -> BaseEstimator:
    from imblearn.ensemble import BalancedRandomForestClassifier

    return BalancedRandomForestClassifier(
        n_estimators=_get(params, "brf", "n_estimators", 300),
        min_samples_leaf=_get(params, "brf", "min_samples_leaf", 1),
        max_features=_get(params, "brf", "max_features", "sqrt"),
        max_leaf_nodes=leaf_cap(_get(params, "brf", "max_leaf_nodes", None)),
        sampling_strategy="all",
        replacement=True,
        bootstrap=False,
        n_jobs=1,  # one thread per fit; the search runs fits side by side (poise.tools.parallel)
        random_state=ctx.seed,
    )


def _balanced_rf_space(trial: BaseTrial, ctx: StrategyContext) -> Params:
    return {
        "brf__n_estimators": trial.suggest_int("brf__n_estimators", 100, 500, step=50),
        "brf__min_samples_leaf": trial.suggest_int("brf__min_samples_leaf", 1, 10, log=True),
        "brf__max_features": trial.suggest_float("brf__max_features", 0.1, 1.0),
        "brf__max_leaf_nodes": forest_leaves(trial, "brf"),
    }


def _easy_ensemble(params: Params, ctx: StrategyContext) -> BaseEstimator:
    from imblearn.ensemble import EasyEnsembleClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier

    member = HistGradientBoostingClassifier(
        max_iter=_get(params, "easy", "member_iter", 100), learning_rate=0.1, random_state=ctx.seed
    )
    return EasyEnsembleClassifier(
        n_estimators=_get(params, "easy", "n_estimators", 10), estimator=member, n_jobs=1, random_state=ctx.seed
    )


def _easy_space(trial: BaseTrial, ctx: StrategyContext) -> Params:
    return {
        "easy__n_estimators": trial.suggest_int("easy__n_estimators", 5, 30),
        "easy__member_iter": trial.suggest_int("easy__member_iter", 50, 200, log=True),
    }


def _focal_space(trial: BaseTrial, ctx: StrategyContext) -> Params:
    return {"focal__gamma": trial.suggest_float("focal__gamma", 0.5, 4.0)}


_KNN = 3  # a k-NN sampler needs a few minority neighbours to interpolate between

STRATEGIES: dict[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        StrategySpec("none", "no resampling; the tuned threshold does the balancing", "none"),
        StrategySpec(
            "class_weight", "class weights in the model's loss, (majority/minority)^power", "weights",
            space=lambda trial, ctx: {"cw__power": trial.suggest_float("cw__power", 0.25, 1.0)},
        ),
        StrategySpec("random_over", "random oversampling of the minority", "sampler",
                     _ratio_space("ros"), _random_over),
        StrategySpec("random_under", "random undersampling of the majority", "sampler",
                     _ratio_space("rus"), _random_under, min_minority=5),
        StrategySpec("smote", "SMOTE interpolation between minority neighbours", "sampler",
                     _ratio_k_space("smote"), _smote, min_minority=_KNN),
        StrategySpec("smote_nc", "SMOTE-NC for mixed numeric and categorical data", "sampler",
                     _ratio_k_space("smotenc"), _smote_nc, min_minority=_KNN, needs_categorical=True),
        StrategySpec("borderline_smote", "Borderline-SMOTE: oversample near the class boundary", "sampler",
                     _borderline_space, _borderline, min_minority=_KNN),
        StrategySpec("adasyn", "ADASYN: more synthetic points where the minority is hard to learn", "sampler",
                     _ratio_k_space("adasyn"), _adasyn, min_minority=_KNN),
        StrategySpec("smote_tomek", "SMOTE, then remove Tomek links", "sampler",
                     _ratio_k_space("stomek"), _smote_tomek, min_minority=_KNN),
        StrategySpec("smote_enn", "SMOTE, then edited nearest neighbours cleaning", "sampler",
                     _ratio_k_space("senn"), _smote_enn, min_minority=_KNN),
        StrategySpec("qc_smote", "QC-SMOTE: quality-controlled SMOTE that rejects points among the majority",
                     "sampler", _ratio_k_space("qcsmote"), _qc_smote, min_minority=_KNN),
        StrategySpec("balanced_random_forest", "random forest with each tree on a balanced bootstrap", "ensemble",
                     _balanced_rf_space, estimator=_balanced_rf, min_minority=2, cost=3.0),
        StrategySpec("easy_ensemble", "boosted learners, each on a balanced random undersample", "ensemble",
                     _easy_space, estimator=_easy_ensemble, min_minority=2, cost=5.0),
        StrategySpec("focal_loss", "focal loss: down-weights easy examples (MLP only)", "loss",
                     _focal_space, model="mlp"),
    )
}
