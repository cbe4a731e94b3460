"""The metrics poise optimises and reports, and threshold moving.

Three families:

* ranking metrics, judged on the scores alone: ``average_precision`` (PR-AUC) and ``roc_auc``;
* decision metrics, judged on labels at a threshold: ``mcc``, ``f1``, ``f_beta``,
  ``balanced_accuracy``, ``g_mean``;
* constrained metrics, ``recall_at_precision`` (recall, with precision >= ``min_precision``) and
  ``precision_at_recall`` (precision, with recall >= ``min_recall``): a promise about the labels a
  model gives, so once a threshold is set they are scored at it (``constrained_score``).

``best_threshold`` picks the threshold for a task on out-of-fold probabilities: the one that
maximises a decision metric, meets a constraint with the most of the other quantity, or, for
ranking metrics, maximises MCC; always among the thresholds where every floor the task states
holds with confidence (``FLOOR_CONFIDENCE_Z``). ``bootstrap_interval`` and ``paired_bootstrap``
say how sure a holdout score is. All functions take the 0/1 target (1 = positive) and the
positive-class probability.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from poise.contracts import METRICS

RANKING_METRICS = ("average_precision", "roc_auc")
DECISION_METRICS = ("mcc", "f1", "f_beta", "balanced_accuracy", "g_mean")
CONSTRAINED_METRICS = ("recall_at_precision", "precision_at_recall")
#: Together the three kinds are exactly ``poise.contracts.METRICS`` (tests/test_metrics.py checks it).
#: The quantities a floor can be set on (``min_precision``, ``min_recall``), at a threshold.
FLOORED = {"precision": "min_precision", "recall": "min_recall"}
#: Each constrained metric: the quantity it gains, and the one whose floor it keeps (0.5 unless given).
_CONSTRAINED = {"recall_at_precision": ("recall", "precision"), "precision_at_recall": ("precision", "recall")}
#: How sure a threshold chosen on out-of-fold rows must be that a floor holds: the one-sided
#: Wilson lower bound at this z (1.645: 95 % one-sided) must reach the floor. A cut exactly at the
#: floor misses it on new rows about half the time, and one at z = 1 (84 %) still about one time in
#: nine once the threshold has been picked as the best of many; see ``floor_lower_bound``.
FLOOR_CONFIDENCE_Z = 1.645
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
    """A threshold-free metric of how well the scores rank positives above negatives.

    For a constrained metric this is the best any threshold could do on these rows (the best
    recall at precision >= ``min_precision``): an optimistic sweep, fit for choosing a threshold,
    not for reporting one; a deployed model is scored by ``constrained_score``.
    """
    y, proba = _check(y, proba)
    params = params or {}
    if y.min() == y.max():
        return float("nan")
    # from the one sweep rather than sklearn: the same values, and fast enough to bootstrap
    sweep, _ = _sweep(y, proba)
    if name == "average_precision":  # sum over thresholds of (recall gained) × precision there
        return float(np.sum(np.diff(sweep.recall, prepend=0.0) * sweep.precision))
    if name == "roc_auc":  # the trapezoids under (false positive rate, true positive rate)
        return float(np.trapezoid(np.r_[0.0, sweep.recall], np.r_[0.0, 1.0 - sweep.specificity]))
    if name in _CONSTRAINED:
        gained, floored = _CONSTRAINED[name]
        ok = getattr(sweep, floored) >= params.get(FLOORED[floored], 0.5)
        return float(getattr(sweep, gained)[ok].max()) if ok.any() else 0.0
    raise ValueError(f"unknown ranking metric {name!r}; known: {', '.join(RANKING_METRICS + CONSTRAINED_METRICS)}")


def decision_score(name: str, y: np.ndarray, proba: np.ndarray, threshold: float, beta: float = 1.0) -> float:
    """A metric of the labels ``proba >= threshold``."""
    y, proba = _check(y, proba)
    return float(_Confusion.at(y, proba, threshold).decision(name, beta)[0])


def constrained_score(
    name: str, y: np.ndarray, proba: np.ndarray, threshold: float, params: Mapping[str, float] | None = None
) -> float:
    """A constrained metric of the model as deployed: its labels ``proba >= threshold``.

    ``recall_at_precision`` is the recall at ``threshold`` when the precision there is at least
    ``min_precision``, else 0; ``precision_at_recall`` is the precision at ``threshold`` when the
    recall there is at least ``min_recall``, else 0. Zero, not the recall, when the floor is missed:
    a score never rewards a promise the model broke. On out-of-fold rows at the threshold
    ``best_threshold`` chose, this equals the value it returned; on a holdout it is what the person
    gets, with no threshold re-chosen on the rows being judged.
    """
    y, proba = _check(y, proba)
    params = params or {}
    at = _Confusion.at(y, proba, threshold)
    if name in _CONSTRAINED:
        gained, floored = _CONSTRAINED[name]
        return float(getattr(at, gained)[0]) if getattr(at, floored)[0] >= params.get(FLOORED[floored], 0.5) else 0.0
    raise ValueError(f"unknown constrained metric {name!r}; known: {', '.join(CONSTRAINED_METRICS)}")


def floor_lower_bound(successes: np.ndarray, trials: np.ndarray, z: float = FLOOR_CONFIDENCE_Z) -> np.ndarray:
    """One-sided Wilson lower bound of a proportion (precision: tp of tp + fp; recall: tp of positives).

    Wilson rather than the normal approximation because floors are met at proportions near 0 or 1
    on a few dozen rows, where the normal interval leaves [0, 1]. Zero trials give 0.
    """
    k, n = np.asarray(successes, dtype=float), np.asarray(trials, dtype=float)
    safe = np.maximum(n, 1.0)
    p = k / safe
    centre = p + z * z / (2 * safe)
    spread = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    return np.where(n > 0, (centre - spread) / (1 + z * z / safe), 0.0)


def _sure_and_plain(
    sweep: _Confusion, params: Mapping[str, float], z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The thresholds where every floor in ``params`` holds with confidence ``z``, those where it holds
    on the point estimate, and how sure each threshold is: the least margin of a floor's lower bound
    over the floor."""
    sure = np.ones(len(sweep.tp), dtype=bool)
    plain = sure.copy()
    margin = np.full(len(sweep.tp), np.inf)
    for key, hits, trials, measured in (("min_precision", sweep.tp, sweep.tp + sweep.fp, sweep.precision),
                                        ("min_recall", sweep.tp, sweep.tp + sweep.fn, sweep.recall)):
        if key in params:
            margin = np.minimum(margin, floor_lower_bound(hits, trials, z) - params[key])
            plain &= measured >= params[key]
    sure &= margin >= 0
    return sure, plain, margin


