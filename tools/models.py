"""The model families poise searches: a registry of name → builder + Optuna search space.

Adding a family is one ``ModelSpec`` entry. Hyperparameter names are prefixed with the
family's short name so the Optuna study keeps each family's space apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ClassWeight = dict[int, float] | None
Params = dict[str, Any]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable[[Params, ClassWeight, int], Any]
    space: Callable[[Any], Params]


def _strip(params: Params, prefix: str) -> Params:
    return {k.split("__", 1)[1]: v for k, v in params.items() if k.startswith(prefix + "__")}


# ---------------------------------------------------------------- logistic regression
def _lr_build(params: Params, class_weight: ClassWeight, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    p = _strip(params, "lr")
    return LogisticRegression(C=p.get("C", 1.0), class_weight=class_weight, max_iter=2000, random_state=seed)


def _lr_space(trial: Any) -> Params:
    return {"lr__C": trial.suggest_float("lr__C", 1e-3, 100.0, log=True)}


# ---------------------------------------------------------------- forests
def _forest_space(prefix: str) -> Callable[[Any], Params]:
    def space(trial: Any) -> Params:
        return {
            f"{prefix}__n_estimators": trial.suggest_int(f"{prefix}__n_estimators", 100, 500, step=50),
            f"{prefix}__min_samples_leaf": trial.suggest_int(f"{prefix}__min_samples_leaf", 1, 20, log=True),
            f"{prefix}__max_features": trial.suggest_float(f"{prefix}__max_features", 0.1, 1.0),
        }

    return space


def _forest_build(prefix: str, cls_path: str) -> Callable[[Params, ClassWeight, int], Any]:
    def build(params: Params, class_weight: ClassWeight, seed: int) -> Any:
        import importlib

        module, name = cls_path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        p = _strip(params, prefix)
        return cls(
            n_estimators=p.get("n_estimators", 300),
            min_samples_leaf=p.get("min_samples_leaf", 1),
            max_features=p.get("max_features", "sqrt"),
            class_weight=class_weight,
            n_jobs=-1,
            random_state=seed,
        )

    return build


# ---------------------------------------------------------------- gradient boosting
def _hgb_build(params: Params, class_weight: ClassWeight, seed: int) -> Any:
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
        random_state=seed,
    )


def _hgb_space(trial: Any) -> Params:
    return {
        "hgb__learning_rate": trial.suggest_float("hgb__learning_rate", 0.01, 0.3, log=True),
        "hgb__max_iter": trial.suggest_int("hgb__max_iter", 50, 500, log=True),
        "hgb__max_leaf_nodes": trial.suggest_int("hgb__max_leaf_nodes", 8, 128, log=True),
        "hgb__min_samples_leaf": trial.suggest_int("hgb__min_samples_leaf", 5, 100, log=True),
        "hgb__l2_regularization": trial.suggest_float("hgb__l2_regularization", 1e-6, 10.0, log=True),
    }


# ---------------------------------------------------------------- torch MLP
_MLP_SHAPES = {"64": (64,), "128-64": (128, 64), "256-128": (256, 128)}


def _mlp_build(params: Params, class_weight: ClassWeight, seed: int) -> Any:
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


def _mlp_space(trial: Any) -> Params:
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
        ModelSpec("logistic_regression", "L2-regularised logistic regression", _lr_build, _lr_space),
        ModelSpec(
            "random_forest", "random forest",
            _forest_build("rf", "sklearn.ensemble.RandomForestClassifier"), _forest_space("rf"),
        ),
        ModelSpec(
            "extra_trees", "extremely randomised trees",
            _forest_build("et", "sklearn.ensemble.ExtraTreesClassifier"), _forest_space("et"),
        ),
        ModelSpec("hist_gradient_boosting", "histogram gradient boosting", _hgb_build, _hgb_space),
        ModelSpec("mlp", "PyTorch multilayer perceptron", _mlp_build, _mlp_space),
    )
}
