"""The model families poise searches: a registry of name → builder + Optuna search space.

Adding a family is one ``ModelSpec`` entry. Hyperparameter names are prefixed with the
family's short name so the Optuna study keeps each family's space apart.

Boosted trees (LightGBM, HistGradientBoosting) read categories natively: the pipeline gives
them ordinal codes and the positions of those columns (``categorical``), and they split on
sets of categories instead of on one-hot columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Optuna loads when a search runs, scikit-learn when a model is built
    from optuna.trial import BaseTrial
    from sklearn.base import BaseEstimator

ClassWeight = dict[int, float] | None
Params = dict[str, Any]


Categorical = tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable[[Params, ClassWeight, int, Categorical], BaseEstimator]
    space: Callable[[BaseTrial], Params]
    native_categorical: bool = False  # takes ordinal category codes and their column positions
    cost: float = 1.0  # rough fit time at its default size, relative to 100 rounds of HGB (for budgeting)


def _strip(params: Params, prefix: str) -> Params:
    return {k.split("__", 1)[1]: v for k, v in params.items() if k.startswith(prefix + "__")}


# ---------------------------------------------------------------- logistic regression
def _lr_build(params: Params, class_weight: ClassWeight, seed: int, categorical: Categorical = ()) -> BaseEstimator:
    from sklearn.linear_model import LogisticRegression

    p = _strip(params, "lr")
    return LogisticRegression(C=p.get("C", 1.0), class_weight=class_weight, max_iter=2000, random_state=seed)


def _lr_space(trial: BaseTrial) -> Params:
    return {"lr__C": trial.suggest_float("lr__C", 1e-3, 100.0, log=True)}


# ---------------------------------------------------------------- forests
#: The most leaves a forest's tree is searched with, and what that value means: no cap (the trees grow until
#: ``min_samples_leaf`` stops them, as scikit-learn's forests do by default). Forests of small trees are what
#: hold up on weak, noisy signals (FLAML searches their size too), and a bag of them is small to save and serve.
UNCAPPED_LEAVES = 4096


def leaf_cap(leaves: int | None) -> int | None:
    """scikit-learn's ``max_leaf_nodes`` for a searched leaf count (``None``: no cap)."""
    return None if leaves is None or leaves >= UNCAPPED_LEAVES else int(leaves)


def forest_leaves(trial: BaseTrial, prefix: str) -> int:
    """The leaf count of a forest's trees, searched on a log scale up to ``UNCAPPED_LEAVES`` (no cap)."""
    return trial.suggest_int(f"{prefix}__max_leaf_nodes", 16, UNCAPPED_LEAVES, log=True)


def _forest_space(prefix: str) -> Callable[[BaseTrial], Params]:
    def space(trial: BaseTrial) -> Params:
        return {
            f"{prefix}__n_estimators": trial.suggest_int(f"{prefix}__n_estimators", 100, 500, step=50),
            f"{prefix}__min_samples_leaf": trial.suggest_int(f"{prefix}__min_samples_leaf", 1, 20, log=True),
            f"{prefix}__max_features": trial.suggest_float(f"{prefix}__max_features", 0.1, 1.0),
            f"{prefix}__max_leaf_nodes": forest_leaves(trial, prefix),
        }

    return space


def _forest_build(prefix: str, cls_path: str) -> Callable[[Params, ClassWeight, int, Categorical], BaseEstimator]:
    def build(params: Params, class_weight: ClassWeight, seed: int, categorical: Categorical = ()) -> BaseEstimator:
        import importlib

        module, name = cls_path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        p = _strip(params, prefix)
        return cls(
            n_estimators=p.get("n_estimators", 300),
            min_samples_leaf=p.get("min_samples_leaf", 1),
            max_features=p.get("max_features", "sqrt"),
            max_leaf_nodes=leaf_cap(p.get("max_leaf_nodes")),
            class_weight=class_weight,
            n_jobs=1,  # one thread per fit; the search runs fits side by side (poise.tools.parallel)
            random_state=seed,
        )

    return build


# ---------------------------------------------------------------- gradient boosting
def _hgb_build(params: Params, class_weight: ClassWeight, seed: int, categorical: Categorical = ()) -> BaseEstimator:
    from sklearn.ensemble import HistGradientBoostingClassifier

    p = _strip(params, "hgb")
    return HistGradientBoostingClassifier(
        learning_rate=p.get("learning_rate", 0.1),
        max_leaf_nodes=p.get("max_leaf_nodes", 31),
        min_samples_leaf=p.get("min_samples_leaf", 20),
        l2_regularization=p.get("l2_regularization", 0.0),
        # the number of rounds is searched: early stopping on a 10 % split of a rare class is noisy
        max_iter=p.get("max_iter", 100),
        early_stopping=False,
        class_weight=class_weight,
        categorical_features=list(categorical) or None,
        random_state=seed,
    )


