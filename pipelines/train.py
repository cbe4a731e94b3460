"""Training as a Prefect flow: load → profile → plan → search → refit → fit on every row → evaluate →
register → compare.

Contracts in, contracts out; the flow never asks the Brain anything. The holdout is split
off first and scored once, by the search's fold models, which never saw it; the model registered
is then the same recipe trained on every labelled row. The champion (if any) is scored on the same
holdout, by its own out-of-sample scores where it trained on those rows, so the gate compares like
with like. Promotion is not part of training: it is the
deploy flow's job (``poise.pipelines.deploy``).

On the embedded default Prefect runs the flow through a temporary local server under
``POISE_HOME``; with ``PREFECT_API_URL`` set, the same flow reports to that server. The
MLflow run and the flow run point at each other (tags on one side, an artifact on the other).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from poise import stopping
from poise.contracts import Candidate, DataProfile, GateReport, Label, Plan, TaskSpec
from poise.errors import DataError, PoiseError
from poise.pipelines import budget, runtime
from poise.pipelines.budget import Timing
from poise.settings import Settings, get_settings

if TYPE_CHECKING:  # pandas, scikit-learn and MLflow load when a training runs, not with this module
    import pandas as pd

    from poise.registry.model import Classifier
    from poise.registry.tracking import SearchRun
    from poise.tools.data import LabelledTable
    from poise.tools.preprocess import FeatureColumns
    from poise.tools.search import Exploration, SearchResult, TrialRecord


@dataclass
class TrainingOutcome:
    candidate: Candidate
    profile: DataProfile
    plan: Plan
    gate: GateReport
    promoted: bool
    seconds: float
    flow_run_id: str | None = None
    timing: Timing = field(default_factory=Timing)


@dataclass
class Split:
    """The table, and its training and holdout parts (the holdout set aside before anything else)."""

    frame: pd.DataFrame
    target: str
    positive_label: Label
    negative_label: Label
    train: LabelledTable
    holdout: LabelledTable

    @property
    def labelled_rows(self) -> int:
        return len(self.train.y) + len(self.holdout.y)


#: The holdout share before a plan exists (the Plan's own default).
DEFAULT_HOLDOUT_FRACTION: float = Plan.model_fields["holdout_fraction"].default


def honest_split(task_spec: TaskSpec, holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION) -> Split:
    """Load the table, read its target and set the holdout aside: the one place that split is made.

    The training flow and the agents (profiling, judging derived features) all call this, with the
    plan's own ``holdout_fraction`` once a plan exists, so nothing ever looks at rows training holds out.
    """
    from poise.tools import data

    frame = data.load_table(task_spec.data)
    table = data.prepare_target(frame, task_spec.target, task_spec.positive_label)
    train_part, holdout = data.split_holdout(table, holdout_fraction)
    target = data.resolve_column(frame, task_spec.target, "target column")
    return Split(frame, target, table.positive_label, table.negative_label, train_part, holdout)


def training_profile(task_spec: TaskSpec, split: Split) -> DataProfile:
    """The profile of the training part only (the holdout never shapes the plan)."""
    from poise.tools import data

    return data.profile_table(split.train, source=task_spec.data, target=split.target,
                              data_fingerprint=data.fingerprint(split.frame))


def default_model_name(data: str) -> str:
    """A registry name from the data file: ``data/ai4i 2020.csv.gz`` → ``ai4i-2020``."""
    stem = Path(data).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-").lower() or "model"


def named(task_spec: TaskSpec) -> TaskSpec:
    """The task with its registered model name filled in."""
    if task_spec.model_name:
        return task_spec
    return task_spec.model_copy(update={"model_name": default_model_name(task_spec.data)})


def train(
    task_spec: TaskSpec,
    plan: Plan | None = None,
    *,
    promote_if_passed: bool = True,
    on_stage: Callable[[str], None] | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    started: float | None = None,
) -> TrainingOutcome:
    """Train (the train flow) and, when the candidate passes its gates, deploy it (the deploy flow).

    The budget covers everything from ``started`` (a ``time.monotonic()`` instant: the CLI passes
    its process start; by default, now) to the end of the deployment (``poise.pipelines.budget``).
    """
    from poise.pipelines.deploy import deploy_flow
    from poise.tools import data

    started = time.monotonic() if started is None else started
    runtime.start_prefect_server(get_settings().home)  # it starts while the data is read
    # a wrong path, target or label is the user's to fix now, before any flow machinery starts
    data.prepare_target(data.load_table(task_spec.data), task_spec.target, task_spec.positive_label)
    with runtime.observing(on_stage, on_trial):
        outcome = run_training(named(task_spec), plan, started=started)
        if promote_if_passed and outcome.gate.passed:
            try:
                with stopping.at_safe_points(), outcome.timing.part("registration"):
                    deployed = deploy_flow(outcome.candidate.model_name, outcome.candidate.version, outcome.gate)
                    outcome.promoted = deployed.promoted
                stopping.check()
            except stopping.Stopped as exc:
                exc.message = f"stopped after {_kept(outcome.candidate, outcome.promoted)}"
                raise
    budget.remember_tail(get_settings().home, outcome.timing.seconds.get("evaluation", 0.0)
                         + outcome.timing.seconds.get("registration", 0.0) + budget.EXIT_SECONDS)
    return outcome


def _kept(candidate: Candidate, promoted: bool = False) -> str:
    alias = "@champion" if promoted else "@challenger"
    return f"registering {candidate.model_name} v{candidate.version} as {alias}"


def run_training(task_spec: TaskSpec, plan: Plan | None = None, *, started: float | None = None
                 ) -> TrainingOutcome:
    """The train flow, here or, when ``POISE_TRAIN_DEPLOYMENT`` names a deployment, on a Prefect worker.

    Here, the budget counts from ``started`` (a ``time.monotonic()`` instant; by default, now).
    """
    settings = get_settings()
    started = time.monotonic() if started is None else started
    if not settings.train_deployment:
        runtime.start_prefect_server(settings.home)
        _prepare_while_prefect_starts(settings)
        runtime.wait_for_prefect_server()
        return train_flow(task_spec, plan, clock_started=started)
    return _train_on_worker(settings.train_deployment, named(task_spec), plan)


def _prepare_while_prefect_starts(settings: Settings) -> None:
    """What the training needs anyway, done while the local Prefect server starts rather than after.

    The MLflow store is opened (created, on a fresh home), the runs a killed process left RUNNING
    are closed, the search's and registry's libraries are loaded, the search's worker processes start
    (``poise.tools.parallel``), and MLflow's map of installed packages, which registering a model needs,
    is built in the background.
    """
    from poise.registry import tracking, versions
    from poise.tools import parallel, search  # noqa: F401 - loaded now, used by the flow

    parallel.warm_up(parallel.cores())
    tracking.close_abandoned_runs(settings)
    versions.warm_requirement_checks()  # while the server finishes starting, and beside the search


def _train_on_worker(deployment: str, task_spec: TaskSpec, plan: Plan | None) -> TrainingOutcome:
    """Run the deployment, wait for it, and read its outcome back from the MLflow run it links to."""
    from prefect.deployments import run_deployment

    from poise.registry import tracking

    started = time.monotonic()
    runtime.stage(f"training on a worker ({deployment})")
    local = Path(task_spec.data).expanduser()
    if local.exists():  # the worker runs in a folder of its own: a relative path would not reach the file
        task_spec = task_spec.model_copy(update={"data": str(local.resolve())})
    parameters = {"task_spec": task_spec.model_dump(mode="json"),
                  "plan": None if plan is None else plan.model_dump(mode="json")}
    flow_run = run_deployment(deployment, parameters=parameters, timeout=None)
    if not flow_run.state or not flow_run.state.is_completed():
        state = flow_run.state.name if flow_run.state else "unknown"
        raise PoiseError(f"the training flow run {flow_run.name} ({flow_run.id}) ended {state}: "
                         f"{flow_run.state.message if flow_run.state else ''}",
                         f"see its logs: prefect flow-run logs {flow_run.id}")
    tracking.connect(get_settings())
    found = tracking.runs_tagged("prefect.flow_run_id", str(flow_run.id))
    if not found:
        raise PoiseError(f"the training flow run {flow_run.id} left no MLflow run in this tracking store",
                         "point the worker and this machine at the same POISE_TRACKING_URI")
    run_id = found[0]
    stored = {name: tracking.read_json(run_id, f"{name}.json") for name in ("candidate", "profile", "plan", "gate")}
    return TrainingOutcome(
        Candidate.model_validate(stored["candidate"]), DataProfile.model_validate(stored["profile"]),
        Plan.model_validate(stored["plan"]), GateReport.model_validate(stored["gate"]), False,
        time.monotonic() - started, str(flow_run.id),
    )


# ---------------------------------------------------------------------- tasks
@task(name="load data", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=runtime.retry_if_transient)
def load_data(task_spec: TaskSpec, holdout_fraction: float) -> Split:
    runtime.stage("loading data")
    return honest_split(task_spec, holdout_fraction)


@task(name="profile the training part", cache_policy=NO_CACHE)
def profile_training_part(task_spec: TaskSpec, split: Split) -> DataProfile:
    runtime.stage("profiling the training part")
    return training_profile(task_spec, split)


@task(name="plan from the data", cache_policy=NO_CACHE)
def plan_from_data(task_spec: TaskSpec, profile: DataProfile, split: Split, seconds_left: float) -> Plan:
    """The data's own plan; judging derived features takes at most a share of the ``seconds_left`` for the search."""
    from poise.tools import planning

    runtime.stage("planning")
    judging = planning.FEATURE_SHARE * seconds_left
    if judging < budget.MIN_JUDGING_SECONDS:  # judging would only take time from the search
        plan = planning.default_plan(task_spec, profile)
        return plan.model_copy(update={"rationale": [
            *plan.rationale, "derived features not judged: the budget left no time for it"]})
    return planning.plan_with_data(task_spec, profile, split.train.features, split.train.y,
                                   feature_share=judging / task_spec.budget_seconds)


