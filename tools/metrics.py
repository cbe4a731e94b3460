"""The metrics poise optimises and reports, and threshold moving.

Two families:

* ranking metrics, judged on the scores alone: ``average_precision`` (PR-AUC), ``roc_auc``,
  ``recall_at_precision`` (the best recall at precision >= ``min_precision``) and
  ``precision_at_recall`` (the best precision at recall >= ``min_recall``);
* decision metrics, judged on labels at a threshold: ``mcc``, ``f1``, ``f_beta``,
  ``balanced_accuracy``, ``g_mean``.

``best_threshold`` picks the threshold for a task on out-of-fold probabilities: the one that
maximises a decision metric, meets a ranking constraint with the most of the other quantity
(best recall at precision >= p), or, for pure ranking metrics, maximises MCC.
All functions take the 0/1 target (1 = positive) and the positive-class probability.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from poise.contracts import METRICS

RANKING_METRICS = ("average_precision", "roc_auc", "recall_at_precision", "precision_at_recall")
DECISION_METRICS = ("mcc", "f1", "f_beta", "balanced_accuracy", "g_mean")
#: The threshold-setting metric for tasks whose metric does not pick one itself.
DEFAULT_DECISION_METRIC = "mcc"


class _Confusion:
    """Confusion counts, as arrays: one entry per threshold (or a single one)."""

    def __init__(self, tp: np.ndarray, fp: np.ndarray, pos: float, neg: float) -> None:
        self.tp, self.fp = tp.astype(float), fp.astype(float)
        self.fn, self.tn = pos - self.tp, neg - self.fp

    @classmethod
    def at(cls, y: np.ndarray, proba: np.ndarray, threshold: float) -> _Confusion:
        yb, pred = np.asarray(y).astype(bool), np.asarray(proba) >= threshold
        return cls(np.array([np.sum(pred & yb)]), np.array([np.sum(pred & ~yb)]), yb.sum(), (~yb).sum())

    @staticmethod
    def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)

    @property
    def precision(self) -> np.ndarray:
        return self._div(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> np.ndarray:
        return self._div(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> np.ndarray:
        return self._div(self.tn, self.tn + self.fp)

    def decision(self, name: str, beta: float = 1.0) -> np.ndarray:
        p, r = self.precision, self.recall
        if name == "f1":
            return self._div(2 * p * r, p + r)
        if name == "f_beta":
            b2 = beta * beta
            return self._div((1 + b2) * p * r, b2 * p + r)
        if name == "balanced_accuracy":
            return (r + self.specificity) / 2.0
        if name == "g_mean":
            return np.sqrt(r * self.specificity)
        if name == "mcc":
            tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
            return self._div(tp * tn - fp * fn, np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
        raise ValueError(f"unknown decision metric {name!r}")


def _sweep(y: np.ndarray, proba: np.ndarray) -> tuple[_Confusion, np.ndarray]:
    """Confusion counts at every distinct threshold, highest first (one sort serves all metrics).

    Each threshold sits halfway between a score and the next lower one, so a positive is
    ``proba >= threshold`` and small shifts in new data do not flip the decision.
    """
    yb = np.asarray(y).astype(bool)
    order = np.argsort(-np.asarray(proba, dtype=float), kind="mergesort")
    scores, yb = np.asarray(proba, dtype=float)[order], yb[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    confusion = _Confusion(np.cumsum(yb)[last_of_tie], np.cumsum(~yb)[last_of_tie], yb.sum(), (~yb).sum())
    cut = scores[last_of_tie]
    below = np.r_[scores[last_of_tie[:-1] + 1], 0.0]
    return confusion, np.where(below < cut, (cut + below) / 2.0, cut)


def _check(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, proba = np.asarray(y), np.asarray(proba, dtype=float)
    if y.shape != proba.shape:
        raise ValueError(f"y has shape {y.shape} but proba has {proba.shape}")
    return y, proba


def ranking_score(name: str, y: np.ndarray, proba: np.ndarray, params: Mapping[str, float] | None = None) -> float:
    """A threshold-free metric of how well the scores rank positives above negatives."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, proba = _check(y, proba)
    params = params or {}
    if y.min() == y.max():
        return float("nan")
    if name == "average_precision":
        return float(average_precision_score(y, proba))
    if name == "roc_auc":
        return float(roc_auc_score(y, proba))
    sweep, _ = _sweep(y, proba)
    if name == "recall_at_precision":
        ok = sweep.precision >= params.get("min_precision", 0.5)
        return float(sweep.recall[ok].max()) if ok.any() else 0.0
    if name == "precision_at_recall":
        ok = sweep.recall >= params.get("min_recall", 0.5)
        return float(sweep.precision[ok].max()) if ok.any() else 0.0
    raise ValueError(f"unknown ranking metric {name!r}; known: {', '.join(RANKING_METRICS)}")


