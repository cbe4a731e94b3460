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


def test_recall_at_precision_threshold_meets_the_floor(scores):
    y, proba = scores
    threshold, recall = metrics.best_threshold("recall_at_precision", y, proba, {"min_precision": 0.6})
    pred = proba >= threshold
    assert skm.precision_score(y, pred) >= 0.6
    assert recall == pytest.approx(skm.recall_score(y, pred))
    precision, recalls, _ = skm.precision_recall_curve(y, proba)
    assert recall == pytest.approx(recalls[precision >= 0.6].max())


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
