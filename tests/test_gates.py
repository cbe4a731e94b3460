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


def task(**fields) -> TaskSpec:
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


# ---------------------------------------------------------------------- end to end, as a person runs it
def _table(path, n: int, positives: int | float, shift: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, int)
    y[rng.choice(n, positives if isinstance(positives, int) else int(positives * n), replace=False)] = 1
    X = rng.normal(size=(n, 3))
    X[y == 1, 0] += shift
    pd.DataFrame(X, columns=["a", "b", "c"]).assign(target=y).to_csv(path, index=False)
    return path


def _train(*args: str) -> str:
    from typer.testing import CliRunner

    from poise.cli.main import app

    done = CliRunner().invoke(app, ["train", *map(str, args)])
    assert done.exit_code == 0, done.output
    return done.stdout


def _aliases(name: str) -> tuple[str | None, str | None]:
    from poise.registry import tracking, versions
    from poise.settings import get_settings

    tracking.connect(get_settings())
    return versions.alias_version(name, "champion"), versions.alias_version(name, "challenger")


@pytest.mark.slow
def test_a_precision_floor_missed_on_the_holdout_fails_the_gate_and_is_not_promoted(tmp_path):
    import json

    data = _table(tmp_path / "weak.csv", 1500, 0.08, shift=0.6)
    summary = json.loads(_train(data, "--target", "target", "--min-precision", "0.9", "--budget", "5",
                                "--name", "gates-weak", "--json"))
    holdout, gate = summary["holdout"], summary["gate"]
    assert holdout["precision"] < 0.9 and "recall" in holdout  # at the deployed threshold
    assert not gate["passed"] and not summary["promoted"]
    floor = next(r for r in gate["reasons"] if r.startswith("precision "))
    assert "< floor 0.9000" in floor and "95% CI" in floor and "out-of-fold" in floor
    assert set(gate["intervals"]) >= {"precision", "average_precision"}
    assert _aliases("gates-weak") == (None, summary["version"])


@pytest.mark.slow
def test_a_recall_floor_is_a_gate_whatever_the_metric(tmp_path):
    import json

    data = _table(tmp_path / "clear.csv", 1200, 0.15, shift=2.5)
    summary = json.loads(_train(data, "--target", "target", "--metric", "roc_auc", "--min-recall", "0.9",
                                "--budget", "5", "--name", "gates-recall", "--json"))
    gate, recall = summary["gate"], summary["holdout"]["recall"]
    assert summary["plan"]["gates"]["min_holdout"]["recall"] == 0.9
    assert summary["cv"]["recall"] >= 0.9  # the threshold was chosen to keep the floor
    reason = next(r for r in gate["reasons"] if r.startswith("recall "))
    assert ("≥ floor 0.9000" in reason) == (recall >= 0.9)
    low, high = gate["intervals"]["recall"]
    assert low <= recall <= high
    assert gate["passed"] == (recall >= 0.9 and summary["holdout"]["average_precision"] >= 0.3)


@pytest.mark.slow
def test_three_positive_rows_end_as_challenger_with_a_plain_warning(tmp_path):
    data = _table(tmp_path / "three.csv", 2000, 3, shift=2.0)
    output = _train(data, "--target", "target", "--budget", "5", "--name", "gates-three")
    assert "warning: too little evidence: the holdout holds 1 positive row(s)" in output
    assert "gates not passed" in output and "poise promote gates-three 1" in output
    assert _aliases("gates-three") == (None, "1")
