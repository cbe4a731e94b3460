"""Monitoring as a Prefect flow: the champion's reference against a window of live data.

The window is the newest rows the model server logged (``--window N``) or a file
(``--current FILE``); rows that carry a label (late feedback, or the target column of the
file) also measure performance decay against the champion's holdout figure. The policy in
the champion's plan judges the report. The report is kept twice: JSON and Evidently's HTML
under ``POISE_HOME/monitoring/NAME``, and as an MLflow run of the monitoring experiment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from poise.contracts import DriftReport, Label, Plan, TaskSpec
from poise.errors import PoiseError
from poise.pipelines import runtime
from poise.settings import get_settings

if TYPE_CHECKING:  # pandas and MLflow load when a check runs, not with this module
    import pandas as pd

    from poise.registry.model import ModelCard
    from poise.registry.versions import LoadedModel

DEFAULT_WINDOW = 1000
RECENT_FILE = "recent.parquet"  # the labelled rows of a window, kept for a recovery


@dataclass
class Champion:
    """The served version with what monitoring and recovery need to know about it."""

    name: str
    version: str
    loaded: LoadedModel
    task: TaskSpec
    plan: Plan
    holdout_metrics: dict[str, float]

    @property
    def card(self) -> ModelCard:
        return self.loaded.card


@dataclass
class Window:
    """Live rows: the model's input columns, its scores, and 0/1 labels where known (NaN elsewhere)."""

    features: pd.DataFrame
    proba: np.ndarray
    labels: np.ndarray  # float: 1.0, 0.0 or NaN
    source: str

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.labels)


def champion_of(name: str) -> Champion:
    """The model's @champion, with the task and plan it was trained under."""
    from poise.registry import tracking, versions

    tracking.connect(get_settings())
    _, version = versions.resolve(f"{name}@{versions.CHAMPION}")
    facts = versions.describe(name, version)
    stored = {part: tracking.read_json(facts["run_id"], f"{part}.json") for part in ("task", "plan")}
    if stored["task"] is None or stored["plan"] is None:
        raise PoiseError(f"{name} v{version} was registered without its task and plan",
                         "retrain it with poise train or poise run, which record both")
    return Champion(name, version, versions.load(f"{name}:{version}"), TaskSpec.model_validate(stored["task"]),
                    Plan.model_validate(stored["plan"]), facts["holdout_metrics"])


def binary_labels(values: pd.Series | np.ndarray, positive: Label) -> np.ndarray:
    """Labels in the target's own values → 1.0 (positive), 0.0, or NaN where unknown."""
    import pandas as pd

    series = pd.Series(values, dtype=object)
    known = series.notna()
    hits = series.map(lambda v: v == positive or str(v) == str(positive))
    return np.where(known, hits.astype(float), np.nan)


def window_from_store(champion: Champion, last_n: int) -> Window:
    from poise.registry.predictions import PredictionStore, default_path

    logged = PredictionStore(default_path()).window(champion.name, last_n=last_n, version=champion.version)
    if logged.empty:
        raise PoiseError(f"no predictions of {champion.name} v{champion.version} (the champion) have been logged yet",
                         f"serve it (poise serve --model {champion.name}) or pass --current FILE")
    missing = [c for c in champion.card.features if c not in logged.columns]
    if missing:
        raise PoiseError(f"the logged predictions lack the model's column(s) {', '.join(map(repr, missing))}",
                         "pass the window as a file with --current FILE")
    features = champion.card.prepare(logged[champion.card.features])
    return Window(features, logged["proba"].to_numpy(float),
                  binary_labels(logged["label"], champion.card.positive_label),
                  f"the last {len(logged)} logged prediction(s)")


def window_from_file(champion: Champion, path: str) -> Window:
    from poise.tools.data import load_table

    frame = load_table(path)
    scored = champion.loaded.predict(frame, allow_extra=True)
    target = champion.card.target
    labels = (binary_labels(frame[target], champion.card.positive_label) if target in frame.columns
              else np.full(len(frame), np.nan))
    return Window(champion.card.prepare(frame, allow_extra=True), scored["proba"].to_numpy(float), labels, path)


def save_recent(champion: Champion, window: Window, folder: Path) -> Path | None:
    """The labelled rows of the window, in the target's own values; None when no row is labelled."""
    labelled = window.labelled
    if not labelled.any():
        return None
    card = champion.card
    frame = window.features.loc[labelled, card.features].reset_index(drop=True)
    frame[card.target] = np.where(window.labels[labelled] == 1.0, card.positive_label, card.negative_label)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RECENT_FILE
    frame.to_parquet(path, index=False)
    return path


def current_score(champion: Champion, window: Window) -> float | None:
    """The task metric of the champion on the labelled rows of the window (None without both classes)."""
    from poise.monitors.drift import performance

    labelled = window.labelled
    return performance(window.labels[labelled], window.proba[labelled], metric=champion.task.metric,
                       threshold=champion.card.threshold, params=champion.task.metric_params())


# ---------------------------------------------------------------------- tasks
@task(name="load the champion and its reference", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=3,
      retry_condition_fn=runtime.retry_if_transient)
