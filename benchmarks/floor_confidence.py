"""How often a threshold chosen on out-of-fold rows keeps a precision floor on new rows, and what it costs.

Scores are binormal: negatives N(0, 1), positives N(separation, 1), so the true precision and recall of any
threshold are known exactly. Each draw samples ``rows`` scored rows (standing for the out-of-fold predictions
of a search), lets ``poise.tools.metrics.best_threshold`` choose the threshold for ``recall_at_precision`` at
confidence z, and records:

* ``true below floor``: how often the threshold's true precision (on the whole population) is under the floor;
* ``not sure``: how often no threshold kept the floor with confidence z, so that the point estimate decided
  (the search then says so: ``metrics.floor_note``), and how often the true precision was under the floor in
  the other draws;
* ``true recall``: the mean true recall at the chosen threshold;
* ``holdout below floor``: how often a fresh holdout of a third as many rows (a 75/25 split's quarter) measures
  precision under the floor at that threshold, which is what the training gate sees.

    .venv/bin/python benchmarks/floor_confidence.py --out benchmarks/floor_confidence.md

It runs in about a minute on one core and needs nothing but poise.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

from poise.tools import metrics


def truth(threshold: float, prevalence: float, separation: float) -> tuple[float, float]:
    """Precision and recall of ``score >= threshold`` (``threshold`` on the probability scale) on the population."""
    cut = norm.ppf(threshold)
    tpr, fpr = norm.sf(cut - separation), norm.sf(cut)
    precision = prevalence * tpr / max(prevalence * tpr + (1 - prevalence) * fpr, 1e-300)
    return precision, tpr


def draw(rng: np.random.Generator, rows: int, prevalence: float, separation: float) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` labelled rows and their scores, mapped onto (0, 1) by the normal CDF (order kept)."""
    y = (rng.random(rows) < prevalence).astype(int)
    return y, norm.cdf(rng.normal(size=rows) + separation * y)


def cell(rng: np.random.Generator, rows: int, prevalence: float, separation: float, z: float, floor: float,
         draws: int) -> dict[str, float]:
    below = holdout_below = unsure = unsure_below = 0
    recalls = []
    params = {"min_precision": floor}
    for _ in range(draws):
        y, proba = draw(rng, rows, prevalence, separation)
        threshold, _ = metrics.best_threshold("recall_at_precision", y, proba, params, z=z)
        precision, recall = truth(threshold, prevalence, separation)
        below += precision < floor
        at = metrics.metric_value("precision", y, proba, threshold)
        predicted = np.sum(proba >= threshold)
        if z > 0 and metrics.floor_lower_bound(at * predicted, predicted, z) < floor:
            unsure += 1
            unsure_below += precision < floor
        recalls.append(recall)
        y_hold, proba_hold = draw(rng, rows // 3, prevalence, separation)
        holdout_below += metrics.metric_value("precision", y_hold, proba_hold, threshold) < floor
    sure = draws - unsure
    return {"true below floor": below / draws, "not sure": unsure / draws,
            "sure below": (below - unsure_below) / sure if sure else float("nan"),
            "true recall": float(np.mean(recalls)), "holdout below floor": holdout_below / draws}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prevalence", type=float, nargs="+", default=[0.01, 0.03, 0.05])
    parser.add_argument("--rows", type=int, nargs="+", default=[2000, 7500])
    parser.add_argument("--separation", type=float, nargs="+", default=[2.0, 3.0],
                        help="positives' mean score, in standard deviations of the negatives'")
    parser.add_argument("--floor", type=float, default=0.5)
    parser.add_argument("--z", type=float, nargs="+", default=[0.0, 1.0, metrics.FLOOR_CONFIDENCE_Z])
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the table here as markdown (also printed)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    lines = [
        f"Precision floor {args.floor:g}; binormal scores (positives N(separation, 1), negatives N(0, 1)); "
        f"{args.draws} draws per row; the holdout has a third as many rows as the search saw.",
        "",
        "| positives | rows | separation | z | true precision below floor | no threshold sure "
        "| below floor where one was | mean true recall | holdout precision below floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for prevalence, rows, separation in itertools.product(args.prevalence, args.rows, args.separation):
        for z in args.z:
            r = cell(rng, rows, prevalence, separation, z, args.floor, args.draws)
            lines.append(f"| {prevalence:.0%} | {rows:,} | {separation:g} | {z:g} | {r['true below floor']:.1%} | "
                         f"{r['not sure']:.1%} | {r['sure below']:.1%} | "
                         f"{r['true recall']:.3f} | {r['holdout below floor']:.1%} |")
    command = "    .venv/bin/python " + shlex.join(["benchmarks/floor_confidence.py", *(argv or sys.argv[1:])])
    text = "\n".join([*lines, "", "Made with:", "", command, ""])
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
