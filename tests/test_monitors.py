"""Drift checks on real data with real Evidently, and the policy that turns them into severities.

AI4I 2020 gives the shifts we inject (a held-back slice, hotter machines, twice the failures);
the occupancy data drifts by itself over two weeks of February. Windows are subsampled so the
whole file runs in seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, matthews_corrcoef
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from poise.contracts import DriftReport, FeatureDrift, MonitorPolicy
from poise.errors import PoiseError
from poise.monitors.drift import check_drift, parse_snapshot, performance, with_decay
from poise.monitors.policy import assess, label_prior_shift
from tests.conftest import AI4I, DATA

NUMERIC = ["air_temperature_k", "process_temperature_k", "rotational_speed_rpm", "torque_nm", "tool_wear_min"]
CATEGORICAL = ["type"]
OCCUPANCY = ["temperature_c", "humidity_pct", "light_lux", "co2_ppm", "humidity_ratio"]


@pytest.fixture(scope="module")
def ai4i() -> pd.DataFrame:
    return pd.read_csv(AI4I)


@pytest.fixture(scope="module")
def windows(ai4i) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(reference, held-back current, the rest) from one shuffle of AI4I."""
    order = np.random.default_rng(0).permutation(len(ai4i))
    return ai4i.iloc[order[:4000]], ai4i.iloc[order[4000:6000]], ai4i.iloc[order[6000:]]


@pytest.fixture(scope="module")
def champion(windows):
    """A quick model standing in for the served champion."""
    reference, _, _ = windows
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return model.fit(reference[NUMERIC], reference["target"])


def _check(reference, current, **kwargs) -> DriftReport:
    return check_drift(reference, current, numeric=NUMERIC, categorical=CATEGORICAL, **kwargs)


def _hotter(frame: pd.DataFrame) -> pd.DataFrame:
    shifted = frame.copy()
    shifted["air_temperature_k"] += 3.0
    shifted["process_temperature_k"] += 3.0
    shifted["torque_nm"] *= 1.2
    return shifted


# -- the scenarios --------------------------------------------------------------------------------


def test_same_distribution_is_quiet(windows):
    reference, current, _ = windows
    report = assess(_check(reference, current))
    assert [f.column for f in report.features] == NUMERIC + CATEGORICAL  # the target is never a feature
    assert report.drifted_share < MonitorPolicy().drift_share_watch
    assert report.severity == "none"
    assert report.reasons[0].startswith("No signal")


def test_covariate_shift_calls_for_action(windows, champion):
    reference, current, _ = windows
    current = _hotter(current)
    report = assess(_check(
        reference, current,
        reference_proba=champion.predict_proba(reference[NUMERIC])[:, 1],
        current_proba=champion.predict_proba(current[NUMERIC])[:, 1],
    ))
    assert {"air_temperature_k", "process_temperature_k", "torque_nm"} <= set(report.drifted_features)
    assert "type" not in report.drifted_features
    assert report.severity == "act"
    assert "torque_nm" in report.reasons[0] and "calls for action" in report.reasons[0]
    assert report.prediction_drift is not None and report.prediction_drift.drifted
    assert report.minority_share_source == "predictions"
    assert report.policy == MonitorPolicy()


def test_twenty_rows_never_trigger(windows):
    reference, current, _ = windows
    report = assess(_check(reference, _hotter(current).iloc[:20]))
    assert report.drifted_share >= 0.5  # Evidently does see the shift ...
    assert report.severity == "none"  # ... but twenty rows are not a reason to retrain
    assert report.reasons == [report.reasons[0]] and "20 rows" in report.reasons[0]
    assert "200" in report.reasons[0]


def test_occupancy_drifts_over_two_weeks():
    occupancy = pd.read_csv(DATA / "occupancy_detection.csv", parse_dates=["timestamp"])
    day = occupancy["timestamp"].dt.normalize()
    first = occupancy[day <= day.min() + pd.Timedelta(days=2)].sample(1500, random_state=0)
    last = occupancy[day >= day.max() - pd.Timedelta(days=2)].sample(1500, random_state=0)
    report = assess(check_drift(first, last, numeric=OCCUPANCY, categorical=[]))
    assert report.drifted_share >= 0.5
    assert {"humidity_pct", "co2_ppm"} <= set(report.drifted_features)
    assert report.severity == "act"


