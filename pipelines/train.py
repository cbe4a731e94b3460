"""Training end to end: load → split → profile → plan → search → evaluate → register → gate.

Contracts in, contracts out. The holdout is split off first and scored once, by the
final model; the champion (if any) is scored on the same holdout for the gate.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from poise.contracts import Candidate, DataProfile, GateReport, Plan, TaskSpec
from poise.errors import DataError, PoiseError
from poise.settings import Settings, get_settings

StageCallback = Callable[[str], None]


@dataclass
class TrainingOutcome:
    candidate: Candidate
    profile: DataProfile
    plan: Plan
    gate: GateReport
    promoted: bool
    seconds: float


def default_model_name(data: str) -> str:
    """A registry name from the data file: ``data/ai4i 2020.csv.gz`` → ``ai4i-2020``."""
    stem = Path(data).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-").lower() or "model"


def train(
    task: TaskSpec,
    plan: Plan | None = None,
    *,
    promote_if_passed: bool = True,
    settings: Settings | None = None,
    on_stage: StageCallback | None = None,
    on_trial: Callable | None = None,
) -> TrainingOutcome:
    """Run the whole training for ``task``; ``plan`` defaults to the data-driven plan."""
    from poise.tools import data, planning  # the rest of the stack loads once the data has been read

    settings = settings or get_settings()
    started = time.monotonic()
    stage = on_stage or (lambda _: None)
    if task.budget_seconds > settings.max_budget_seconds:
        raise PoiseError(
            f"a budget of {task.budget_seconds:.0f} s is above this installation's cap of "
            f"{settings.max_budget_seconds:.0f} s",
            "ask for less time, or raise POISE_MAX_BUDGET_SECONDS",
        )
    model_name = task.model_name or default_model_name(task.data)

    stage("loading data")
    frame = data.load_table(task.data)
    table = data.prepare_target(frame, task.target, task.positive_label)
    train_part, holdout = data.split_holdout(table, plan.holdout_fraction if plan else 0.2, task.seed)
    stage("profiling the training part")
    target = data.resolve_column(frame, task.target, "target column")
    profile = data.profile_table(train_part, source=task.data, target=target,
                                 data_fingerprint=data.fingerprint(frame))
    if plan is None:
        stage("planning")
        plan = planning.plan_with_data(task, profile, train_part.features, train_part.y)

    from poise.registry import tracking, versions
    from poise.registry.model import ModelCard
    from poise.tools import metrics
    from poise.tools.preprocess import FeatureColumns
    from poise.tools.search import search

    columns = FeatureColumns.from_plan(profile, plan)
    if not columns.all:
        raise DataError("no feature columns are left after the plan's data steps",
                        "keep at least one column besides the target")

    with tracking.search_run(settings, run_name=f"{model_name}-search",
                             tags={"poise.model": model_name, "poise.fingerprint": profile.fingerprint}) as run:
        run.log_params({"data": task.data, "target": target, "metric": task.metric, "seed": task.seed,
                        "budget_seconds": plan.budget_seconds, "cv_folds": plan.cv_folds,
                        "strategies": plan.search.strategies, "models": plan.search.models,
                        "features": columns.all, **task.metric_params()})
        for name, payload in (("task.json", task), ("profile.json", profile), ("plan.json", plan)):
            run.log_json(name, payload)

        def log_trial(record) -> None:  # noqa: ANN001
            run.log_trial(
                record.number,
                params={"strategy": record.strategy, "estimator": record.estimator, **record.params},
                metrics={"cv_score": record.score if record.score is not None else float("nan"),
                         "seconds": record.seconds,
                         **{f"fold_{i}": s for i, s in enumerate(record.fold_scores)}},
                tags={"state": record.state, **({"note": record.note} if record.note else {})},
            )
            if on_trial is not None:
                on_trial(record)

        stage("searching")
        result = search(train_part.features, train_part.y, task, plan, columns,
                        storage=settings.optuna_storage, study_name=f"{model_name}-{run.run_id}",
                        on_trial=log_trial)

        stage("scoring the holdout")
        proba = result.pipeline.predict_proba(holdout.features[columns.all])[:, 1]
        holdout_metrics = metrics.all_metrics(holdout.y, proba, result.threshold, task.metric_params())
        card = ModelCard(
            target=target, positive_label=table.positive_label, negative_label=table.negative_label,
            threshold=result.threshold, numeric=columns.numeric, categorical=columns.categorical,
            datetime=columns.datetime, ignored=[c for c in frame.columns if c not in columns.all and c != target],
            strategy=result.strategy, estimator=result.estimator, metric=task.metric,
            members=[m.label for m in result.members],
        )
        candidate = Candidate(
            model_name=model_name, run_id=run.run_id, strategy=result.strategy, estimator=result.estimator,
            params=result.params, threshold=result.threshold, metric=task.metric, cv_score=result.cv_score,
            cv_metrics=result.cv_metrics, holdout_metrics=holdout_metrics, n_trials=result.n_trials,
            search_seconds=result.search_seconds + result.refit_seconds,
            positive_label=table.positive_label, negative_label=table.negative_label, features=columns.all,
        )
        run.log_metrics(result.cv_metrics, prefix="cv.")
        run.log_metrics(holdout_metrics, prefix="holdout.")
        run.log_metrics({"n_trials": result.n_trials, "search_seconds": result.search_seconds,
                         "refit_seconds": result.refit_seconds})
        run.log_json("trials.json", [vars(r) for r in result.trials])
        if result.skipped:
            run.log_json("skipped_strategies.json", result.skipped)

        stage("registering")
        version = versions.register_model(
            run, model_name, result.pipeline, card, train_part.features,
            tags={"metric": task.metric, "strategy": result.strategy, "estimator": result.estimator,
                  "threshold": f"{result.threshold:.6f}", "fingerprint": profile.fingerprint,
                  **{f"holdout.{k}": f"{v:.6f}" for k, v in holdout_metrics.items()}},
        )
        candidate.version = version

        stage("checking the gates")
        gate = _gate(plan, task, candidate, holdout, versions)
        run.log_json("gate.json", gate)
        promoted = False
        if gate.passed and promote_if_passed:
            versions.promote(model_name, version)
            promoted = True
        run.set_tags({"poise.version": version, "poise.gate": "passed" if gate.passed else "failed",
                      "poise.promoted": str(promoted).lower()})
        run.log_json("candidate.json", candidate)
    return TrainingOutcome(candidate, profile, plan, gate, promoted, time.monotonic() - started)


def _gate(plan: Plan, task: TaskSpec, candidate: Candidate, holdout, versions) -> GateReport:  # noqa: ANN001
    """The plan's gates, with the champion scored on this same holdout."""
    from poise.tools import metrics, planning

    champion_version = versions.alias_version(candidate.model_name, versions.CHAMPION)
    champion_metrics = None
    if champion_version is not None and plan.gates.must_beat_champion:
        champion = versions.load(f"{candidate.model_name}:{champion_version}")
        try:
            scored = champion.predict(holdout.features, allow_extra=True)
        except PoiseError as exc:
            return GateReport(
                passed=False, metric=task.metric, candidate_score=candidate.holdout_metrics[task.metric],
                champion_version=champion_version,
                reasons=[f"the champion v{champion_version} cannot score this holdout ({exc.problem}); "
                         "train under another --name, or promote this version by hand"],
            )
        champion_metrics = metrics.all_metrics(
            holdout.y, scored["proba"].to_numpy(), champion.card.threshold, task.metric_params()
        )
    return planning.check_gates(plan.gates, task.metric, candidate.holdout_metrics, champion_metrics,
                                champion_version)
