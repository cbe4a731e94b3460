"""Metrics agree with scikit-learn, and thresholds serve the task's metric or constraint."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from poise.contracts import METRICS
from poise.tools import metrics


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.08).astype(int)
    proba = np.clip(0.25 * y + rng.beta(2, 8, size=y.size), 0, 1)
    return y, proba


def test_decision_metrics_match_sklearn(scores):
    y, proba = scores
    pred = proba >= 0.3
    assert metrics.decision_score("f1", y, proba, 0.3) == pytest.approx(skm.f1_score(y, pred))
    assert metrics.decision_score("mcc", y, proba, 0.3) == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert metrics.decision_score("balanced_accuracy", y, proba, 0.3) == pytest.approx(
        skm.balanced_accuracy_score(y, pred))
    assert metrics.decision_score("f_beta", y, proba, 0.3, beta=2.0) == pytest.approx(
        skm.fbeta_score(y, pred, beta=2.0))
    recall, specificity = skm.recall_score(y, pred), skm.recall_score(1 - y, ~pred)
    assert metrics.decision_score("g_mean", y, proba, 0.3) == pytest.approx(np.sqrt(recall * specificity))


def test_ranking_metrics_match_sklearn(scores):
    y, proba = scores
    assert metrics.ranking_score("average_precision", y, proba) == pytest.approx(
        skm.average_precision_score(y, proba))
    assert metrics.ranking_score("roc_auc", y, proba) == pytest.approx(skm.roc_auc_score(y, proba))


def test_best_threshold_maximises_the_decision_metric(scores):
    y, proba = scores
    threshold, value = metrics.best_threshold("f1", y, proba)
    assert value == pytest.approx(skm.f1_score(y, proba >= threshold))
    grid = np.linspace(0.01, 0.99, 99)
    assert value >= max(skm.f1_score(y, proba >= t) for t in grid) - 1e-12


def test_recall_at_precision_threshold_meets_the_floor_with_confidence(scores):
    y, proba = scores
    threshold, recall = metrics.best_threshold("recall_at_precision", y, proba, {"min_precision": 0.6})
    pred = proba >= threshold
    tp, predicted = np.sum(pred & (y == 1)), pred.sum()
    assert skm.precision_score(y, pred) >= 0.6
    assert metrics.floor_lower_bound(tp, predicted) >= 0.6  # not merely at the floor: above it, with margin
    assert recall == pytest.approx(skm.recall_score(y, pred))
    precision, recalls, _ = skm.precision_recall_curve(y, proba)
    assert recall <= recalls[precision >= 0.6].max()  # the margin costs some recall, never adds any
    assert recall == metrics.constrained_score("recall_at_precision", y, proba, threshold, {"min_precision": 0.6})


def test_wilson_lower_bound_matches_the_textbook_values():
    assert metrics.floor_lower_bound(50, 100, z=1.96) == pytest.approx(0.4038, abs=1e-4)
    assert metrics.floor_lower_bound(10, 10, z=1.0) == pytest.approx(10 / 11)
    assert metrics.floor_lower_bound(0, 0) == 0.0


def test_a_confident_threshold_keeps_the_floor_of_the_deployed_model_more_often():
    """Thresholds chosen on one sample of a population, judged on the population itself (a sample large
    enough to stand for it): a cut exactly at the floor misses it about half the time; one chosen with
    confidence rarely does."""
    rng = np.random.default_rng(1)

    def sample(n: int):
        y = (rng.random(n) < 0.05).astype(int)
        return y, np.clip(0.2 * y + rng.beta(2, 6, size=n), 0, 1)

    population = sample(400_000)
    misses = {}
    for z in (0.0, metrics.FLOOR_CONFIDENCE_Z):
        missed = 0
        for _ in range(100):
            y, proba = sample(3000)
            sweep, thresholds = metrics._sweep(y, proba)
            ok = metrics.floor_lower_bound(sweep.tp, sweep.tp + sweep.fp, z) >= 0.5
            threshold = thresholds[int(np.argmax(np.where(ok, sweep.recall, -1.0)))]
            missed += metrics.metric_value("precision", *population, threshold) < 0.5
        misses[z] = missed / 100
    assert misses[0.0] > 0.4 and misses[metrics.FLOOR_CONFIDENCE_Z] < min(0.3, misses[0.0] / 2)


def test_the_floor_note_says_how_the_threshold_keeps_the_floor_and_what_confidence_costs(scores):
    """The user sees why recall is lower than the measured curve allows, or that a floor is kept only as
    measured (too few rows to be sure), or not at all."""
    y, proba = scores
    assert metrics.floor_note("mcc", y, proba, 0.5, {"beta": 1.0}) is None  # no floor, nothing to say
    params = {"min_precision": 0.6}
    threshold, recall = metrics.best_threshold("recall_at_precision", y, proba, params)
    as_measured = metrics.best_threshold("recall_at_precision", y, proba, params, z=0.0)[1]
    assert as_measured > recall  # on these scores, confidence costs recall ...
    note = metrics.floor_note("recall_at_precision", y, proba, threshold, params)
    assert "precision >= 0.6 with 95 % confidence" in note
    assert f"recall {recall:.3f}, where a threshold meeting the floor only as measured gives {as_measured:.3f}" in note

    few = np.r_[np.ones(3, dtype=int), np.zeros(20, dtype=int)], np.r_[[0.9, 0.8, 0.3], np.linspace(0, 0.5, 20)]
    threshold, _ = metrics.best_threshold("recall_at_precision", *few, params)
    assert metrics.metric_value("precision", *few, threshold) >= 0.6  # met as measured: 3 rows cannot be sure
    assert "surest of those that meet it as measured" in metrics.floor_note("recall_at_precision", *few, threshold,
                                                                            params)
    note = metrics.floor_note("recall_at_precision", *few, threshold, {"min_precision": 1.0 + 1e-9})
    assert "even as measured" in note
    # a constrained metric's own floor counts when the task leaves it unstated (0.5)
    assert "precision >= 0.5" in metrics.floor_note("recall_at_precision", y, proba, 0.5, {})


def test_with_no_threshold_sure_the_surest_that_meets_the_floor_as_measured_is_kept():
    """On a few positives, the cut with the most recall among those meeting the floor as measured sits right at the
    floor; the one whose lower bound is highest keeps it on new rows far more often."""
    y = np.r_[np.ones(4, dtype=int), np.zeros(40, dtype=int)]
    proba = np.r_[[0.95, 0.9, 0.6, 0.5], [0.92, 0.55, 0.52], np.linspace(0.0, 0.45, 37)]
    # as measured, every positive above 0.475 is 4 of 7 (0.57), 3 of 4 above 0.575 (0.75): neither sure at 95 %,
    # the second surer (Wilson lower bound 0.36 against 0.29)
    threshold, recall = metrics.best_threshold("recall_at_precision", y, proba, {"min_precision": 0.55})
    assert threshold == pytest.approx(0.575) and recall == 0.75
    assert metrics.best_threshold("recall_at_precision", y, proba, {"min_precision": 0.55}, z=0.0)[1] == 1.0


def test_every_floor_bounds_the_threshold_whatever_the_metric(scores):
    y, proba = scores
    free, _ = metrics.best_threshold("mcc", y, proba)
    assert metrics.metric_value("recall", y, proba, free) < 0.9
    for metric in ("mcc", "roc_auc", "average_precision", "f1"):
        threshold, _ = metrics.best_threshold(metric, y, proba, {"min_recall": 0.9})
        assert metrics.metric_value("recall", y, proba, threshold) >= 0.9
    threshold, _ = metrics.best_threshold("recall_at_precision", y, proba, {"min_precision": 0.5, "min_recall": 0.3})
    assert metrics.metric_value("precision", y, proba, threshold) >= 0.5
    assert metrics.metric_value("recall", y, proba, threshold) >= 0.3


def test_a_constrained_metric_is_scored_at_the_deployed_threshold(scores):
    """Not re-swept on the rows being judged: a threshold that misses the floor there scores 0."""
    y, proba = scores
    params = {"min_precision": 0.5}
    threshold, _ = metrics.best_threshold("recall_at_precision", y, proba, params)
    loose = threshold - 0.15  # more positives called: precision falls below the floor
    assert metrics.metric_value("precision", y, proba, loose) < 0.5
    assert metrics.all_metrics(y, proba, loose, params)["recall_at_precision"] == 0.0
    assert metrics.ranking_score("recall_at_precision", y, proba, params) > 0  # the sweep would have said otherwise
    report = metrics.all_metrics(y, proba, threshold, params)
    assert report["recall_at_precision"] == report["recall"] and report["precision"] >= 0.5


def test_infeasible_constraint_scores_zero():
    y = np.array([0, 1, 0, 1])
    proba = np.array([0.9, 0.1, 0.8, 0.2])
    assert metrics.best_threshold("recall_at_precision", y, proba, {"min_precision": 0.9})[1] == 0.0
    assert metrics.ranking_score("recall_at_precision", y, proba, {"min_precision": 0.9}) == 0.0


def test_all_metrics_reports_every_name(scores):
    y, proba = scores
    report = metrics.all_metrics(y, proba, 0.3, {"min_precision": 0.5, "min_recall": 0.5})
    assert set(METRICS) <= set(report) and {"precision", "recall"} <= set(report)
    assert all(np.isfinite(v) for v in report.values())


def test_bootstrap_interval_surrounds_the_holdout_value_and_pairs_with_the_difference(scores):
    y, proba = scores
    value, low, high = metrics.bootstrap_interval("precision", y, proba, 0.4)
    assert value == metrics.metric_value("precision", y, proba, 0.4)
    assert low < value < high and high - low < 0.3
    few = np.r_[np.flatnonzero(y == 1)[:12], np.flatnonzero(y == 0)]
    _, few_low, few_high = metrics.bootstrap_interval("recall", y[few], proba[few], 0.4)
    _, all_low, all_high = metrics.bootstrap_interval("recall", y, proba, 0.4)
    assert few_high - few_low > all_high - all_low  # twelve positives say less than 160
    other = np.clip(proba + np.random.default_rng(1).normal(0, 0.1, y.size), 0, 1)
    paired = metrics.paired_bootstrap("f1", y, proba, 0.4, other, 0.4)
    assert paired == metrics.bootstrap_interval("f1", y, proba, 0.4, minus=(other, 0.4))
    assert paired[0] == pytest.approx(metrics.metric_value("f1", y, proba, 0.4)
                                      - metrics.metric_value("f1", y, other, 0.4))


def test_every_metric_the_contracts_name_has_exactly_one_kind():
    from poise.contracts import METRICS
    from poise.tools.metrics import CONSTRAINED_METRICS, DECISION_METRICS, RANKING_METRICS

    kinds = [*RANKING_METRICS, *DECISION_METRICS, *CONSTRAINED_METRICS]
    assert sorted(kinds) == sorted(METRICS) and len(set(kinds)) == len(kinds)