@task(name="search strategies and models", cache_policy=NO_CACHE)
def search_candidates(task_spec: TaskSpec, plan: Plan, split: Split, columns: FeatureColumns, run: SearchRun,
                      deadline: float) -> Exploration:
    from poise.tools.search import explore

    runtime.stage("searching")
    on_trial = runtime.trial_observer()

    def log_trial(record: TrialRecord) -> None:
        run.log_trial(
            record.number,
            params={"strategy": record.strategy, "estimator": record.estimator, **record.params},
            metrics={"cv_score": record.score if record.score is not None else float("nan"),
                     "seconds": record.seconds, **{f"fold_{i}": s for i, s in enumerate(record.fold_scores)}},
            tags={"state": record.state, **({"note": record.note} if record.note else {})},
        )
        if on_trial is not None:
            on_trial(record)

    with _quiet_while_stopping("optuna"):
        return explore(split.train.features, split.train.y, task_spec, plan, columns,
                       storage=get_settings().optuna_storage, study_name=f"{task_spec.model_name}-{run.run_id}",
                       on_trial=log_trial, deadline=deadline,
                       final_rows=split.labelled_rows if fits_on_every_row(plan, split) else None)


@contextmanager
def _quiet_while_stopping(library: str) -> Iterator[None]:
    """Keep a library's console lines off the screen once the user asked to stop.

    Optuna logs the trial a stop request ends as a failed trial, with a traceback; the user asked
    for it, and the command says in one line what was kept.
    """
    import importlib
    import logging

    importlib.import_module(library)  # its console handler exists once it is imported
    quiet = logging.Filter()
    quiet.filter = lambda record: not stopping.is_stopping()  # type: ignore[method-assign]
    handlers = logging.getLogger(library).handlers
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