def test_label_prior_shift_alone_is_reported(windows):
    reference, _, rest = windows
    positives, negatives = rest[rest["target"] == 1], rest[rest["target"] == 0]
    n_pos = round(2 * reference["target"].mean() * 1500)  # twice the failure rate, same failures
    current = pd.concat([positives.sample(n_pos, random_state=1), negatives.sample(1500 - n_pos, random_state=1)])
    report = assess(_check(reference, current, reference_labels=reference["target"],
                           current_labels=current["target"]))
    assert report.minority_share_source == "labels"
    assert report.minority_share_ratio == pytest.approx(2.0, rel=0.05)
    assert report.prior_shift
    assert report.severity == "watch"
    assert report.reasons[0].startswith("Label-prior shift")
    assert report.drifted_share < MonitorPolicy().drift_share_watch  # the features barely move

    few_labels = assess(_check(reference, current, reference_labels=reference["target"],
                               current_labels=current["target"].iloc[:60]))
    assert not few_labels.prior_shift and few_labels.severity == "none"
    assert any("60 labelled rows" in reason and "not judged yet" in reason for reason in few_labels.reasons)


def test_html_report_is_written_with_the_same_verdicts(windows, tmp_path):
    reference, current = windows[0].iloc[:1500], _hotter(windows[1].iloc[:1500])
    path = tmp_path / "reports" / "drift.html"
    report = _check(reference, current, html_path=path)
    assert report.html_path == str(path)
    assert path.stat().st_size > 10_000
    assert "torque_nm" in path.read_text(encoding="utf-8", errors="replace")
    # the HTML goes through DataDriftPreset, the bare check through one ValueDrift per column
    assert _check(reference, current).features == report.features


def test_report_round_trips_through_json(windows, champion):
    reference, current, _ = windows
    report = assess(_check(
        reference.iloc[:1000], _hotter(current.iloc[:500]),
        reference_proba=champion.predict_proba(reference[NUMERIC].iloc[:1000])[:, 1],
        current_proba=champion.predict_proba(current[NUMERIC].iloc[:500])[:, 1],
        model_name="ai4i", model_version="3",
    ))
    text = report.model_dump_json()
    assert json.loads(text)["severity"] == report.severity
    assert DriftReport.model_validate_json(text) == report


# -- the parser against a real snapshot -----------------------------------------------------------


def test_parser_reads_evidently_verdicts(windows):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference, current, _ = windows
    current = _hotter(current)
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset(columns=NUMERIC + CATEGORICAL)], include_tests=True).run(
        current_data=Dataset.from_pandas(current[NUMERIC + CATEGORICAL], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[NUMERIC + CATEGORICAL], data_definition=definition),
    ).dict()
    drifts = parse_snapshot(snapshot)
    assert set(drifts) == set(NUMERIC + CATEGORICAL)
    count = next(m for m in snapshot["metrics"] if m["config"]["type"].endswith(":DriftedColumnsCount"))
    assert sum(d.drifted for d in drifts.values()) == count["value"]["count"]
    assert drifts["type"].method == "Jensen-Shannon distance"
    for drift in drifts.values():  # distances: drift at or above the threshold
        assert drift.drifted == (drift.score >= drift.threshold)

    without_tests = {"metrics": snapshot["metrics"], "tests": []}
    with pytest.raises(RuntimeError, match="include_tests"):
        parse_snapshot(without_tests)


@pytest.mark.parametrize("html", [False, True])
def test_small_windows_use_p_value_tests(windows, tmp_path, html):
    reference, current, rest = windows
    report = assess(_check(reference, _hotter(current.iloc[:300]), html_path=tmp_path / "r.html" if html else None))
    by_column = {f.column: f for f in report.features}
    assert by_column["torque_nm"].method == "K-S p_value"
    assert by_column["type"].method == "chi-square p_value"
    assert by_column["torque_nm"].drifted and by_column["torque_nm"].score <= by_column["torque_nm"].threshold
    assert "K-S p_value" in report.reasons[0] and "≤" in report.reasons[0]


def test_small_windows_of_the_same_distribution_stay_quiet(windows):
    """Against a large reference Evidently would use distances with a fixed 0.1 threshold, which a few
    hundred rows cross by chance; the smaller window's p-value tests do not."""
    reference, _, rest = windows
    severities = [assess(_check(reference, rest.sample(200, random_state=seed))).severity for seed in range(6)]
    assert severities == ["none"] * 6  # with distances: watch, act, none, watch, none, watch


# -- user mistakes ----------------------------------------------------------------------------------


def test_missing_feature_column_is_named(windows):
    reference, current, _ = windows
    with pytest.raises(PoiseError, match="current window lacks feature column.*torque_nm") as err:
        _check(reference, current.drop(columns=["torque_nm"]))
    assert err.value.fix


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference_proba": np.full(4000, 0.1)}, "only one of the two windows"),
        ({"reference_proba": np.full(10, 0.1), "current_proba": np.full(2000, 0.1)}, "10 predicted probabilities"),
        ({"reference_proba": np.full(4000, 2.0), "current_proba": np.full(2000, 0.1)}, r"not all in \[0, 1\]"),
        ({"reference_labels": np.zeros(5), "current_labels": np.full(5, 7)}, "not all 0 or 1"),
    ],
)
def test_bad_predictions_or_labels_are_refused(windows, kwargs, message):
    reference, current, _ = windows
    with pytest.raises(PoiseError, match=message):
        _check(reference, current, **kwargs)


