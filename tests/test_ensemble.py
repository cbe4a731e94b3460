"""Ensemble selection blends candidates only when the blend scores better out of fold."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from poise.tools import ensemble, metrics


def test_selection_blends_complementary_candidates_and_skips_useless_ones():
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.1).astype(int)
    signal_a, signal_b = rng.normal(size=y.size), rng.normal(size=y.size)
    truth = y * 1.5
    oof = {
        0: 1 / (1 + np.exp(-(truth + 2 * signal_a))),  # noisy in one way
        1: 1 / (1 + np.exp(-(truth + 2 * signal_b))),  # noisy in another: averaging cancels noise
        2: rng.random(y.size),                          # useless
    }
    weights, blended = ensemble.select(oof, y, "average_precision")
    assert set(weights) == {0, 1}
    assert sum(weights.values()) == pytest.approx(1.0)
    best_single = max(metrics.ranking_score("average_precision", y, p) for p in oof.values())
    assert blended > best_single


def test_selection_of_a_single_dominant_candidate_keeps_it_alone():
    rng = np.random.default_rng(1)
    y = (rng.random(1000) < 0.2).astype(int)
    oof = {0: y * 0.8 + rng.random(y.size) * 0.1, 1: rng.random(y.size)}
    weights, _ = ensemble.select(oof, y, "mcc")
    assert weights == {0: 1.0}


def test_blend_averages_probabilities_and_pickles():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + rng.normal(size=200) > 1).astype(int)
    a = LogisticRegression().fit(X, y)
    b = LogisticRegression(C=0.01).fit(X[:, :2] * 1, y)

    class FirstTwo:
        def predict_proba(self, X):
            return b.predict_proba(X[:, :2])

    blend = ensemble.BlendClassifier([a, FirstTwo()], [0.75, 0.25])
    expected = 0.75 * a.predict_proba(X)[:, 1] + 0.25 * b.predict_proba(X[:, :2])[:, 1]
    assert np.allclose(blend.predict_proba(X)[:, 1], expected)
    assert list(blend.classes_) == [0, 1]
    restored = pickle.loads(pickle.dumps(ensemble.BlendClassifier([a], [1.0])))
    assert np.allclose(restored.predict_proba(X), a.predict_proba(X))


def test_selection_stops_at_its_deadline_with_what_it_has():
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.1).astype(int)
    oof = {i: 1 / (1 + np.exp(-(y * 1.5 + 2 * rng.normal(size=y.size)))) for i in range(4)}
    weights, _ = ensemble.select(oof, y, "average_precision", deadline=time.monotonic() - 1.0)
    assert len(weights) == 1 and sum(weights.values()) == pytest.approx(1.0)  # one round, then out of time
    unhurried, _ = ensemble.select(oof, y, "average_precision")
    assert len(unhurried) > 1  # the same candidates blend when there is time


def test_bagged_fold_models_average_equally():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(size=300) > 1).astype(int)
    folds = [LogisticRegression(C=c).fit(X[i::3], y[i::3]) for i, c in enumerate((0.1, 1.0, 10.0))]
    bagged = ensemble.BlendClassifier(folds, [1.0] * 3)
    expected = np.mean([m.predict_proba(X)[:, 1] for m in folds], axis=0)
    assert np.allclose(bagged.predict_proba(X)[:, 1], expected)