@task(name="refit the winner on all training rows", cache_policy=NO_CACHE)
def refit_winner(exploration: Exploration) -> SearchResult:
    runtime.stage("refitting the winner")
    return exploration.refit()


def fits_on_every_row(plan: Plan, split: Split) -> bool:
    """Whether the registered model is to be trained on every labelled row once the holdout has judged its
    recipe: as the plan asks, and only while the version's reference can keep the out-of-sample score of
    every holdout row (how a later candidate is compared with it fairly, ``versions.out_of_sample``)."""
    return plan.final_fit_on_all_rows and len(split.holdout.y) <= REFERENCE_ROWS


@task(name="train the chosen recipe on every labelled row", cache_policy=NO_CACHE)
def fit_on_every_row(exploration: Exploration, result: SearchResult, split: Split, plan: Plan, deadline: float
                     ) -> tuple[Classifier | None, str]:
    """The chosen recipe trained on the training part and the holdout together, and what the registered model
    learned from, in words. ``None`` (the search's fold models are registered) when the plan keeps the holdout
    out or the budget has no time left for the fit. The holdout judges the recipe either way, scored by the
    fold models, which never saw it."""
    import numpy as np
    import pandas as pd

    searched = f"the {len(split.train.y)} training rows only (the search's fold models, averaged)"
    if not fits_on_every_row(plan, split):
        why = "as the plan asks" if not plan.final_fit_on_all_rows else \
            f"its {len(split.holdout.y)} rows are more than a version keeps to compare with later candidates"
        return None, f"{searched}; the holdout was kept out ({why})"
    needed = exploration.fit_seconds(result.members, split.labelled_rows)
    if time.monotonic() + needed > deadline:
        return None, f"{searched}; the budget left no time to train on the holdout rows too (about {needed:.0f} s)"
    runtime.stage("training the chosen recipe on every labelled row")
    features = pd.concat([split.train.features, split.holdout.features], ignore_index=True)
    labels = np.concatenate([split.train.y, split.holdout.y])
    try:
        model = exploration.fit_members(result.members, features, labels)
    except Exception as exc:  # the recipe trained on every search fold; failing on these rows loses nothing kept
        runtime.log().warning("training on every labelled row failed (%s: %s); the search's fold models are "
                              "registered", type(exc).__name__, exc)
        return None, f"{searched}; training on the holdout rows too failed ({type(exc).__name__}: {exc})"[:600]
    return model, (f"all {len(labels)} labelled rows, the {len(split.holdout.y)} holdout rows too, once they had "
                   "judged its recipe (the holdout figures are those of the search's fold models, which never "
                   "saw them)")