def decision_score(name: str, y: np.ndarray, proba: np.ndarray, threshold: float, beta: float = 1.0) -> float:
    """A metric of the labels ``proba >= threshold``."""
    y, proba = _check(y, proba)
    return float(_Confusion.at(y, proba, threshold).decision(name, beta)[0])


def best_threshold(
    name: str, y: np.ndarray, proba: np.ndarray, params: Mapping[str, float] | None = None
) -> tuple[float, float]:
    """The threshold that serves metric ``name`` best on these (out-of-fold) probabilities.

    Returns ``(threshold, value)``; ``value`` is the decision metric at that threshold for
    decision metrics, and the ranking metric itself for ranking metrics.
    """
    y, proba = _check(y, proba)
    params = params or {}
    sweep, thresholds = _sweep(y, proba)
    if name in DECISION_METRICS:
        values = sweep.decision(name, params.get("beta", 1.0))
        best = int(np.argmax(values))
        return float(thresholds[best]), float(values[best])
    if name == "recall_at_precision":
        ok = sweep.precision >= params.get("min_precision", 0.5)
        if not ok.any():  # infeasible: the most precise cut, and an honest zero
            return float(thresholds[int(np.argmax(sweep.precision))]), 0.0
        best = int(np.argmax(np.where(ok, sweep.recall + 1e-9 * sweep.precision, -1.0)))
        return float(thresholds[best]), float(sweep.recall[best])
    if name == "precision_at_recall":
        ok = sweep.recall >= params.get("min_recall", 0.5)
        best = int(np.argmax(np.where(ok, sweep.precision + 1e-9 * sweep.recall, -1.0)))
        return float(thresholds[best]), float(sweep.precision[best])
    if name in RANKING_METRICS:
        values = sweep.decision(DEFAULT_DECISION_METRIC)
        best = int(np.argmax(values))
        return float(thresholds[best]), ranking_score(name, y, proba, params)
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")


def metric_value(
    name: str, y: np.ndarray, proba: np.ndarray, threshold: float, params: Mapping[str, float] | None = None
) -> float:
    """One metric of scores ``proba`` (at ``threshold`` when it is a decision metric)."""
    params = dict(params or {})
    if name in DECISION_METRICS:
        return decision_score(name, y, proba, threshold, params.get("beta", 1.0))
    params.setdefault("min_precision", 0.5)
    params.setdefault("min_recall", 0.5)
    return ranking_score(name, y, proba, params)


def all_metrics(
    y: np.ndarray, proba: np.ndarray, threshold: float, params: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Every metric poise knows, plus precision and recall at the threshold: what reports show."""
    params = dict(params or {})
    params.setdefault("min_precision", 0.5)
    params.setdefault("min_recall", 0.5)
    beta = params.get("beta", 1.0)
    out = {name: ranking_score(name, y, proba, params) for name in RANKING_METRICS}
    out.update({name: decision_score(name, y, proba, threshold, beta) for name in DECISION_METRICS})
    at = _Confusion.at(*_check(y, proba), threshold)
    out["precision"], out["recall"] = float(at.precision[0]), float(at.recall[0])
    return {name: out[name] for name in (*METRICS, "precision", "recall")}


def paired_bootstrap(
    name: str,
    y: np.ndarray,
    proba_a: np.ndarray,
    threshold_a: float,
    proba_b: np.ndarray,
    threshold_b: float,
    params: Mapping[str, float] | None = None,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """How much better model A scores than model B on the same rows, with a confidence interval.

    Both models are scored on the same bootstrap resamples (stratified by class, so a rare class
    never vanishes from a resample), each at its own threshold. Returns ``(difference, low, high)``:
    the difference A − B on all rows and the percentile interval of the resampled differences.
    A lower bound above zero means A is better by more than the noise of these rows.
    """
    y, proba_a = _check(y, proba_a)
    _, proba_b = _check(y, proba_b)

    def score(idx: np.ndarray, proba: np.ndarray, threshold: float) -> float:
        return metric_value(name, y[idx], proba[idx], threshold, params)

    everything = np.arange(len(y))
    difference = score(everything, proba_a, threshold_a) - score(everything, proba_b, threshold_b)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in (0, 1)]
    diffs = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = np.concatenate([rng.choice(rows, size=len(rows), replace=True) for rows in by_class])
        diffs[i] = score(idx, proba_a, threshold_a) - score(idx, proba_b, threshold_b)
    tail = (1.0 - confidence) / 2
    low, high = np.nanquantile(diffs, [tail, 1.0 - tail])
    return float(difference), float(low), float(high)
