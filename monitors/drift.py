"""Drift of a monitoring window against its reference, measured by Evidently.

The monitor is handed two frames (what the champion was trained on, what it has been asked
since) and the columns it should watch; where the frames came from is the caller's business.
Only the named feature columns are compared, so the target or an identifier can never pass for
a feature. Evidently runs one test per column and says which column drifted: normed Wasserstein
or Jensen-Shannon distances on large windows, and K-S, chi-square or Z-test p-values whenever either
window has 1,000 rows or fewer (Evidently itself only looks at the reference's size, which lets a
small current window cross a distance threshold by chance). This module turns the snapshot into a
``DriftReport`` a person, an agent and the audit trail can all read.

Severity is not decided here: ``poise.monitors.policy.assess`` judges the evidence against the
user's ``MonitorPolicy``. Performance on late labels is added with ``performance`` (scored by
``poise.tools.metrics``, the functions training is scored with) and ``with_decay``; prior shift is
measured from labels when there are some, else from the mean predicted probability.

Evidently is imported inside the functions that need it: it takes seconds to import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from poise.contracts import METRICS, DriftReport, FeatureDrift
from poise.errors import PoiseError
from poise.tools import metrics

if TYPE_CHECKING:  # Evidently loads when a report runs
    from evidently.core.report import Snapshot

#: Name of the predicted-probability column inside the Evidently report.
PROBA_COLUMN = "predicted_probability"
#: Evidently's own line between small data (p-value tests) and large data (distances).
SMALL_WINDOW = 1000
#: Evidently reports a method it chose by its display name but one it was given by its short name.
_METHOD_NAMES = {"ks": "K-S p_value", "chisquare": "chi-square p_value", "z": "Z-test p_value"}
_MAX_SCORE = 1e12  # FeatureDrift's bound; an unbounded divergence is clipped to it


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    reference_proba: np.ndarray | None = None,
    current_proba: np.ndarray | None = None,
    reference_labels: np.ndarray | None = None,
    current_labels: np.ndarray | None = None,
    html_path: Path | str | None = None,
    drift_share: float = 0.5,
    model_name: str | None = None,
    model_version: str | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` on the ``numeric`` and ``categorical`` feature columns.

    ``reference_proba`` / ``current_proba`` (positive-class probabilities, one per row) add the
    drift of the prediction distribution. ``reference_labels`` / ``current_labels`` (0/1, 1 = the
    minority class; the current ones may cover only the labelled part of the window) give the
    minority shares; without labels the mean predicted probability stands in for them.
    ``drift_share`` only sets Evidently's own dataset-level verdict in the HTML report; pass the
    policy's ``drift_share_act`` to make the two agree. The returned report is not judged yet
    (severity "none", no policy): see ``poise.monitors.policy.assess``.
    """
    features = _check_columns(reference, current, list(numeric), list(categorical))
    ref_proba = _check_proba(reference_proba, len(reference), "reference")
    cur_proba = _check_proba(current_proba, len(current), "current")
    _require_pair(ref_proba, cur_proba, "predicted probabilities", "reference_proba and current_proba")
    _require_pair(reference_labels, current_labels, "labels", "reference_labels and current_labels")
    if not 0.0 <= drift_share <= 1.0:
        raise PoiseError(f"drift_share must lie in [0, 1], got {drift_share}", "pass a share such as 0.5")
    source, ref_share, cur_share = _minority_shares(ref_proba, cur_proba, reference_labels, current_labels)
    proba_column = _free_name(PROBA_COLUMN, features) if ref_proba is not None else None

    snapshot = _run_report(
        _frame(reference, features, proba_column, ref_proba),
        _frame(current, features, proba_column, cur_proba),
        numeric=[*numeric, *([proba_column] if proba_column else [])],
        categorical=list(categorical),
        features=features,
        proba_column=proba_column,
        drift_share=drift_share,
        for_people=html_path is not None,
    )
    drifts = parse_snapshot(snapshot.dict())
    if html_path is not None:
        html_path = Path(html_path)
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))

    feature_drifts = [drifts[col] for col in features]
    return DriftReport(
        model_name=model_name,
        model_version=model_version,
        reference_rows=len(reference),
        current_rows=len(current),
        features=feature_drifts,
        drifted_share=sum(f.drifted for f in feature_drifts) / len(feature_drifts),
        prediction_drift=drifts[proba_column] if proba_column else None,
        minority_share_source=source,
        reference_minority_share=ref_share,
        current_minority_share=cur_share,
        labelled_rows=0 if current_labels is None else len(current_labels),
        html_path=None if html_path is None else str(html_path),
    )