@task(name="evaluate on the holdout", cache_policy=NO_CACHE)
def evaluate_on_holdout(task_spec: TaskSpec, split: Split, result: SearchResult, columns: FeatureColumns,
                        run: SearchRun) -> Candidate:
    from poise.tools import metrics

    runtime.stage("scoring the holdout")
    proba = result.pipeline.predict_proba(split.holdout.features[columns.all])[:, 1]
    holdout_metrics = metrics.all_metrics(split.holdout.y, proba, result.threshold, task_spec.metric_params())
    run.log_metrics(result.cv_metrics, prefix="cv.")
    run.log_metrics(holdout_metrics, prefix="holdout.")
    run.log_metrics({"n_trials": result.n_trials, "search_seconds": result.search_seconds,
                     "refit_seconds": result.refit_seconds})
    run.log_json("trials.json", [vars(r) for r in result.trials])
    if result.skipped:
        run.log_json("skipped_strategies.json", result.skipped)
    if result.notes:  # why the search chose what it chose (a sampler or blend kept out on noise, say)
        run.log_json("search_notes.json", result.notes)
        for note in result.notes:
            runtime.log().info("%s", note)
    return Candidate(
        model_name=task_spec.model_name, run_id=run.run_id, strategy=result.strategy, estimator=result.estimator,
        params=result.params, threshold=result.threshold, metric=task_spec.metric, cv_score=result.cv_score,
        cv_metrics=result.cv_metrics, holdout_metrics=holdout_metrics, n_trials=result.n_trials,
        search_seconds=result.search_seconds + result.refit_seconds, choices=result.notes,
        positive_label=split.positive_label, negative_label=split.negative_label, features=columns.all,
    )


