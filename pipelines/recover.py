"""The work of a recovery, as Prefect flows: re-tune the threshold, build a retraining table, challenge.

Recent labelled rows are split once, in the order they arrived, into a part a recovery may learn
from and the newest part it is judged on: neither the champion nor the challenger ever saw the
judging rows, so the paired bootstrap compares two honest scores on the same rows. The challenger
must also hold the plan's floors on the champion's original holdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from poise.contracts import Candidate, GateReport, Plan, RecoveryDecision, TaskSpec
from poise.errors import DataError
from poise.pipelines import runtime
from poise.pipelines.monitor import Champion, champion_of
from poise.settings import get_settings

if TYPE_CHECKING:  # pandas, scikit-learn and MLflow load when a recovery runs, not with this module
    from poise.registry.versions import LoadedModel
    from poise.tools.data import LabelledTable

RETRAIN_FILE = "retrain.parquet"


# ---------------------------------------------------------------------- data
def recent_parts(recent: str | Path, champion: Champion, eval_fraction: float
                 ) -> tuple[LabelledTable, LabelledTable]:
    """(rows to learn from, rows to judge on) of the recent labelled rows, in the order they arrived.

    The newest ``eval_fraction`` of the rows is judged on, so a challenger is always judged on rows
    later than any it learned from: neighbouring minutes of a time series are nearly the same row,
    and a split that interleaves them would flatter it.
    """
    from poise.tools import data

    table = data.prepare_target(data.load_table(recent), champion.card.target, champion.card.positive_label)
    cut = len(table.y) - max(1, round(eval_fraction * len(table.y)))
    learn, judge = table.y[:cut], table.y[cut:]
    if min(learn.sum(), len(learn) - learn.sum(), judge.sum(), len(judge) - judge.sum()) < 2:
        raise DataError(
            f"the recent labelled rows cannot be split to learn and to judge: the older {len(learn)} hold "
            f"{int(learn.sum())} positive(s), the newer {len(judge)} hold {int(judge.sum())}; each part needs "
            "at least 2 of each class",
            "attach more labels (poise feedback FILE) or pass a larger labelled --current file")

    def part(rows: slice) -> LabelledTable:
        return data.LabelledTable(table.features.iloc[rows].reset_index(drop=True), table.y[rows],
                                  table.positive_label, table.negative_label)

    return part(slice(0, cut)), part(slice(cut, None))


def judging_metric(task_spec: TaskSpec, action: str) -> str:
    """What a challenger is judged on: the task's metric, but a threshold-sensitive one for a re-tune
    (a new threshold cannot change a ranking metric such as average precision; a constrained metric is
    scored at the threshold, so it stays)."""
    from poise.tools.metrics import DEFAULT_DECISION_METRIC, RANKING_METRICS

    if action == "retune_threshold" and task_spec.metric in RANKING_METRICS:
        return DEFAULT_DECISION_METRIC
    return task_spec.metric


def retraining_table(champion: Champion, recent: str | Path, decision: RecoveryDecision, folder: Path) -> Path:
    """Recent rows to learn from plus a share of the champion's training rows, as one table."""
    import pandas as pd

    from poise.registry import versions

    card = champion.card
    learn, _ = recent_parts(recent, champion, decision.recent_eval_fraction)
    reference = versions.reference(champion.name, champion.version)
    reference = reference[reference[versions.PART] == "train"]
    keep = int(round(decision.reference_fraction * len(reference)))
    order = pd.util.hash_pandas_object(reference[card.features], index=False).sort_values().index
    kept = reference.loc[order[:keep]]
    old = kept[card.features].assign(**{card.target: np.where(kept[versions.LABEL] == 1, card.positive_label,
                                                              card.negative_label)})
    new = learn.features[card.features].assign(
        **{card.target: np.where(learn.y == 1, card.positive_label, card.negative_label)})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RETRAIN_FILE
    pd.concat([old, new], ignore_index=True).to_parquet(path, index=False)
    return path