def _hgb_space(trial: BaseTrial) -> Params:
    return {
        "hgb__learning_rate": trial.suggest_float("hgb__learning_rate", 0.01, 0.3, log=True),
        "hgb__max_iter": trial.suggest_int("hgb__max_iter", 50, 500, log=True),
        "hgb__max_leaf_nodes": trial.suggest_int("hgb__max_leaf_nodes", 8, 128, log=True),
        "hgb__min_samples_leaf": trial.suggest_int("hgb__min_samples_leaf", 5, 100, log=True),
        "hgb__l2_regularization": trial.suggest_float("hgb__l2_regularization", 1e-6, 10.0, log=True),
    }


# ---------------------------------------------------------------- LightGBM
def _lgbm_build(params: Params, class_weight: ClassWeight, seed: int, categorical: Categorical = ()) -> BaseEstimator:
    from lightgbm import LGBMClassifier

    p = _strip(params, "lgbm")
    # LightGBM's alias of categorical_feature: the same setting, without the warning its own name raises as a param
    extra = {"categorical_column": list(categorical)} if categorical else {}
    return LGBMClassifier(
        learning_rate=p.get("learning_rate", 0.05),
        n_estimators=p.get("n_estimators", 300),
        num_leaves=p.get("num_leaves", 31),
        min_child_samples=p.get("min_child_samples", 20),
        subsample=p.get("subsample", 0.8),
        subsample_freq=1,
        colsample_bytree=p.get("colsample_bytree", 0.8),
        reg_lambda=p.get("reg_lambda", 1.0),
        min_data_per_group=20,  # categories this rare are not split on alone
        cat_smooth=10.0,
        class_weight=class_weight,
        n_jobs=1,  # one thread per fit; the search runs fits side by side (poise.tools.parallel)
        random_state=seed,
        verbose=-1,
        **extra,
    )


def _lgbm_space(trial: BaseTrial) -> Params:
    return {
        "lgbm__learning_rate": trial.suggest_float("lgbm__learning_rate", 0.01, 0.2, log=True),
        "lgbm__n_estimators": trial.suggest_int("lgbm__n_estimators", 50, 1000, log=True),
        "lgbm__num_leaves": trial.suggest_int("lgbm__num_leaves", 4, 128, log=True),
        "lgbm__min_child_samples": trial.suggest_int("lgbm__min_child_samples", 2, 100, log=True),
        "lgbm__subsample": trial.suggest_float("lgbm__subsample", 0.5, 1.0),
        "lgbm__colsample_bytree": trial.suggest_float("lgbm__colsample_bytree", 0.3, 1.0),
        "lgbm__reg_lambda": trial.suggest_float("lgbm__reg_lambda", 1e-3, 30.0, log=True),
    }


# ---------------------------------------------------------------- torch MLP
_MLP_SHAPES = {"64": (64,), "128-64": (128, 64), "256-128": (256, 128)}


def _mlp_build(params: Params, class_weight: ClassWeight, seed: int, categorical: Categorical = ()) -> BaseEstimator:
    from poise.tools.torch_mlp import TorchMLPClassifier

    p = _strip(params, "mlp")
    return TorchMLPClassifier(
        hidden_sizes=_MLP_SHAPES[p.get("hidden", "128-64")],
        dropout=p.get("dropout", 0.1),
        learning_rate=p.get("learning_rate", 1e-3),
        weight_decay=p.get("weight_decay", 1e-4),
        batch_size=p.get("batch_size", 256),
        loss=p.get("loss", "bce"),
        focal_gamma=p.get("focal_gamma", 2.0),
        class_weight=class_weight,
        random_state=seed,
    )


def _mlp_space(trial: BaseTrial) -> Params:
    return {
        "mlp__hidden": trial.suggest_categorical("mlp__hidden", list(_MLP_SHAPES)),
        "mlp__dropout": trial.suggest_float("mlp__dropout", 0.0, 0.5),
        "mlp__learning_rate": trial.suggest_float("mlp__learning_rate", 1e-4, 1e-2, log=True),
        "mlp__weight_decay": trial.suggest_float("mlp__weight_decay", 1e-6, 1e-2, log=True),
        "mlp__batch_size": trial.suggest_categorical("mlp__batch_size", [64, 256, 512]),
        "mlp__loss": trial.suggest_categorical("mlp__loss", ["bce", "class_balanced"]),
    }


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("logistic_regression", "L2-regularised logistic regression", _lr_build, _lr_space, cost=0.3),
        ModelSpec(
            "random_forest", "random forest",
            _forest_build("rf", "sklearn.ensemble.RandomForestClassifier"), _forest_space("rf"), cost=4.0,
        ),
        ModelSpec(
            "extra_trees", "extremely randomised trees",
            _forest_build("et", "sklearn.ensemble.ExtraTreesClassifier"), _forest_space("et"), cost=3.0,
        ),
        ModelSpec("hist_gradient_boosting", "histogram gradient boosting", _hgb_build, _hgb_space,
                  native_categorical=True),
        ModelSpec("lightgbm", "LightGBM gradient boosting", _lgbm_build, _lgbm_space, native_categorical=True),
        ModelSpec("mlp", "PyTorch multilayer perceptron", _mlp_build, _mlp_space, cost=5.0),
    )
}