@task(name="register the model version", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5,
      retry_condition_fn=runtime.retry_if_transient)
def register_version(candidate: Candidate, split: Split, result: SearchResult, columns: FeatureColumns,
                     profile: DataProfile, run: SearchRun, deployed: Classifier | None = None) -> str:
    """Register ``deployed`` (the recipe trained on every labelled row) or, without it, the search's fold models;
    the reference keeps the out-of-sample scores either way."""
    from poise.registry import versions
    from poise.registry.model import ModelCard

    runtime.stage("registering")
    card = ModelCard(
        target=split.target, positive_label=split.positive_label, negative_label=split.negative_label,
        threshold=result.threshold, numeric=columns.numeric, categorical=columns.categorical,
        datetime=columns.datetime,
        ignored=[c for c in split.frame.columns if c not in columns.all and c != split.target],
        strategy=result.strategy, estimator=result.estimator, metric=candidate.metric,
        members=[m.label for m in result.members], trained_on_holdout=deployed is not None,
    )
    return versions.register_model(
        run, candidate.model_name, result.pipeline if deployed is None else deployed, card, split.train.features,
        reference=reference_rows(split, result, card.features),
        tags={"metric": candidate.metric, "strategy": result.strategy, "estimator": result.estimator,
              "threshold": f"{result.threshold:.6f}", "fingerprint": profile.fingerprint,
              **{f"holdout.{k}": f"{v:.6f}" for k, v in candidate.holdout_metrics.items()}},
    )


#: Rows of each part (training, holdout) a version keeps as its reference.
REFERENCE_ROWS = 50_000


def reference_rows(split: Split, result: SearchResult, features: list[str], most: int = REFERENCE_ROWS
                   ) -> pd.DataFrame:
    """Training rows (scored out of fold) and holdout rows (scored by the search's fold models, which never saw
    them), labelled and keyed (``data.row_keys``).

    At most ``most`` rows of each part, sampled by row content like the holdout itself.
    """
    import pandas as pd

    from poise.registry import versions
    from poise.tools import data

    parts = []
    for name, table, proba in (
        ("train", split.train, result.oof_proba),
        ("holdout", split.holdout, result.pipeline.predict_proba(split.holdout.features[features])[:, 1]),
    ):
        frame = table.features[features].reset_index(drop=True).assign(
            **{versions.LABEL: table.y.astype(int), versions.PROBA: proba, versions.PART: name,
               versions.ROW: data.row_keys(table)})
        if len(frame) > most:
            frame = frame.loc[pd.util.hash_pandas_object(frame, index=False).sort_values().index[:most]]
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def floor_intervals(plan: Plan, task_spec: TaskSpec, candidate: Candidate, split: Split,
                    result: SearchResult) -> dict[str, tuple[float, float]]:
    """The 95 % stratified-bootstrap interval, on the holdout at the deployed threshold, of each floored quantity."""
    from poise.tools import metrics, planning

    params = task_spec.metric_params()
    proba = result.pipeline.predict_proba(split.holdout.features[candidate.features])[:, 1]
    return {name: metrics.bootstrap_interval(name, split.holdout.y, proba, candidate.threshold, params,
                                             seed=task_spec.seed)[1:]
            for name in planning.gate_floors(plan.gates, params)}