def retraining_task(champion: Champion, data: Path, budget_seconds: float) -> TaskSpec:
    return champion.task.model_copy(update={"data": str(data), "target": champion.card.target,
                                            "positive_label": champion.card.positive_label,
                                            "budget_seconds": budget_seconds, "model_name": champion.name})


# ---------------------------------------------------------------------- re-tune
@task(name="tune the threshold on recent labels", cache_policy=NO_CACHE)
def tune_threshold(champion: Champion, recent: str, eval_fraction: float) -> float:
    from poise.tools import metrics

    runtime.stage("tuning the threshold on recent labels")
    learn, _ = recent_parts(recent, champion, eval_fraction)
    proba = champion.loaded.predict(learn.features, allow_extra=True)["proba"].to_numpy()
    metric = judging_metric(champion.task, "retune_threshold")
    return metrics.best_threshold(metric, learn.y, proba, champion.task.metric_params())[0]


@task(name="register the re-tuned version", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5,
      retry_condition_fn=runtime.retry_if_transient)
def register_retuned(champion: Champion, threshold: float) -> Candidate:
    from poise.registry import tracking, versions
    from poise.tools import metrics

    runtime.stage("registering the re-tuned version")
    settings = get_settings()
    reference = versions.reference(champion.name, champion.version)
    holdout = reference[reference[versions.PART] == "holdout"]
    y, proba = holdout[versions.LABEL].to_numpy(int), holdout[versions.PROBA].to_numpy(float)
    holdout_metrics = metrics.all_metrics(y, proba, threshold, champion.task.metric_params())
    card = champion.card.model_copy(update={"threshold": threshold})
    flow_run_id = runtime.flow_run()[0]
    with tracking.search_run(settings, run_name=f"{champion.name}-retune",
                             tags={"poise.model": champion.name, "poise.recovery": "retune_threshold",
                                   "poise.retuned_from": champion.version,
                                   **({"prefect.flow_run_id": flow_run_id} if flow_run_id else {})}) as run:
        run.log_json("task.json", champion.task)
        run.log_json("plan.json", champion.plan)
        run.log_metrics(holdout_metrics, prefix="holdout.")
        version = versions.register_model(
            run, champion.name, champion.loaded.model.pipeline, card, reference[card.features].head(50),
            reference=reference,
            tags={"metric": champion.task.metric, "strategy": card.strategy, "estimator": card.estimator,
                  "threshold": f"{threshold:.6f}", "recovery": "retune_threshold",
                  **{f"holdout.{k}": f"{v:.6f}" for k, v in holdout_metrics.items()}},
        )
        candidate = Candidate(
            model_name=champion.name, version=version, run_id=run.run_id, strategy=card.strategy,
            estimator=card.estimator, threshold=threshold, metric=champion.task.metric,
            cv_score=holdout_metrics[champion.task.metric], holdout_metrics=holdout_metrics,
            positive_label=card.positive_label, negative_label=card.negative_label, features=card.features,
        )
        run.log_json("candidate.json", candidate)
    return candidate


def _retune_name() -> str:
    from prefect.runtime import flow_run

    return f"retune-{flow_run.parameters.get('model', 'model')}"


@flow(name="poise-retune", flow_run_name=_retune_name)
def retune_flow(model: str, recent: str, eval_fraction: float = 0.5) -> Candidate:
    """The champion with a threshold tuned on recent labels, registered as a new version."""
    champion = champion_of(model)
    threshold = tune_threshold(champion, recent, eval_fraction)
    return register_retuned(champion, threshold)


