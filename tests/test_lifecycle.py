"""The lifecycle graph for real: LangGraph with SQLite checkpoints, approval from another process,
rejection, resume after a kill, edited plans, and the audit trail."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from poise.agents.audit import Journal
from poise.agents.brain import RuleBrain
from poise.agents.graph import AWAITING_APPROVAL, Lifecycle
from poise.contracts import SearchSpace
from poise.settings import get_settings
from tests.conftest import AI4I

POISE = [sys.executable, "-m", "poise.cli.main"]


def poise(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([*POISE, *args], capture_output=True, text=True, env=os.environ.copy(), timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"poise {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture
def table(tmp_path, request):
    """A copy of AI4I under a name of its own, so each test registers its own model."""
    path = tmp_path / f"{request.node.name[:40]}.csv"
    shutil.copy(AI4I, path)
    return path


def registered(name: str) -> bool:
    import mlflow

    from poise.registry.tracking import connect

    connect(get_settings())
    return any(m.name == name for m in mlflow.MlflowClient().search_registered_models())


def test_a_run_waits_for_approval_and_another_process_approves_it(table):
    lifecycle = Lifecycle(brain=RuleBrain())
    view = lifecycle.start(f"catch machine failures in {table}, precision at least 0.5, 10 seconds")
    assert view.status == AWAITING_APPROVAL and view.pending is not None
    assert view.task.metric == "recall_at_precision" and view.task.min_precision == 0.5
    assert view.task.budget_seconds == 10
    assert {"udi", "product_id"} <= set(view.plan.dropped_columns)
    lifecycle.close()

    approved = json.loads(poise("approve", view.run_id, "--as", "alice", "--json").stdout)
    assert approved["status"] == ("deployed" if approved["gate"]["passed"] else "gated out")
    assert approved["candidate"]["version"] == "1"
    assert approved["gate"]["reasons"]

    events = Journal(get_settings().home / "runs.db").events(view.run_id)
    deployed = ["deploy"] if approved["gate"]["passed"] else []
    assert [e.step for e in events] == ["understand", "profile", "plan", "approve", "train", "gate", *deployed]
    approval = events[3]
    assert approval.approver == "alice" and approval.mind == "person"
    assert all(e.mind == "rules" for e in events[:3])
    assert "audit trail" in poise("audit", view.run_id).stdout


def test_rejection_leaves_nothing_registered(table):
    lifecycle = Lifecycle(brain=RuleBrain())
    view = lifecycle.start(f"predict target in {table}, 10 seconds")
    view = lifecycle.reject(view.run_id, "wrong metric for this team", approver="bob")
    assert view.status == "rejected"
    assert not registered(table.stem.lower())
    event = lifecycle.journal.events(view.run_id)[-1]
    assert event.step == "approve" and "wrong metric" in event.summary and event.approver == "bob"
    done = poise("approve", view.run_id, check=False)
    assert done.returncode == 2 and "not waiting for approval" in done.stderr


def test_an_edited_plan_is_what_trains(table):
    lifecycle = Lifecycle(brain=RuleBrain())
    view = lifecycle.start(f"find failures in {table}; optimise MCC; 10 seconds")
    edited = view.plan.model_copy(update={"search": SearchSpace(strategies=["none"],
                                                                models=["logistic_regression", "made_up"]),
                                          "ensemble_size": 1})
    view = lifecycle.approve(view.run_id, edited, approver="carol")
    candidate = view.values["candidate"]
    assert candidate["strategy"] in ("none", "class_weight")  # class_weight always stands beside
    assert candidate["estimator"] == "logistic_regression"
    approval = [e for e in lifecycle.journal.events(view.run_id) if e.step == "approve"][0]
    assert any("made_up" in r for r in approval.repairs)


def test_a_killed_run_resumes_from_its_last_checkpoint(table):
    journal = Journal(get_settings().home / "runs.db")
    before = {r["run_id"] for r in journal.runs()}
    process = subprocess.Popen([*POISE, "run", f"catch failures in {table}, 20 seconds", "--auto-approve"],
                               env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_id = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        new = [r for r in journal.runs() if r["run_id"] not in before]
        if new and new[0]["status"] == "training":
            run_id = new[0]["run_id"]
            break
        time.sleep(0.5)
    assert run_id is not None, "the run never reached training"
    time.sleep(3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert journal.run(run_id)["status"] == "training"

    resumed = json.loads(poise("resume", run_id, "--json").stdout)
    assert resumed["status"] == ("deployed" if resumed["gate"]["passed"] else "gated out")
    assert resumed["candidate"]["version"] == "1"
    steps = [e.step for e in journal.events(run_id)]
    assert steps.count("understand") == 1 and steps.count("plan") == 1
    assert steps[-1] == ("deploy" if resumed["gate"]["passed"] else "gate")


def test_plan_only_prints_task_and_plan_and_trains_nothing(table):
    done = poise("plan", "spot machine failures, keep precision above 0.6, 90 s", "--data", str(table), "--json")
    result = json.loads(done.stdout)
    assert result["task"]["min_precision"] == 0.6 and result["task"]["budget_seconds"] == 90
    assert result["task"]["data"] == str(table)
    assert result["plan"]["search"]["strategies"]
    assert not registered(table.stem.lower())
