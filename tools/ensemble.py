"""Ensemble selection over the search's candidates (greedy forward selection, Caruana et al. 2004).

Every candidate of one search is cross-validated on the same folds, so a weighted average
of their out-of-fold probabilities is itself an honest out-of-fold prediction of the
blended model. Selection adds, with replacement, whichever candidate most improves the
task's metric on that blend, and stops when nothing improves it (or at a deadline).

Whether the blend is worth its extra parts is the caller's judgement: a gain smaller than
its fold noise is not (``tools.search`` asks for more than one standard error).

``BlendClassifier`` is also how fold models are bagged: equal weights over the K models of a
cross-validation, each trained on its training folds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin

from poise.tools import metrics


def select(
    oof: Mapping[int, np.ndarray],
    y: np.ndarray,
    metric: str,
    params: Mapping[str, float] | None = None,
    *,
    max_rounds: int = 25,
    max_members: int = 5,
    deadline: float | None = None,
) -> tuple[dict[int, float], float]:
    """Weights per candidate (summing to 1) and the blended out-of-fold score.

    ``deadline`` (a ``time.monotonic()`` instant) ends the selection after the round in progress.
    """

    def score(proba: np.ndarray) -> float:
        return metrics.best_threshold(metric, y, proba, params)[1]

    chosen: list[int] = []
    total = np.zeros(len(y))
    best_score = -np.inf
    for _ in range(max_rounds):
        if chosen and deadline is not None and time.monotonic() >= deadline:
            break
        allowed = list(oof) if len(set(chosen)) < max_members else sorted(set(chosen))
        trial_scores = {key: score((total + oof[key]) / (len(chosen) + 1)) for key in allowed}
        key = max(trial_scores, key=lambda k: (trial_scores[k], -k))
        if trial_scores[key] <= best_score + 1e-9:
            break
        chosen.append(key)
        total += oof[key]
        best_score = trial_scores[key]
    counts = Counter(chosen)
    return {key: n / len(chosen) for key, n in counts.items()}, float(best_score)


class BlendClassifier(ClassifierMixin, BaseEstimator):
    """A weighted average of fitted binary classifiers' positive-class probabilities."""

    def __init__(self, members: Sequence[Any] = (), weights: Sequence[float] = ()) -> None:
        self.members = members
        self.weights = weights

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def fit(self, X: ArrayLike, y: ArrayLike) -> BlendClassifier:
        for member in self.members:
            member.fit(X, y)
        return self

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        weights = np.asarray(self.weights, dtype=float)
        positive = sum(w * m.predict_proba(X)[:, 1] for m, w in zip(self.members, weights, strict=True))
        positive = np.clip(positive / weights.sum(), 0.0, 1.0)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: ArrayLike) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
