"""Composing a strategy and a model into one leak-free pipeline, and stripping it for serving.

The training pipeline is an imblearn ``Pipeline``: preprocessing → sampler → model, so the
sampler only ever runs inside ``fit`` on the rows it is given (a training fold, or the
whole training part at refit). The inference pipeline is the same fitted steps without
the sampler: a plain scikit-learn ``Pipeline`` that never resamples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from poise.tools.models import MODELS, Params
from poise.tools.preprocess import DerivedFeatures, build_preprocessor, categorical_positions, post_sampler_encoder
from poise.tools.strategies import STRATEGIES, StrategyContext, class_weight

if TYPE_CHECKING:  # imbalanced-learn and scikit-learn load when a pipeline is built
    from imblearn.pipeline import Pipeline as TrainingPipeline
    from sklearn.pipeline import Pipeline


def estimator_name(strategy: str, model: str | None) -> str:
    """The model family a (strategy, model) pair trains: ensembles and losses fix their own."""
    spec = STRATEGIES[strategy]
    if spec.kind == "ensemble":
        return spec.name
    return spec.model or model or ""


def build_pipeline(strategy: str, model: str | None, params: Params, ctx: StrategyContext) -> TrainingPipeline:
    """The unfitted training pipeline for one point of the search space."""
    from imblearn.pipeline import Pipeline

    spec = STRATEGIES[strategy]
    family = estimator_name(strategy, model)
    ordinal = spec.needs_categorical
    # boosted trees read categories and missing values natively, unless a sampler needs numbers first
    native = spec.kind in ("none", "weights") and family in MODELS and MODELS[family].native_categorical
    steps: list[tuple[str, Any]] = []
    if ctx.columns.derived:
        steps.append(("derive", DerivedFeatures(tuple(ctx.columns.derived))))
    steps.append(("prep", build_preprocessor(ctx.columns, ordinal_categories=ordinal, native=native)))
    if spec.sampler is not None:
        steps.append(("sampler", spec.sampler(params, ctx)))
    if ordinal:
        steps.append(("post", post_sampler_encoder(ctx.columns)))
    if spec.estimator is not None:
        estimator = spec.estimator(params, ctx)
    else:
        if family not in MODELS:
            raise ValueError(f"strategy {strategy!r} needs a model; got {model!r}")
        model_params = dict(params)
        if spec.kind == "loss":
            model_params.update({"mlp__loss": "focal", "mlp__focal_gamma": params.get("focal__gamma", 2.0)})
        weights = class_weight(params, ctx) if spec.kind == "weights" else None
        categorical = tuple(categorical_positions(ctx.columns)) if native else ()
        estimator = MODELS[family].build(model_params, weights, ctx.seed, categorical)
    steps.append(("model", estimator))
    return Pipeline(steps)


def inference_pipeline(fitted: TrainingPipeline) -> Pipeline:
    """The fitted pipeline without its sampler: what gets registered and served."""
    from sklearn.pipeline import Pipeline

    return Pipeline([(name, step) for name, step in fitted.steps if not hasattr(step, "fit_resample")])