def load_champion(name: str) -> tuple[Champion, pd.DataFrame]:
    from poise.registry import versions

    runtime.stage("loading the champion and its reference")
    champion = champion_of(name)
    reference = versions.reference(name, champion.version)
    return champion, reference[reference[versions.PART] == "train"].reset_index(drop=True)


@task(name="collect the window", cache_policy=NO_CACHE)
def collect_window(champion: Champion, current: str | None, last_n: int | None) -> Window:
    runtime.stage("collecting the window")
    if current is not None:
        return window_from_file(champion, current)
    return window_from_store(champion, last_n or DEFAULT_WINDOW)


@task(name="measure drift and decay", cache_policy=NO_CACHE)
def measure(champion: Champion, reference: pd.DataFrame, window: Window, html_path: Path | None) -> DriftReport:
    from poise.monitors.drift import check_drift, with_decay
    from poise.monitors.policy import assess
    from poise.registry import versions

    runtime.stage("measuring drift")
    card, policy = champion.card, champion.plan.monitor
    labelled = window.labelled
    labels = {} if not labelled.any() else {"reference_labels": reference[versions.LABEL].to_numpy(int),
                                             "current_labels": window.labels[labelled].astype(int)}
    # A date/time column moves forward by nature: its "drift" says nothing, and as a category with a
    # value per row it would cost Evidently minutes. Its calendar parts reach the model, not the check.
    watched = [*card.numeric, *card.categorical]
    report = check_drift(
        reference[watched], window.features[watched],
        numeric=card.numeric, categorical=card.categorical,
        reference_proba=reference[versions.PROBA].to_numpy(float), current_proba=window.proba, **labels,
        html_path=html_path, drift_share=policy.drift_share_act,
        model_name=champion.name, model_version=champion.version,
    )
    metric = champion.task.metric
    if metric in champion.holdout_metrics:
        report = with_decay(report, metric=metric, reference_score=champion.holdout_metrics[metric],
                            current_score=current_score(champion, window), labelled_rows=int(labelled.sum()))
    return assess(report, policy)


@task(name="store the report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=3,
      retry_condition_fn=runtime.retry_if_transient)
def store_report(report: DriftReport, json_path: Path) -> str:
    """JSON beside the HTML under POISE_HOME, and both in an MLflow run of the monitoring experiment."""
    from poise.registry import tracking

    runtime.stage("storing the report")
    json_path.write_text(report.model_dump_json(indent=2))
    settings = get_settings()
    with tracking.search_run(settings.model_copy(update={"experiment": f"{settings.experiment}-monitoring"}),
                             run_name=f"{report.model_name}-v{report.model_version}-monitor",
                             tags={"poise.kind": "monitor", "poise.model": report.model_name,
                                   "poise.version": report.model_version, "poise.severity": report.severity}) as run:
        run.log_metrics({"drifted_share": report.drifted_share, "current_rows": report.current_rows,
                         "labelled_rows": report.labelled_rows,
                         **({"decay": report.decay} if report.decay is not None else {}),
                         **({"current_score": report.current_score} if report.current_score is not None else {})})
        run.log_json("drift_report.json", report)
        if report.html_path:
            run.log_artifact(report.html_path)
    return run.run_id


def report_folder(model: str) -> Path:
    """Where the reports of ``model`` are kept: ``STAMP-vVERSION.json`` and ``.html`` side by side."""
    return get_settings().home / "monitoring" / model


def stored_reports(model: str) -> list[tuple[Path, DriftReport]]:
    """The kept reports of ``model``, oldest first (their file names start with the time they were made)."""
    folder = report_folder(model)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append((path, DriftReport.model_validate_json(path.read_text())))
        except (OSError, ValueError):
            continue  # a report being written, or one from an older format: skip rather than fail the page
    return found


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"monitor-{flow_run.parameters.get('model', 'model')}"


@flow(name="poise-monitor", flow_run_name=_run_name)
def monitor_flow(model: str, current: str | None = None, window: int | None = None,
                 html: bool = True, keep_labelled: str | None = None) -> DriftReport:
    """One drift check of ``model``'s champion on a file (``current``) or its last ``window`` predictions.

    ``keep_labelled`` names a folder where the window's labelled rows are kept (as ``RECENT_FILE``)
    for a recovery to learn from and be judged on.
    """
    if current is not None and window is not None:
        raise PoiseError("both a file and a window were given", "pass either --current FILE or --window N")
    started = time.monotonic()
    champion, reference = load_champion(model)
    rows = collect_window(champion, current, window)
    if keep_labelled is not None:
        save_recent(champion, rows, Path(keep_labelled))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    folder = report_folder(model)
    folder.mkdir(parents=True, exist_ok=True)
    report = measure(champion, reference, rows, folder / f"{stamp}-v{champion.version}.html" if html else None)
    store_report(report, folder / f"{stamp}-v{champion.version}.json")
    runtime.log().info("severity %s in %.1f s: %s", report.severity, time.monotonic() - started,
                       "; ".join(report.reasons))
    return report
