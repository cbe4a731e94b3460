"""Monitoring and recovery for real: Evidently on AI4I, the recovery graph with SQLite checkpoints,
MLflow versions, Prefect flows, approval by policy and by a person, and the audit trail."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from poise.agents.audit import AWAITING_APPROVAL
from poise.agents.brain import RuleBrain, rule_recovery
from poise.agents.runner import Lifecycle
from poise.contracts import DataStep, DriftReport, FeatureDrift, MonitorPolicy, Plan, SearchSpace, TaskSpec
from poise.registry import versions
from tests.conftest import AI4I

NAME = "recovery-ai4i"


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """History to train on; held-back rows as they come, with a documented covariate shift, and with two
    columns swapped (an export that mixed up torque and speed: the champion, reading each as the other, is
    lost, while the relation between the true quantities and the label holds, so a model that learns from
    the recent rows must beat it)."""
    folder = tmp_path_factory.mktemp("recovery")
    frame = pd.read_csv(AI4I).sample(frac=1.0, random_state=0).reset_index(drop=True)
    history, same, shifted = frame.iloc[:6000], frame.iloc[6000:8000], frame.iloc[8000:].copy()
    swapped = shifted.rename(columns={"torque_nm": "rotational_speed_rpm", "rotational_speed_rpm": "torque_nm"})
    shifted["air_temperature_k"] += 3.0
    shifted["process_temperature_k"] += 3.0
    shifted["torque_nm"] *= 1.2
    paths = {}
    for name, part in (("history", history), ("same", same), ("shifted", shifted), ("swapped", swapped),
                       ("tiny", same.head(20))):
        paths[name] = folder / f"{name}.csv"
        part.to_csv(paths[name], index=False)
    return paths


@pytest.fixture(scope="module")
def champion(tables):
    """v1: a quick champion whose plan lets only threshold re-tunes run unattended."""
    from poise.pipelines.train import train

    drops = [DataStep(action="drop", column=c, reason="identifier") for c in ("udi", "product_id")]
    plan = Plan(data_steps=drops, search=SearchSpace(strategies=["none"], models=["hist_gradient_boosting"]),
                budget_seconds=20,
                max_trials=2, cv_folds=3, ensemble_size=1, unattended_recoveries=["retune_threshold"])
    outcome = train(TaskSpec(data=str(tables["history"]), target="target", model_name=NAME, budget_seconds=20),
                    plan)
    assert outcome.promoted
    return outcome


@pytest.fixture
def lifecycle():
    lifecycle = Lifecycle(brain=RuleBrain())
    yield lifecycle
    lifecycle.close()


def steps(lifecycle, run_id):
    return [e.step for e in lifecycle.journal.events(run_id)]


@pytest.mark.slow
def test_each_version_keeps_its_reference_rows(champion):
    reference = versions.reference(NAME, champion.candidate.version)
    parts = reference[versions.PART].value_counts()
    assert parts["train"] > 3 * parts["holdout"] > 0
    assert reference[versions.PROBA].between(0, 1).all() and set(reference[versions.LABEL]) == {0, 1}
    assert "udi" not in reference.columns  # only what the model reads


@pytest.mark.slow
def test_a_slice_of_the_same_distribution_triggers_nothing(champion, tables, lifecycle):
    view = lifecycle.recover(NAME, current=str(tables["same"]))
    assert view.status == "no action"
    assert view.values["report"]["severity"] == "none"
    assert steps(lifecycle, view.run_id) == ["monitor", "diagnose", "recompose"]
    assert versions.alias_version(NAME, "champion") == champion.candidate.version


@pytest.mark.slow
def test_twenty_rows_never_trigger_a_retrain(champion, tables, lifecycle):
    view = lifecycle.recover(NAME, current=str(tables["tiny"]))
    assert view.status == "no action"
    assert any("20" in reason for reason in view.values["report"]["reasons"])


@pytest.mark.slow
def test_covariate_shift_is_detected_and_a_retrain_waits_for_a_person(champion, tables, lifecycle):
    view = lifecycle.recover(NAME, current=str(tables["shifted"]), budget_seconds=20)
    report = view.values["report"]
    assert report["severity"] == "act"
    drifted = {f["column"] for f in report["features"] if f["drifted"]}
    assert {"air_temperature_k", "process_temperature_k", "torque_nm"} <= drifted
    assert "rotational_speed_rpm" not in drifted
    assert view.values["recovery"]["action"] == "retrain" and not view.values["recovery"]["unattended"]
    assert view.status == AWAITING_APPROVAL and view.pending is not None
    assert steps(lifecycle, view.run_id) == ["monitor", "diagnose", "recompose"]  # nothing trains unasked

    view = lifecycle.reject(view.run_id, "not during the night shift", approver="dana")
    assert view.status == "rejected" and "candidate" not in view.values
    approval = lifecycle.journal.events(view.run_id)[-1]
    assert approval.step == "approve" and approval.mind == "person" and approval.approver == "dana"
    assert versions.alias_version(NAME, "champion") == champion.candidate.version


@pytest.mark.slow
def test_monitor_and_recoveries_on_the_command_line(champion, tables):
    from poise.cli.main import app

    result = CliRunner().invoke(app, ["monitor", NAME, "--current", str(tables["shifted"]), "--json"])
    assert result.exit_code == 0, result.output
    report = DriftReport.model_validate(json.loads(result.stdout))
    assert report.severity == "act" and report.html_path and report.labelled_rows == 2000
    listed = CliRunner().invoke(app, ["recoveries", NAME, "--json"])
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) >= 3
    missing = CliRunner().invoke(app, ["monitor", NAME, "--current", "nowhere.csv"])
    assert missing.exit_code == 2 and "no such file" in missing.output


def _report(**fields) -> DriftReport:
    base = {"reference_rows": 5000, "current_rows": 1000, "drifted_share": 0.0, "labelled_rows": 500,
            "severity": "act", "features": [FeatureDrift(column="x", method="K-S p_value", score=0.5,
                                                         threshold=0.05, drifted=False)]}
    return DriftReport(**{**base, **fields})


def test_the_rules_answer_each_kind_of_drift():
    policy = MonitorPolicy()
    prior = _report(prior_shift=True, reference_minority_share=0.03, current_minority_share=0.09,
                    severity="watch")
    assert rule_recovery(prior, policy).action == "retune_threshold"
    moved = _report(drifted_share=0.6, decay=0.2, metric="average_precision")
    draft = rule_recovery(moved, policy)
    assert draft.action == "retrain" and draft.reference_fraction == 0.5
    concept = _report(decay=0.2, metric="average_precision", reference_score=0.8, current_score=0.6)
    assert rule_recovery(concept, policy).reference_fraction == 0.25
    assert rule_recovery(_report(labelled_rows=10, drifted_share=0.6), policy).action == "none"
    assert rule_recovery(_report(severity="none"), policy).action == "none"


@pytest.mark.slow
def test_watch_checks_the_predictions_the_champion_served_with_their_late_labels(champion, tables):
    """What `poise serve` logs and `poise feedback` labels is what `poise watch` checks."""
    from poise.cli.main import app
    from poise.registry.predictions import PredictionStore, default_path

    version = versions.alias_version(NAME, "champion")
    model = versions.load(f"{NAME}:{version}")
    rows = pd.read_csv(tables["shifted"])
    scored = model.predict(rows, allow_extra=True)
    store = PredictionStore(default_path())
    ids = store.log(NAME, version, rows[model.card.features], scored["proba"], scored["pred"])
    store.attach_labels(ids[0].request_id, rows["target"].tolist())
    result = CliRunner().invoke(app, ["watch", NAME, "--every", "1", "--checks", "1", "--monitor-only",
                                      "--window", "2000"])
    assert result.exit_code == 0, result.output
    assert "severity" in result.stdout
    from poise.pipelines.monitor import monitor_flow

    report = monitor_flow(NAME, window=2000, html=False)
    assert report.current_rows == 2000 and report.labelled_rows == 2000 and report.decay is not None


@pytest.mark.slow
def test_an_llm_recomposes_under_the_same_guardrails(champion, tables, lifecycle):
    """The LLM proposes a retrain on a window too small to judge: the guardrails refuse it."""
    from poise.agents.brain import LLMBrain
    from poise.agents.llm import LLMSettings
    from tests.llm_server import ScriptedLLMServer

    with ScriptedLLMServer(model="scripted-model") as server:
        server.reply_json({"action": "retrain", "reference_fraction": 0.3, "reasons": ["the data moved"]})
        mind = LLMBrain(LLMSettings(base_url=server.base_url, model="scripted-model", timeout_seconds=2,
                                    retries=0))
        llm_lifecycle = Lifecycle(brain=mind)
        try:
            shifted = pd.read_csv(tables["shifted"]).drop(columns=["target"])  # no labels at all
            path = tables["shifted"].with_name("unlabelled.csv")
            shifted.to_csv(path, index=False)
            view = llm_lifecycle.recover(NAME, current=str(path))
        finally:
            llm_lifecycle.close()
    assert view.values["report"]["severity"] == "act" and view.status == "no action"
    recompose = [e for e in llm_lifecycle.journal.events(view.run_id) if e.step == "recompose"][0]
    assert recompose.mind == "llm:scripted-model"
    assert any("labelled row" in r for r in recompose.repairs)


@pytest.mark.slow
def test_a_threshold_retune_registers_a_version_judged_on_a_decision_metric(champion, tables, tmp_path):
    """Label-prior shift: the same pipeline with a threshold tuned on recent labels, judged on rows it
    was not tuned on, at a metric a threshold can change."""
    from poise.pipelines.monitor import champion_of
    from poise.pipelines.recover import challenge_flow, judging_metric, retune_flow

    rows = pd.read_csv(tables["same"])
    shifted = pd.concat([rows, rows[rows["target"] == 1].sample(frac=3.0, replace=True, random_state=0)])
    recent = tmp_path / "recent.csv"
    shifted.sample(frac=1.0, random_state=1).to_csv(recent, index=False)
    before = champion_of(NAME)
    candidate = retune_flow(NAME, str(recent), 0.5)
    assert candidate.version != before.version and candidate.estimator == before.card.estimator
    assert versions.load(f"{NAME}:{candidate.version}").card.threshold == pytest.approx(candidate.threshold)
    metric = judging_metric(before.task, "retune_threshold")
    assert metric == "mcc"  # average precision cannot move with a threshold
    gate = challenge_flow(NAME, candidate.version, str(recent), 0.5, metric)
    low, high = gate.difference_ci
    assert gate.metric == "mcc" and low <= high and gate.passed == (low > 0)


@pytest.mark.slow
def test_a_challenger_no_better_than_the_champion_is_not_promoted(champion, tables):
    """The champion judged against itself on recent rows: the difference is exactly 0, never more than noise."""
    from poise.pipelines.recover import challenge_flow

    version = champion.candidate.version
    gate = challenge_flow(NAME, version, str(tables["shifted"]), 0.5, "average_precision")
    assert not gate.passed and gate.difference_ci == (0.0, 0.0)
    assert gate.candidate_score == gate.champion_score and "not better by more than noise" in gate.reasons[0]
    assert versions.alias_version(NAME, "champion") == version


@pytest.mark.slow
def test_an_approved_challenger_that_learned_the_new_data_replaces_a_lost_champion(champion, tables, lifecycle):
    """Last in the module: it moves @champion. Torque and speed arrive swapped; the champion, reading each as
    the other, ranks failures barely better than chance, while a retrain on the recent rows learns them
    again, so the paired bootstrap must find the challenger better and the gate must let it through."""
    view = lifecycle.recover(NAME, current=str(tables["swapped"]), budget_seconds=20)
    assert {f["column"] for f in view.values["report"]["features"] if f["drifted"]} >= {
        "torque_nm", "rotational_speed_rpm"}
    assert view.values["report"]["decay"] > 0.3
    assert view.values["recovery"]["action"] == "retrain" and view.status == AWAITING_APPROVAL

    view = lifecycle.approve(view.run_id, approver="dana")
    gate = view.values["gate"]
    low, high = gate["difference_ci"]
    assert 0 < low <= gate["candidate_score"] - gate["champion_score"] <= high
    assert gate["passed"] and view.status == "deployed"
    challenger = view.values["candidate"]["version"]
    assert versions.alias_version(NAME, "champion") == challenger != champion.candidate.version
    assert versions.alias_version(NAME, "previous") == champion.candidate.version
    events = lifecycle.journal.events(view.run_id)
    assert [e.step for e in events] == ["monitor", "diagnose", "recompose", "approve", "train", "gate", "deploy"]
    approval = events[3]
    assert approval.mind == "person" and approval.approver == "dana"