def parse_snapshot(snapshot: Mapping[str, Any]) -> dict[str, FeatureDrift]:
    """Column -> FeatureDrift from an Evidently 0.7 ``Snapshot.dict()``.

    Each ``ValueDrift`` metric carries the column, the method and threshold Evidently resolved,
    and the score as its value; the drift verdict is the status of the test bound to that metric
    (FAIL = drifted), which is the only place that knows whether a low or a high score means drift.
    """
    verdicts = {
        test.get("metric_config", {}).get("metric_id"): test.get("status")
        for test in snapshot.get("tests", [])
    }
    drifts: dict[str, FeatureDrift] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith(":ValueDrift"):
            continue
        column, status = config["column"], verdicts.get(metric.get("id"))
        if status not in ("SUCCESS", "FAIL"):
            raise RuntimeError(
                f"Evidently gave no drift verdict for column {column!r} (test status {status!r}); "
                "the report must be run with include_tests=True"
            )
        method = str(config.get("method"))
        drifts[column] = FeatureDrift(
            column=column,
            method=_METHOD_NAMES.get(method, method),
            score=_finite(metric.get("value")),
            threshold=float(config.get("threshold")),
            drifted=status == "FAIL",
        )
    return drifts


def performance(y_true: np.ndarray, proba: np.ndarray, *, metric: str, threshold: float = 0.5,
                params: Mapping[str, float] | None = None) -> float | None:
    """The task metric on labelled rows of the window: ``y_true`` 0/1 (1 = positive), ``proba`` the
    positive-class probability, ``threshold`` the champion's decision threshold, ``params`` the task's
    metric parameters (``min_precision``, ``beta`` ...).

    Scored exactly as training scores the holdout (``poise.tools.metrics.metric_value``), so decay
    compares like with like. Returns None when the labels hold a single class (no ranking metric is
    defined then).
    """
    y, p = np.asarray(y_true).astype(int), np.asarray(proba, dtype=float)
    if y.shape != p.shape:
        raise PoiseError(f"{y.size} labels but {p.size} probabilities", "pass one probability per labelled row")
    if metric not in METRICS:
        raise PoiseError(f"performance() does not know the metric {metric!r}",
                         f"use one of {', '.join(METRICS)}")
    if y.size == 0 or y.min() == y.max():
        return None
    return metrics.metric_value(metric, y, p, threshold, params)


def with_decay(
    report: DriftReport,
    *,
    metric: str,
    reference_score: float,
    current_score: float | None,
    labelled_rows: int,
) -> DriftReport:
    """A copy of ``report`` carrying performance decay: ``reference_score`` is the champion's holdout
    figure, ``current_score`` the same metric on the window's ``labelled_rows`` (None when it could
    not be computed, e.g. a single class). Decay = reference - current, so positive means worse."""
    if current_score is not None and math.isnan(current_score):
        current_score = None
    decay = None if current_score is None else reference_score - current_score
    update = {
        "metric": metric,
        "reference_score": reference_score,
        "current_score": current_score,
        "decay": decay,
        "labelled_rows": labelled_rows,
    }
    return DriftReport.model_validate(report.model_dump() | update)


# -- internals -----------------------------------------------------------------------------------