@task(name="compare with the champion", cache_policy=NO_CACHE)
def compare_with_champion(plan: Plan, task_spec: TaskSpec, candidate: Candidate, split: Split,
                          result: SearchResult | None = None) -> GateReport:
    """The plan's gates and the task's floors, at the deployed threshold, with the champion scored on this
    same holdout; each floored quantity with its bootstrap interval (from ``result``, the refitted winner)."""
    from poise.registry import versions
    from poise.tools import data, metrics, planning

    runtime.stage("checking the gates")
    params = task_spec.metric_params()
    intervals = {} if result is None else floor_intervals(plan, task_spec, candidate, split, result)
    evidence = {"params": params, "intervals": intervals, "out_of_fold": candidate.cv_metrics,
                "holdout_positives": int(split.holdout.y.sum())}
    champion_version = versions.alias_version(candidate.model_name, versions.CHAMPION)
    champion_metrics, kept = None, 0  # kept: holdout rows the champion is scored on by its stored scores
    if champion_version is not None and plan.gates.must_beat_champion:
        champion = versions.load(f"{candidate.model_name}:{champion_version}")
        try:
            scored = champion.predict(split.holdout.features, allow_extra=True)
        except PoiseError as exc:
            report = planning.check_gates(plan.gates, task_spec.metric, candidate.holdout_metrics, **evidence)
            return report.model_copy(update={"passed": False, "champion_version": champion_version, "reasons": [
                *report.reasons, f"the champion v{champion_version} cannot score this holdout ({exc.problem}); "
                "train under another --name, or promote this version by hand"]})
        # a champion that also trained on its holdout is scored there by its recipe's out-of-sample scores
        proba, kept = versions.out_of_sample(champion, data.row_keys(split.holdout), scored["proba"].to_numpy())
        champion_metrics = metrics.all_metrics(split.holdout.y, proba, champion.card.threshold, params)
    report = planning.check_gates(plan.gates, task_spec.metric, candidate.holdout_metrics, champion_metrics,
                                  champion_version, **evidence)
    if kept:
        report.reasons.append(f"the champion trained on {kept} of these holdout rows after they had judged it: "
                              "it is scored there by its out-of-sample scores, as when it was judged")
    return report


# ---------------------------------------------------------------------- the flow
def _run_name() -> str:
    from prefect.runtime import flow_run

    spec = flow_run.parameters.get("task_spec")
    name = getattr(spec, "model_name", None) or (spec.get("model_name") if isinstance(spec, dict) else None)
    return f"train-{name or 'model'}"


# Prefect validates the parameters against these types: a task_spec or plan given as JSON (a deployment's
# parameters) becomes a TaskSpec or Plan, and a malformed one fails before the flow starts.
@flow(name="poise-train", flow_run_name=_run_name)
def train_flow(task_spec: TaskSpec, plan: Plan | None = None, clock_started: float | None = None
               ) -> TrainingOutcome:
    """Search, refit, evaluate and register a model for ``task_spec`` (the plan defaults to the data's own).

    The budget (the plan's, else the task's) counts from ``clock_started``, a ``time.monotonic()``
    instant of this process (by default, the start of the flow): search and refit end early
    enough for evaluation and registration to fit in it too (``poise.pipelines.budget``).
    """
    from poise.tools.preprocess import FeatureColumns

    settings = get_settings()
    started = time.monotonic()
    clock = started if clock_started is None else clock_started
    task_spec = named(task_spec)
    if task_spec.budget_seconds > settings.max_budget_seconds:
        raise PoiseError(
            f"a budget of {task_spec.budget_seconds:.0f} s is above this installation's cap of "
            f"{settings.max_budget_seconds:.0f} s",
            "ask for less time, or raise POISE_MAX_BUDGET_SECONDS",
        )
    seconds = plan.budget_seconds if plan else task_spec.budget_seconds
    split = load_data(task_spec, plan.holdout_fraction if plan else 0.2)
    profile = profile_training_part(task_spec, split)
    tail = budget.predicted_tail_seconds(len(split.frame), len(split.frame.columns), settings.home)
    deadline = budget.search_deadline(clock, seconds, tail)
    if plan is None:
        plan = plan_from_data(task_spec, profile, split, deadline - time.monotonic())
    plan = _within_budget(plan, seconds, clock, deadline, tail)
    columns = FeatureColumns.from_plan(profile, plan)
    if not columns.all:
        raise DataError("no feature columns are left after the plan's data steps",
                        "keep at least one column besides the target")
    timing = Timing(clock, seconds)
    with stopping.at_safe_points():
        candidate, gate = _search_and_register(task_spec, plan, split, profile, columns, deadline, timing)
    return TrainingOutcome(candidate, profile, plan, gate, False, time.monotonic() - started, runtime.flow_run()[0],
                           timing)