def _meets_floors(sweep: _Confusion, params: Mapping[str, float], z: float = FLOOR_CONFIDENCE_Z) -> np.ndarray:
    """The thresholds where every floor in ``params`` holds: with confidence where any threshold
    allows it; else the surest of those where it holds on the point estimate (on a few dozen positives
    the one that meets it as measured with the most recall misses on new rows about half the time; the
    surest, far less often: ``benchmarks/floor_confidence.py``); all False when even that fails."""
    sure, plain, margin = _sure_and_plain(sweep, params, z)
    if sure.any() or not plain.any():
        return sure
    return plain & (margin >= np.max(margin[plain]) - 1e-12)


def _floors(name: str, params: Mapping[str, float]) -> dict[str, float]:
    """The floors a threshold for metric ``name`` must keep: those in ``params``, and a constrained
    metric's own (0.5 unless given)."""
    floors = {k: float(params[k]) for k in FLOORED.values() if k in params}
    if name in _CONSTRAINED:
        floors.setdefault(FLOORED[_CONSTRAINED[name][1]], 0.5)
    return floors


def best_threshold(
    name: str, y: np.ndarray, proba: np.ndarray, params: Mapping[str, float] | None = None,
    z: float = FLOOR_CONFIDENCE_Z,
) -> tuple[float, float]:
    """The threshold that serves metric ``name`` best on these (out-of-fold) probabilities.

    Only thresholds where every floor in ``params`` (``min_precision``, ``min_recall``) holds are
    considered, whatever the metric: a floor is a promise about the deployed labels. A floor must
    hold with confidence (``floor_lower_bound`` reaches it), so that it still holds on new rows;
    where no threshold is that sure, the point estimate decides. Where no threshold meets the
    floors at all, a constrained metric returns the most precise (or, for a recall floor, the
    lowest) cut and an honest 0; any other metric its unconstrained best.

    Returns ``(threshold, value)``; ``value`` is the decision metric at that threshold for
    decision metrics, ``constrained_score`` at it for constrained metrics, and the ranking
    metric itself for ranking metrics. ``z`` is the confidence a floor must hold with (0: as measured).
    """
    y, proba = _check(y, proba)
    params = params or {}
    sweep, thresholds = _sweep(y, proba)
    if name in CONSTRAINED_METRICS:
        ok = _meets_floors(sweep, {**params, **_floors(name, params)}, z)
        gained, tie = (getattr(sweep, quantity) for quantity in _CONSTRAINED[name])
        if not ok.any():  # infeasible: the most precise cut (or every row, for a recall floor), and an honest 0
            fallback = np.argmax(sweep.precision) if name == "recall_at_precision" else len(thresholds) - 1
            return float(thresholds[int(fallback)]), 0.0
        best = int(np.argmax(np.where(ok, gained + 1e-9 * tie, -1.0)))
        return float(thresholds[best]), float(gained[best])
    ok = _meets_floors(sweep, params, z)
    if not ok.any():
        ok = np.ones_like(ok)
    if name in DECISION_METRICS:
        values = sweep.decision(name, params.get("beta", 1.0))
        best = int(np.argmax(np.where(ok, values, -np.inf)))
        return float(thresholds[best]), float(values[best])
    if name in RANKING_METRICS:
        values = sweep.decision(DEFAULT_DECISION_METRIC)
        best = int(np.argmax(np.where(ok, values, -np.inf)))
        return float(thresholds[best]), ranking_score(name, y, proba, params)
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")