# ---------------------------------------------------------------------- challenge
@task(name="score champion and challenger on recent labels", cache_policy=NO_CACHE)
def judge(model: str, version: str, recent: str, eval_fraction: float, metric: str) -> GateReport:
    from poise.registry import versions
    from poise.tools import metrics

    runtime.stage("judging challenger against champion")
    champion = champion_of(model)
    challenger = versions.load(f"{model}:{version}")
    _, judge_rows = recent_parts(recent, champion, eval_fraction)
    params = champion.task.metric_params()
    scored = {who: m.predict(judge_rows.features, allow_extra=True)["proba"].to_numpy()
              for who, m in (("challenger", challenger), ("champion", champion.loaded))}
    difference, low, high = metrics.paired_bootstrap(
        metric, judge_rows.y, scored["challenger"], challenger.card.threshold, scored["champion"],
        champion.card.threshold, params, seed=champion.task.seed)
    ours = metrics.metric_value(metric, judge_rows.y, scored["challenger"], challenger.card.threshold, params)
    theirs = metrics.metric_value(metric, judge_rows.y, scored["champion"], champion.card.threshold, params)
    better = low > 0.0
    reasons = [f"on {len(judge_rows.y)} recent labelled rows neither model saw: {metric} {ours:.4f} vs champion "
               f"v{champion.version} {theirs:.4f}, difference {difference:+.4f} (95% CI {low:+.4f} to {high:+.4f})"
               + ("" if better else "; not better by more than noise")]
    passed, floor_reasons, intervals = holdout_floors(model, champion, challenger, params)
    return GateReport(passed=bool(better and passed), reasons=[*reasons, *floor_reasons], metric=metric,
                      candidate_score=ours, champion_version=champion.version, champion_score=theirs,
                      difference_ci=(low, high), intervals=intervals)


def holdout_floors(model: str, champion: Champion, challenger: LoadedModel,
                   params: dict[str, float]) -> tuple[bool, list[str], dict[str, tuple[float, float]]]:
    """The challenger on the champion's original holdout, at its own threshold, against the champion's
    plan's floors and the task's (the same check training gates with: ``planning.check_floors``)."""
    from poise.registry import versions
    from poise.tools import metrics, planning

    reference = versions.reference(model, champion.version)
    holdout = reference[reference[versions.PART] == "holdout"]
    y = holdout[versions.LABEL].to_numpy(int)
    proba = challenger.predict(holdout[challenger.card.features], allow_extra=True)["proba"].to_numpy()
    floors = planning.gate_floors(champion.plan.gates, params)
    threshold, seed = challenger.card.threshold, champion.task.seed
    intervals = {name: metrics.bootstrap_interval(name, y, proba, threshold, params, seed=seed)[1:]
                 for name in floors}
    passed, reasons = planning.check_floors(floors, metrics.all_metrics(y, proba, threshold, params), intervals,
                                            where="original holdout ")
    return passed, reasons, intervals


def _challenge_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"challenge-{params.get('model', 'model')}-v{params.get('version', '?')}"


@flow(name="poise-challenge", flow_run_name=_challenge_name)
def challenge_flow(model: str, version: str, recent: str, eval_fraction: float, metric: str) -> GateReport:
    """May ``version`` replace the champion? Only if it beats it on recent labels by more than noise."""
    return judge(model, version, recent, eval_fraction, metric)


def recovery_plan(champion: Champion, action: str, budget_seconds: float) -> Plan:
    """The champion's plan for a retrain: its own search (or every strategy and model), the recovery's
    budget, and no champion comparison inside training (the challenge does that on recent rows)."""
    from poise.tools.models import MODELS
    from poise.tools.strategies import STRATEGIES

    plan = champion.plan
    steps = [s for s in plan.data_steps if s.action != "drop" or s.column in champion.card.features]
    update: dict[str, Any] = {"data_steps": steps, "budget_seconds": budget_seconds,
                              "gates": plan.gates.model_copy(update={"must_beat_champion": False})}
    if action == "retrain_wider":
        update["search"] = plan.search.model_copy(update={"strategies": list(STRATEGIES), "models": list(MODELS)})
    return plan.model_copy(update=update)
