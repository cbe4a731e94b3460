"""The lifecycle graph for real: LangGraph with SQLite checkpoints, approval from another process,
rejection, resume after a kill, edited plans, and the audit trail."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys

import pytest

from poise.agents.audit import AWAITING_APPROVAL, Journal
from poise.agents.brain import RuleBrain
from poise.agents.runner import Lifecycle
from poise.contracts import SearchSpace
from poise.processes import wait_for
from poise.settings import get_settings
from tests.conftest import AI4I

pytestmark = pytest.mark.slow  # every test here starts poise or trains a model
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


def _trials_logged(model: str) -> int:
    """Trials the searches of ``model`` have logged so far, read straight from MLflow's store."""
    store = get_settings().home / "mlflow.db"
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=5) as con:
            return con.execute("select count(*) from tags trial join tags search on search.run_uuid = trial.value "
                               "where trial.key = 'mlflow.parentRunId' and search.key = 'poise.model' "
                               "and search.value = ?", (model,)).fetchone()[0]
    except sqlite3.OperationalError:  # the store's tables are not created yet
        return 0


def test_a_killed_run_resumes_from_its_last_checkpoint(table):
    journal = Journal(get_settings().home / "runs.db")
    before = {r["run_id"] for r in journal.runs()}
    process = subprocess.Popen([*POISE, "run", f"catch failures in {table}, 10 seconds", "--auto-approve"],
                               env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def training() -> str | None:
            assert process.poll() is None, "poise run ended before its training began"
            new = [r for r in journal.runs() if r["run_id"] not in before]
            return new[0]["run_id"] if new and new[0]["status"] == "training" else None

        run_id = wait_for(training, timeout=300, interval=0.5, what="the run reaching training")
        # killed in the middle of the search, once it has logged a trial
        wait_for(lambda: _trials_logged(table.stem.lower()), timeout=300, interval=0.2, what="a first trial")
    finally:
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


# ---------------------------------------------------------------------- the user's words, kept or refused
@pytest.fixture
def small_table(tmp_path, request):
    """The first 2000 rows of AI4I (about 60 failures): planning and a 10 s search stay quick."""
    path = tmp_path / f"{request.node.name[:40]}.csv"
    path.write_text("".join(AI4I.read_text().splitlines(keepends=True)[:2001]))
    return path


def test_a_named_target_the_table_lacks_is_refused_before_anything_trains(small_table):
    done = poise("run", f"predict churn in {small_table}, 10 seconds", "--auto-approve", check=False)
    assert done.returncode == 2, done.stdout
    assert "'churn'" in done.stderr and "no such column" in done.stderr and "fix:" in done.stderr
    assert "Traceback" not in done.stderr
    assert not registered(small_table.stem.lower())


def test_what_poise_chose_or_did_not_understand_is_shown_at_plan_time(small_table):
    text = "catch machine failures, Präzision mindestens 50 %, 5-fold CV, 10 Sekunden"
    shown = poise("plan", text, "--data", str(small_table)).stdout
    assert "precision ≥ 0.5" in shown and "10 s" in shown  # the German words are read
    assert "not understood: '5-fold'" in shown
    assert "names no column → 'target'" in shown
    for text, said in (("catch failures, precision at least 150%, 10 seconds", "more than 100%"),
                       ("catch failures within 99999 hours", "99999 hours")):
        done = poise("plan", text, "--data", str(small_table), check=False)
        assert done.returncode == 2 and said in done.stderr


def test_an_edited_plan_of_unknown_names_is_refused_and_a_partly_known_one_repaired_aloud(small_table, tmp_path):
    import yaml

    lifecycle = Lifecycle(brain=RuleBrain())
    view = lifecycle.start(f"find failures in {small_table}; optimise MCC; 10 seconds")
    lifecycle.close()
    shown = poise("show", view.run_id).stdout
    assert "names no column → 'target'" in shown  # where the person decides, not only in the audit
    notices = json.loads(poise("show", view.run_id, "--json").stdout)["notices"]
    assert any(n["step"] == "understand" and n["kind"] == "repaired" and "names no column" in n["text"]
               for n in notices)
    plan = view.values["plan"]
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(yaml.safe_dump({**plan, "search": {"strategies": ["magic", "gan"], "models": ["mlp"]}}))
    done = poise("approve", view.run_id, "--plan", str(unknown), check=False)
    assert done.returncode == 2
    assert "'magic', 'gan'" in done.stderr and "class_weight" in done.stderr
    assert json.loads(poise("show", view.run_id, "--json").stdout)["status"] == AWAITING_APPROVAL  # still waiting
    partly = tmp_path / "partly.yaml"
    partly.write_text(yaml.safe_dump({**plan, "ensemble_size": 1,
                                      "search": {"strategies": ["none", "magic"], "models": ["logistic_regression"]}}))
    approved = poise("approve", view.run_id, "--plan", str(partly)).stdout
    before_training = approved.split("logistic_regression, holdout")[0]
    assert "approve: repaired: strategy 'magic' removed" in before_training
    assert "logistic_regression" in approved