def metric_value(
    name: str, y: np.ndarray, proba: np.ndarray, threshold: float, params: Mapping[str, float] | None = None
) -> float:
    """One metric of scores ``proba`` at ``threshold`` (ranking metrics ignore it).

    Besides the metrics, ``precision`` and ``recall`` at the threshold: the quantities a floor is
    set on.
    """
    params = dict(params or {})
    params.setdefault("min_precision", 0.5)
    params.setdefault("min_recall", 0.5)
    if name in DECISION_METRICS:
        return decision_score(name, y, proba, threshold, params.get("beta", 1.0))
    if name in CONSTRAINED_METRICS:
        return constrained_score(name, y, proba, threshold, params)
    if name in FLOORED:
        at = _Confusion.at(*_check(y, proba), threshold)
        return float(at.precision[0] if name == "precision" else at.recall[0])
    return ranking_score(name, y, proba, params)


def all_metrics(
    y: np.ndarray, proba: np.ndarray, threshold: float, params: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Every metric poise knows, plus precision and recall, at the threshold: what reports show."""
    return {name: metric_value(name, y, proba, threshold, params) for name in (*METRICS, *FLOORED)}


def floors_of(params: Mapping[str, float] | None) -> dict[str, float]:
    """The floors a task states, by the quantity they bound: ``{"precision": 0.5}``."""
    params = params or {}
    return {quantity: float(params[key]) for quantity, key in FLOORED.items() if params.get(key) is not None}


def floor_note(
    name: str, y: np.ndarray, proba: np.ndarray, threshold: float, params: Mapping[str, float] | None = None
) -> str | None:
    """How the threshold ``best_threshold`` chose for metric ``name`` keeps the task's floors on these
    (out-of-fold) rows, in words, with what the confidence costs; None when the task sets no floor."""
    y, proba = _check(y, proba)
    params = dict(params or {})
    floors = _floors(name, params)
    if not floors:
        return None
    params.update(floors)
    stated = " and ".join(f"{key.removeprefix('min_')} >= {floor:g}" for key, floor in floors.items())
    at = _Confusion.at(y, proba, threshold)
    measured = {"min_precision": (at.precision[0], at.tp[0] + at.fp[0]),
                "min_recall": (at.recall[0], at.tp[0] + at.fn[0])}
    figures = ", ".join(
        f"{key.removeprefix('min_')} {measured[key][0]:.3f} (95 % lower bound "
        f"{float(floor_lower_bound(at.tp[0], measured[key][1])):.3f})" for key in floors)
    sure, plain, _ = _sure_and_plain(_sweep(y, proba)[0], params, FLOOR_CONFIDENCE_Z)
    rows = f"the {len(y)} out-of-fold rows"
    if sure.any():
        kept, as_measured = best_threshold(name, y, proba, params)[1], best_threshold(name, y, proba, params, z=0.0)[1]
        label = _CONSTRAINED[name][0] if name in _CONSTRAINED else name
        cost = "" if name in RANKING_METRICS or kept >= as_measured else \
            f"; {label} {kept:.3f}, where a threshold meeting the floor only as measured gives {as_measured:.3f}"
        return f"threshold {threshold:.4f} keeps {stated} with 95 % confidence on {rows}: {figures}{cost}"
    if plain.any():
        return (f"no threshold keeps {stated} with 95 % confidence on {rows} (too few positives, or scores that "
                f"separate too little); threshold {threshold:.4f} is the surest of those that meet it as measured: "
                f"{figures}, so new rows may well fall below it")
    return f"no threshold meets {stated} on {rows}, even as measured: at threshold {threshold:.4f}, {figures}"


def _stratified_resamples(y: np.ndarray, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of bootstrap resamples drawn within each class, so a rare class never vanishes."""
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in (0, 1)]
    for _ in range(n_resamples):
        yield np.concatenate([rng.choice(rows, size=len(rows), replace=True) for rows in by_class])


