"""Derived features: proposed from column names, kept only when cross-validation says they help.

A rare event is often a threshold on a quantity the table does not hold directly: power
is torque × speed, overheating is a temperature difference, credit stress is a bill over
a limit. ``propose_derived`` reads the column names for such pairs; ``keep_helpful``
measures each proposal on the training part (stratified K-fold, plain gradient boosting,
average precision) and keeps it only if it lifts the score by a clear margin.
"""

from __future__ import annotations

import re
import time
import warnings
from itertools import combinations

import numpy as np
import pandas as pd

from poise.contracts import DataProfile, DataStep
from poise.tools.preprocess import Derived

#: Pairs whose product is a meaningful quantity: (words of a, words of b, name of the product).
PRODUCTS = (
    (("torque",), ("speed", "rpm", "rotational", "angular"), "power"),
    (("force", "load"), ("speed", "velocity", "distance"), "work"),
    (("voltage", "volt"), ("current", "amp", "ampere"), "power"),
    (("wear",), ("torque", "load", "force", "strain"), "strain"),
    (("price", "cost", "rate"), ("quantity", "qty", "units", "count", "hours"), "total"),
)
#: Pairs whose ratio is meaningful: (words of the numerator, words of the denominator).
RATIOS = (
    (("bill", "balance", "debt", "amount", "spend"), ("limit", "income", "salary", "credit")),
    (("pay_amt", "payment", "paid"), ("bill", "balance", "due")),
    (("weight", "mass"), ("height", "volume")),
)
#: Words too generic to say two columns measure the same quantity.
GENERIC = {"cons", "index", "idx", "amt", "amount", "total", "rate", "num", "count", "value", "avg", "mean", "max",
           "min", "sum", "std", "var"}
MIN_GAIN = 0.005  # average precision a feature must add to be kept
MAX_PROPOSALS = 8
MAX_ROWS = 10_000  # proposals are judged on at most this many rows (stratified sample)


def _words(name: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", name.lower()) if w}


def _stem(name: str) -> tuple[str, ...]:
    """The name without a trailing unit or index: process_temperature_k → (process, temperature)."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    return tuple(words[:-1]) if len(words) > 1 and (len(words[-1]) <= 3 or words[-1].isdigit()) else tuple(words)


def _has(name: str, vocabulary: tuple[str, ...]) -> bool:
    """Whether a word of ``name`` starts with a vocabulary entry (``pay_amt`` needs both parts)."""
    words = _words(name)
    return any(all(any(w.startswith(part) for w in words) for part in v.split("_")) for v in vocabulary)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")


def propose_derived(profile: DataProfile) -> list[DataStep]:
    """Products, ratios and differences of related numeric columns, with the reason each makes sense."""
    numeric = [c.name for c in profile.columns
               if c.kind == "numeric" and not (c.is_identifier or c.is_leak or c.is_constant)]
    proposals: list[DataStep] = []
    for a, b in combinations(numeric, 2):
        for words_a, words_b, meaning in PRODUCTS:
            if (_has(a, words_a) and _has(b, words_b)) or (_has(b, words_a) and _has(a, words_b)):
                proposals.append(DataStep(
                    action="derive", op="product", inputs=[a, b], column=f"{_safe(a)}_x_{_safe(b)}",
                    reason=f"{a} × {b} is a {meaning}; failures often follow a threshold on it"))
                break
        for top, bottom in RATIOS:
            for num, den in ((a, b), (b, a)):
                if _has(num, top) and _has(den, bottom):
                    proposals.append(DataStep(
                        action="derive", op="ratio", inputs=[num, den], column=f"{_safe(num)}_per_{_safe(den)}",
                        reason=f"{num} relative to {den} says more than either alone"))
        units_a, units_b = _words(a), _words(b)
        shared = {w for w in set(_stem(a)) & set(_stem(b)) if len(w) > 2 and w not in GENERIC}
        same_unit = a.lower().rsplit("_", 1)[-1] == b.lower().rsplit("_", 1)[-1] and len(units_a & units_b) >= 2
        if shared and same_unit and _stem(a) != _stem(b) and not any(p.inputs == [a, b] for p in proposals):
            hi, lo = (b, a) if _stem(a) < _stem(b) else (a, b)
            proposals.append(DataStep(
                action="derive", op="difference", inputs=[hi, lo], column=f"{_safe(hi)}_minus_{_safe(lo)}",
                reason=f"{hi} and {lo} measure the same quantity; their gap can matter more than either"))
    unique = {p.column: p for p in proposals}
    return list(unique.values())[:MAX_PROPOSALS]


def keep_helpful(
    X: pd.DataFrame, y: np.ndarray, proposals: list[DataStep], base: list[str], *, seed: int = 0, folds: int = 3,
    max_seconds: float | None = None, judged: list[str] | None = None,
) -> list[tuple[DataStep, float]]:
    """The proposals that lift cross-validated average precision by at least ``MIN_GAIN``, with their gains.

    Proposals not judged within ``max_seconds`` are not kept (see ``judged`` for which were).
    """
    if not proposals:
        return []
    if len(y) > MAX_ROWS:
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(np.arange(len(y)), train_size=MAX_ROWS, stratify=y, random_state=seed)
        X, y = X.iloc[keep], y[keep]
    started = time.monotonic()
    deadline = started + (max_seconds if max_seconds is not None else float("inf"))
    baseline = _cv_average_precision(X, y, base, [], seed, folds)
    one = time.monotonic() - started  # what one more cross-validation will take, about

    def fits() -> bool:  # a judgement is not started unless it can end in time
        return time.monotonic() + one <= deadline

    kept = []
    for step in proposals:
        if not fits():
            break
        gain = _cv_average_precision(X, y, base, [step], seed, folds) - baseline
        if judged is not None:
            judged.append(step.column)
        if gain >= MIN_GAIN:
            kept.append((step, gain))
    if len(kept) > 1:  # together they must still beat the baseline; without time to check, the best alone
        together = _cv_average_precision(X, y, base, [s for s, _ in kept], seed, folds) - baseline if fits() else -1.0
        if together < max(g for _, g in kept):
            kept = [max(kept, key=lambda sg: sg[1])]
    return kept


def _cv_average_precision(X: pd.DataFrame, y: np.ndarray, base: list[str], steps: list[DataStep], seed: int,
                          folds: int) -> float:
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import StratifiedKFold

    from poise.tools import parallel

    frame = X[base].apply(pd.to_numeric, errors="coerce").astype(float)
    for step in steps:
        frame[step.column] = Derived(step.column, step.op or "", *step.inputs).compute(X)
    oof = np.zeros(len(y))
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(frame, y))
    jobs = [(frame.iloc[train], y[train], frame.iloc[valid], seed) for train, valid in splits]
    for (_, valid), proba in zip(splits, parallel.run_all(_fold_proba, jobs, parallel.workers(folds)),
                                 strict=True):
        oof[valid] = proba
    return float(average_precision_score(y, oof))


def _fold_proba(X_train: pd.DataFrame, y_train: np.ndarray, X_valid: pd.DataFrame, seed: int) -> np.ndarray:
    """A default HistGradientBoosting trained on one fold (in a worker when fits run side by side), its
    probabilities for the held-out rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X_train, y_train)
    return model.predict_proba(X_valid)[:, 1]