def test_column_listed_twice_or_mistyped_is_refused(windows):
    reference, current, _ = windows
    with pytest.raises(PoiseError, match="both numeric and categorical"):
        check_drift(reference, current, numeric=["type"], categorical=["type"])
    with pytest.raises(PoiseError, match="non-numeric"):
        check_drift(reference, current, numeric=["product_id"], categorical=[])


# -- performance and the policy's rules --------------------------------------------------------------


def test_performance_matches_sklearn():
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.1).astype(int)
    proba = np.clip(0.3 * y + rng.beta(2, 6, size=500), 0, 1)
    assert performance(y, proba, metric="average_precision") == pytest.approx(average_precision_score(y, proba))
    assert performance(y, proba, metric="mcc", threshold=0.4) == pytest.approx(matthews_corrcoef(y, proba >= 0.4))
    assert performance(np.zeros(50, dtype=int), proba[:50], metric="roc_auc") is None
    with pytest.raises(PoiseError, match="accuracy"):
        performance(y, proba, metric="accuracy")


def test_performance_is_scored_as_training_scores_the_holdout():
    from poise.contracts import METRICS
    from poise.tools import metrics

    rng = np.random.default_rng(2)
    y = (rng.random(400) < 0.15).astype(int)
    proba = np.clip(0.4 * y + rng.beta(2, 5, size=400), 0, 1)
    params = {"min_precision": 0.4, "min_recall": 0.6, "beta": 2.0}
    held = metrics.all_metrics(y, proba, 0.45, params)
    assert {m: performance(y, proba, metric=m, threshold=0.45, params=params) for m in METRICS} == \
        {m: held[m] for m in METRICS}


def _bare(**fields) -> DriftReport:
    features = [FeatureDrift(column=f"x{i}", method="K-S p_value", score=0.5, threshold=0.05, drifted=False)
                for i in range(10)]
    return DriftReport(reference_rows=5000, current_rows=1000, features=features, drifted_share=0.0, **fields)


def test_decay_needs_enough_labels():
    policy = MonitorPolicy()
    few = assess(with_decay(_bare(), metric="average_precision", reference_score=0.80, current_score=0.60,
                            labelled_rows=40), policy)
    assert few.decay == pytest.approx(0.20)
    assert few.severity == "none" and any("not judged yet" in r for r in few.reasons)
    enough = assess(with_decay(_bare(), metric="average_precision", reference_score=0.80, current_score=0.60,
                               labelled_rows=400), policy)
    assert enough.severity == "act" and "average_precision is 0.600" in enough.reasons[0]
    slight = assess(with_decay(_bare(), metric="average_precision", reference_score=0.80, current_score=0.73,
                               labelled_rows=400), policy)
    assert slight.severity == "watch"
    unknown = with_decay(_bare(), metric="roc_auc", reference_score=0.9, current_score=None, labelled_rows=400)
    assert unknown.decay is None and assess(unknown).severity == "none"


def test_watch_share_and_prediction_drift():
    drifted = FeatureDrift(column="x0", method="Wasserstein distance (normed)", score=0.3, threshold=0.1,
                           drifted=True)
    report = _bare()
    report = DriftReport.model_validate(
        report.model_dump() | {"features": [drifted, *report.features[1:]], "drifted_share": 0.1}
    )
    assert assess(report).severity == "none"
    assert assess(report, MonitorPolicy(drift_share_watch=0.1)).severity == "watch"
    with_prediction = DriftReport.model_validate(report.model_dump() | {"prediction_drift": drifted.model_dump()})
    assert assess(with_prediction).severity == "watch"
    assert assess(with_prediction, MonitorPolicy(watch_prediction_drift=False)).severity == "none"


def test_label_prior_shift_is_symmetric():
    policy = MonitorPolicy(prior_shift_ratio=1.5)
    assert label_prior_shift(0.04, 0.06, policy)
    assert label_prior_shift(0.06, 0.04, policy)
    assert not label_prior_shift(0.04, 0.05, policy)
    assert label_prior_shift(0.0, 0.01, policy) and not label_prior_shift(0.0, 0.0, policy)
    assert not label_prior_shift(None, 0.05, policy)


def test_policy_rejects_inverted_thresholds():
    with pytest.raises(ValueError, match="drift_share_watch"):
        MonitorPolicy(drift_share_watch=0.6, drift_share_act=0.5)
    with pytest.raises(ValueError, match="decay_watch"):
        MonitorPolicy(decay_watch=0.2, decay_act=0.1)