def _within_budget(plan: Plan, seconds: float, clock: float, deadline: float, tail: float) -> Plan:
    """The plan with the seconds search and refit really have, and why (the user's budget covers it all)."""
    now = time.monotonic()
    left = max(deadline - now, 0.0)
    line = (f"the {seconds:.0f} s budget covers the whole command (it ends within "
            f"{budget.allowed_seconds(seconds):.0f} s): {now - clock:.0f} s went to start-up, data and planning, "
            f"about {tail:.0f} s are kept for evaluation and registration; search and refit have {left:.0f} s"
            + (" (one trial, as the budget is spent)" if left < 1 else ""))
    return plan.model_copy(update={"budget_seconds": max(round(left, 1), 0.1), "rationale": [*plan.rationale, line]})


def _search_and_register(task_spec: TaskSpec, plan: Plan, split: Split, profile: DataProfile, columns: FeatureColumns,
                         deadline: float, timing: Timing) -> tuple[Candidate, GateReport]:
    """The MLflow run of the training: search, refit, evaluate, register, gate.

    A stop request ends it at the next step boundary (the search checks between folds); the
    run is then marked KILLED and ``Stopped`` says whether a version was registered.
    """
    from poise.registry import tracking
    from poise.tools import parallel

    settings = get_settings()
    flow_run_id, flow_run_name, flow_run_url = runtime.flow_run()
    model_name = task_spec.model_name
    prefect_tags = {k: v for k, v in {"prefect.flow_run_id": flow_run_id, "prefect.flow_run_name": flow_run_name,
                                      "prefect.flow_run_url": flow_run_url}.items() if v}
    candidate: Candidate | None = None
    try:
        with tracking.search_run(settings, run_name=f"{model_name}-search",
                                 tags={"poise.model": model_name, "poise.fingerprint": profile.fingerprint,
                                       **prefect_tags}) as run:
            runtime.link_to_mlflow(run.run_id, settings.tracking_uri, run.experiment_id, model_name)
            run.log_params({"data": task_spec.data, "target": split.target, "metric": task_spec.metric,
                            "seed": task_spec.seed, "budget_seconds": plan.budget_seconds,
                            "cv_folds": plan.cv_folds, "strategies": plan.search.strategies,
                            "models": plan.search.models, "features": columns.all, **task_spec.metric_params()})
            for name, payload in (("task.json", task_spec), ("profile.json", profile), ("plan.json", plan)):
                run.log_json(name, payload)

            exploration = search_candidates(task_spec, plan, split, columns, run, deadline)
            timing.add("search", exploration.search_seconds)
            stopping.check()
            result = refit_winner(exploration)
            timing.add("refit", result.refit_seconds)
            stopping.check()
            with timing.part("refit"):
                deployed, trained_on = fit_on_every_row(exploration, result, split, plan, deadline)
                parallel.release()  # the last fit is done: the process does not wait for its workers at exit
            stopping.check()
            with timing.part("evaluation"):
                candidate = evaluate_on_holdout(task_spec, split, result, columns, run)
                candidate.trained_on = trained_on
            stopping.check()
            with timing.part("registration"):
                candidate.version = register_version(candidate, split, result, columns, profile, run, deployed)
            stopping.check()
            with timing.part("evaluation"):
                gate = compare_with_champion(plan, task_spec, candidate, split, result)
            run.log_json("gate.json", gate)
            run.set_tags({"poise.version": candidate.version, "poise.gate": "passed" if gate.passed else "failed"})
            run.log_json("candidate.json", candidate)
    except stopping.Stopped as exc:
        exc.message = "stopped: nothing was registered" if candidate is None or candidate.version is None \
            else f"stopped after {_kept(candidate)}"
        raise
    return candidate, gate