def _check_columns(
    reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> list[str]:
    features = [*numeric, *categorical]
    if not features:
        raise PoiseError(
            "no feature columns to watch", "pass the model's features as numeric=[...] and categorical=[...]"
        )
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise PoiseError(f"columns listed as both numeric and categorical: {', '.join(both)}",
                         "list each feature once, under the kind the model treats it as")
    if len(set(features)) != len(features):
        raise PoiseError("a feature column is listed twice", "list each feature once")
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise PoiseError(
                f"the {name} window lacks feature column(s) {', '.join(map(repr, missing))}",
                f"log every feature the model uses with each row, or drop {', '.join(map(repr, missing))} "
                "from the watched columns",
            )
        if len(frame) == 0:
            raise PoiseError(f"the {name} window has no rows", "check the window's time range")
        not_numeric = [c for c in numeric if not pd.api.types.is_numeric_dtype(frame[c])]
        if not_numeric:
            raise PoiseError(
                f"numeric feature(s) {', '.join(map(repr, not_numeric))} hold non-numeric values in the {name} window",
                "convert them to numbers before monitoring, or list them as categorical",
            )
    return features


def _check_proba(proba: np.ndarray | None, rows: int, name: str) -> np.ndarray | None:
    if proba is None:
        return None
    proba = np.asarray(proba, dtype=float).ravel()
    if proba.size != rows:
        raise PoiseError(
            f"{proba.size} predicted probabilities for the {rows} rows of the {name} window",
            "pass one positive-class probability per row, in row order",
        )
    if not np.all(np.isfinite(proba)) or proba.min() < 0.0 or proba.max() > 1.0:
        raise PoiseError(f"the {name} probabilities are not all in [0, 1]",
                         "pass the positive-class probability (predict_proba[:, 1]), not a score or a label")
    return proba


def _require_pair(reference: object, current: object, what: str, names: str) -> None:
    if (reference is None) != (current is None):
        raise PoiseError(f"{what} were given for only one of the two windows", f"pass both {names}, or neither")


def _free_name(name: str, taken: Sequence[str]) -> str:
    while name in taken:
        name = f"_{name}"
    return name


def _frame(
    data: pd.DataFrame, features: list[str], proba_column: str | None, proba: np.ndarray | None
) -> pd.DataFrame:
    frame = data.loc[:, features].reset_index(drop=True)
    if proba_column is not None:
        frame[proba_column] = proba
    return frame


def _run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: list[str],
    categorical: list[str],
    features: list[str],
    proba_column: str | None,
    drift_share: float,
    for_people: bool,
) -> Snapshot:
    """One Evidently report over the features, plus the prediction's value drift.

    For a person (an HTML report is wanted) the features go through ``DataDriftPreset``, whose
    summary table is what one reads first. For the machine verdict alone they go through one
    ``ValueDrift`` each: the same tests with the same thresholds, without the preset's extra
    passes over the data for its dataset-level metric and its table (2-3x faster on 100k rows).
    The prediction is always its own ``ValueDrift``, so it never counts toward the drifted share.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    methods = _small_window_methods(reference, current, numeric)
    if for_people:
        metrics: list = [DataDriftPreset(columns=features, drift_share=drift_share, per_column_method=methods)]
    else:
        metrics = [ValueDrift(column=column, method=methods.get(column)) for column in features]
    if proba_column is not None:
        metrics.append(ValueDrift(column=proba_column, method=methods.get(proba_column)))
    return Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )


def _small_window_methods(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str]) -> dict[str, str]:
    """Tests for windows too small for distances: column -> Evidently method name, or {} for the default.

    Evidently chooses the test by the size of the reference alone: above 1,000 rows, a normed
    Wasserstein or Jensen-Shannon distance against a fixed 0.1. Those distances do not shrink
    with the current window's size, so a few hundred rows from an unchanged distribution cross
    0.1 by chance (on AI4I, 200-row windows against a 4,000-row reference drifted in most of
    the draws). The smaller window sets how much can be told, so when it is at or below the cut,
    every column gets the test Evidently itself uses on small data: K-S for numeric columns,
    chi-square for categorical ones (and numeric ones with at most 5 values), the Z-test for
    two values. Their p-values account for the sample size.
    """
    if min(len(reference), len(current)) > SMALL_WINDOW:
        return {}
    methods = {}
    for column in reference.columns:
        n_values = pd.concat([reference[column], current[column]], ignore_index=True).nunique()
        if n_values <= 2:
            methods[column] = "z"
        elif column in numeric and n_values > 5:
            methods[column] = "ks"
        else:
            methods[column] = "chisquare"
    return methods


def _finite(value: float) -> float:
    score = float(value)
    if math.isnan(score):
        raise RuntimeError("Evidently returned a NaN drift score")
    return min(score, _MAX_SCORE)


def _minority_shares(
    ref_proba: np.ndarray | None,
    cur_proba: np.ndarray | None,
    ref_labels: np.ndarray | None,
    cur_labels: np.ndarray | None,
) -> tuple[str | None, float | None, float | None]:
    if ref_labels is not None and cur_labels is not None and len(ref_labels) and len(cur_labels):
        return "labels", _positive_share(ref_labels, "reference"), _positive_share(cur_labels, "current")
    if ref_proba is not None and cur_proba is not None:
        return "predictions", float(ref_proba.mean()), float(cur_proba.mean())
    return None, None, None


def _positive_share(labels: np.ndarray, name: str) -> float:
    values = np.asarray(labels).ravel()
    if not np.isin(values, (0, 1)).all():
        raise PoiseError(f"the {name} labels are not all 0 or 1",
                         "encode the labels as 1 for the positive (minority) class and 0 otherwise")
    return float(values.mean())