def bootstrap_interval(
    name: str,
    y: np.ndarray,
    proba: np.ndarray,
    threshold: float,
    params: Mapping[str, float] | None = None,
    *,
    minus: tuple[np.ndarray, float] | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """A holdout score and its stratified-bootstrap percentile interval: ``(value, low, high)``.

    ``name`` is any ``metric_value`` name (``precision`` and ``recall`` included), scored at
    ``threshold``. With ``minus=(proba_b, threshold_b)`` the score is the difference between this
    model and model B on the same resamples (what ``paired_bootstrap`` reports).
    """
    y, proba = _check(y, proba)
    if minus is not None:
        _check(y, minus[0])

    def score(idx: np.ndarray) -> float:
        value = metric_value(name, y[idx], proba[idx], threshold, params)
        return value if minus is None else value - metric_value(name, y[idx], minus[0][idx], minus[1], params)

    value = score(np.arange(len(y)))
    resampled = np.array([score(idx) for idx in _stratified_resamples(y, n_resamples, seed)])
    tail = (1.0 - confidence) / 2
    low, high = np.nanquantile(resampled, [tail, 1.0 - tail])
    return float(value), float(low), float(high)


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
    return bootstrap_interval(name, y, proba_a, threshold_a, params, minus=(np.asarray(proba_b, dtype=float),
                              threshold_b), n_resamples=n_resamples, confidence=confidence, seed=seed)
