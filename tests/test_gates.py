"""The deployment gates: every floor the person gave is checked at the deployed threshold, with its
interval, and too little evidence is said plainly instead of being judged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poise.contracts import Gates, TaskSpec
from poise.tools import data, planning


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=500), "target": (rng.random(500) < 0.1).astype(int)})
    return data.profile_table(data.prepare_target(frame, "target", None), source="t.csv", target="target",
                              data_fingerprint="-")


def task(**fields) -> TaskSpec:  # noqa: ANN003
    return TaskSpec(data="t.csv", target="target", **fields)


def holdout(**values: float) -> dict[str, float]:
    return {"average_precision": 0.9, "roc_auc": 0.95, "recall_at_precision": 0.0, "precision": 0.6,
            "recall": 0.6, **values}


def test_every_floor_the_person_gave_becomes_a_gate_whatever_the_metric(profile):
    gates = planning.default_gates(task(metric="roc_auc", min_recall=0.9), profile)
    assert gates.min_holdout["recall"] == 0.9 and "precision" not in gates.min_holdout
    both = planning.default_gates(task(min_precision=0.5, min_recall=0.5, metric="recall_at_precision"), profile)
    assert both.min_holdout["precision"] == 0.5 and both.min_holdout["recall"] == 0.5
    report = planning.check_gates(gates, "roc_auc", holdout(recall=0.73))
    assert not report.passed
    assert any(r.startswith("recall 0.7300 < floor 0.9000") for r in report.reasons)


def test_a_plan_without_the_persons_floor_is_still_gated_on_it():
    plan_gates = Gates(min_holdout={"average_precision": 0.2})  # an edited plan that lost the floor
    report = planning.check_gates(plan_gates, "recall_at_precision", holdout(precision=0.4667),
                                  params={"min_precision": 0.5})
    assert not report.passed and any("precision 0.4667 < floor 0.5000" in r for r in report.reasons)
    assert planning.gate_floors(Gates(min_holdout={"precision": 0.7}), {"min_precision": 0.5})["precision"] == 0.7


def test_floors_show_their_interval_and_say_when_even_out_of_fold_missed_them():
    gates = Gates(min_holdout={"precision": 0.5})
    report = planning.check_gates(gates, "average_precision", holdout(precision=0.52),
                                  intervals={"precision": (0.44, 0.60)}, out_of_fold={"precision": 0.52},
                                  holdout_positives=40)
    assert report.passed and report.intervals == {"precision": (0.44, 0.60)}
    assert report.reasons[0] == "precision 0.5200 (95% CI 0.4400–0.6000) ≥ floor 0.5000"
    infeasible = planning.check_gates(gates, "average_precision", holdout(precision=0.3),
                                      out_of_fold={"precision": 0.31})
    assert not infeasible.passed
    assert "not met even on the out-of-fold rows" in infeasible.reasons[0] and "0.3100" in infeasible.reasons[0]


def test_a_holdout_with_too_few_positives_is_never_passed():
    gates = Gates(min_holdout={"average_precision": 0.0025}, must_beat_champion=True)
    report = planning.check_gates(gates, "average_precision", holdout(average_precision=1.0),
                                  holdout_positives=1)
    assert not report.passed and report.warnings
    assert report.reasons[0] == report.warnings[0]
    assert "1 positive row(s)" in report.warnings[0] and "@challenger" in report.warnings[0]
    enough = planning.check_gates(gates, "average_precision", holdout(),
                                  holdout_positives=planning.MIN_HOLDOUT_POSITIVES)
    assert enough.passed and not enough.warnings
