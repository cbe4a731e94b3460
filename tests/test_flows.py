"""The Prefect flows for real, on the embedded default: a temporary local Prefect server under
POISE_HOME, MLflow on SQLite, and a real model server told about the promotion."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import httpx
import pytest

from poise.contracts import GateReport, Plan, SearchSpace, TaskSpec
from poise.pipelines.deploy import deploy_flow
from poise.pipelines.runtime import is_transient
from poise.pipelines.train import train_flow
from poise.processes import free_port, wait_for
from poise.registry import servers, versions
from poise.settings import get_settings
from tests.conftest import DATA

PIMA = DATA / "pima_diabetes.csv"
NAME = "flows-pima"
TINY = Plan(search=SearchSpace(strategies=["none"], models=["logistic_regression"]),
            budget_seconds=20, max_trials=1, cv_folds=3, ensemble_size=1)


@pytest.fixture(scope="module")
def trained():
    first = train_flow(TaskSpec(data=str(PIMA), target="target", model_name=NAME, budget_seconds=20), TINY)
    # as a deployment's parameters arrive: JSON, which Prefect validates into the contracts; this plan keeps the
    # holdout out of the registered model
    second = train_flow({"data": str(PIMA), "target": "target", "model_name": NAME, "budget_seconds": 20, "seed": 1},
                        {**TINY.model_dump(mode="json"), "final_fit_on_all_rows": False})
    return [first, second]


def _flow_run(flow_run_id: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        only = FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        tasks = client.read_task_runs(flow_run_filter=only)
        artifacts = client.read_artifacts(flow_run_filter=only)
    return run, tasks, artifacts


@pytest.mark.slow
def test_the_train_flow_is_a_prefect_flow_run_linked_to_its_mlflow_run(trained):
    import mlflow

    outcome = trained[0]
    run, tasks, artifacts = _flow_run(outcome.flow_run_id)
    assert run.state.is_completed() and run.name == f"train-{NAME}"
    names = {t.name.rsplit("-", 1)[0] for t in tasks}
    assert {"load data", "profile the training part", "search strategies and models",
            "refit the winner on all training rows", "evaluate on the holdout", "register the model version",
            "compare with the champion"} <= names
    assert all(t.state.is_completed() for t in tasks)
    link = next(a for a in artifacts if a.key == "mlflow-run")
    assert outcome.candidate.run_id in link.data
    tags = mlflow.MlflowClient().get_run(outcome.candidate.run_id).data.tags
    assert tags["prefect.flow_run_id"] == outcome.flow_run_id
    assert (get_settings().home / "prefect").is_dir()  # Prefect's own state stays inside POISE_HOME


@pytest.mark.slow
def test_training_does_not_promote_the_deploy_flow_does(trained):
    first, second = trained
    assert versions.alias_version(NAME, "champion") is None
    assert first.gate.passed
    done = deploy_flow(NAME, first.candidate.version)  # the gate report is read back from the run
    assert done.promoted and done.previous is None
    assert versions.alias_version(NAME, "champion") == first.candidate.version
    run, tasks, _ = _flow_run(done.flow_run_id)
    assert run.name == f"deploy-{NAME}-v{first.candidate.version}"
    assert {t.name.rsplit("-", 1)[0] for t in tasks} == {"check the gate", "promote to champion",
                                                        "tell the model servers"}


@pytest.mark.slow
def test_a_version_gated_against_an_older_champion_is_not_promoted(trained):
    _, second = trained
    champion = versions.alias_version(NAME, "champion") or "1"
    passed = second.gate.model_copy(update={"passed": True, "champion_version": None})
    done = deploy_flow(NAME, second.candidate.version, passed)
    assert not done.promoted and "moved from no champion" in done.reasons[0]
    failed = GateReport(passed=False, metric="average_precision", candidate_score=0.1,
                        reasons=["average_precision 0.1 < floor 0.2"])
    done = deploy_flow(NAME, second.candidate.version, failed.model_dump(mode="json"))
    assert not done.promoted and "floor 0.2" in done.reasons[0]
    assert versions.alias_version(NAME, "champion") == champion


@pytest.mark.slow
def test_flow_parameters_are_validated_before_the_flow_runs(trained):
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="gate.passed"):
        deploy_flow(NAME, trained[1].candidate.version, {"passed": "perhaps", "metric": "mcc", "candidate_score": 0.5})
    with pytest.raises(ParameterTypeError, match="budget_seconds"):
        train_flow({"data": str(PIMA), "target": "target", "budget_seconds": -5})


@pytest.mark.slow
def test_promotion_tells_a_running_server_which_swaps_at_once(trained):
    """The server polls rarely here: the new version answers because the deploy flow told it."""
    import uvicorn

    from poise.deploy.server import create_app

    versions.promote(NAME, trained[0].candidate.version)
    app = create_app(NAME, poll_seconds=3600)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    note = servers.announce(get_settings().home, url, NAME)
    try:
        wait_for(lambda: server.started, timeout=10, what="uvicorn starting")
        assert httpx.get(f"{url}/model").json()["version"] == trained[0].candidate.version
        version = trained[1].candidate.version
        gate = GateReport(passed=True, metric="average_precision", candidate_score=0.8,
                          champion_version=trained[0].candidate.version, reasons=["test gate"])
        done = deploy_flow(NAME, version, gate)
        assert done.promoted and done.servers == {url: f"serving v{version}"}
        assert httpx.get(f"{url}/model").json()["version"] == version
    finally:
        servers.withdraw(note)
        server.should_exit = True
        thread.join(10)
    assert servers.running(get_settings().home, NAME) == []


@pytest.mark.slow
def test_the_registered_model_learns_from_every_row_and_is_compared_later_by_its_out_of_sample_scores():
    """After the holdout has judged the recipe, the registered model is trained on the holdout rows too; a later
    candidate is compared with it there by the scores its fold models gave those rows, never by its own."""
    import numpy as np

    name = "flows-pima-every-row"
    task = TaskSpec(data=str(PIMA), target="target", model_name=name, budget_seconds=20)
    first = train_flow(task, TINY)
    assert first.candidate.trained_on.startswith("all 768 labelled rows")
    champion = versions.load(f"{name}:{first.candidate.version}")
    assert champion.card.trained_on_holdout
    reference = versions.reference(name, first.candidate.version)
    holdout = reference[reference[versions.PART] == "holdout"]
    own = champion.predict(holdout[champion.card.features])["proba"].to_numpy()
    assert not np.allclose(own, holdout[versions.PROBA])  # it learned from these rows: its own scores differ

    versions.promote(name, first.candidate.version)
    second = train_flow(task, TINY)  # the same recipe on the same rows: the champion's honest score is the same
    assert second.gate.champion_score == pytest.approx(first.candidate.holdout_metrics["average_precision"])
    assert any(f"trained on {len(holdout)} of these holdout rows" in r for r in second.gate.reasons)


@pytest.mark.slow
def test_a_plan_may_keep_the_holdout_out_of_the_registered_model(trained):
    kept_out = trained[1]
    assert "the holdout was kept out (as the plan asks)" in kept_out.candidate.trained_on
    assert not versions.load(f"{NAME}:{kept_out.candidate.version}").card.trained_on_holdout
    assert versions.load(f"{NAME}:{trained[0].candidate.version}").card.trained_on_holdout


def test_only_what_another_try_can_fix_is_retried():
    from poise.errors import DataError

    assert is_transient(ConnectionError("reset by peer")) and is_transient(TimeoutError())
    assert not is_transient(DataError("no such file: x.csv", "check the path"))
    assert not is_transient(FileNotFoundError("x.csv")) and not is_transient(ValueError("bad plan"))
    assert not is_transient(RuntimeError("a bug")) and not is_transient(None)


def _raised_by(action) -> BaseException:
    try:
        action()
    except Exception as exc:  # the error itself is what is tested
        return exc
    raise AssertionError("nothing was raised")


def test_a_locked_database_is_retried_and_a_missing_table_is_not(tmp_path):
    """The real errors of SQLite, through SQLAlchemy too: judged by their result codes, not their words."""
    import sqlite3

    import sqlalchemy

    path = tmp_path / "store.db"
    holder = sqlite3.connect(path, timeout=0)
    holder.execute("create table runs (id int)")
    holder.commit()
    holder.execute("begin exclusive")  # another process writing: every other connection is locked out
    locked = _raised_by(lambda: sqlite3.connect(path, timeout=0).execute("select * from runs").fetchall())
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    with engine.connect() as connection:
        wrapped = _raised_by(lambda: connection.execute(sqlalchemy.text("select * from runs")).fetchall())
    holder.rollback()
    missing = _raised_by(lambda: sqlite3.connect(path, timeout=0).execute("select * from nowhere"))
    assert isinstance(locked, sqlite3.OperationalError) and is_transient(locked)
    assert isinstance(wrapped, sqlalchemy.exc.OperationalError) and is_transient(wrapped)
    assert isinstance(missing, sqlite3.OperationalError) and not is_transient(missing)


def test_mlflow_errors_are_judged_by_their_code_and_an_unreachable_server_is_retried(monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE

    assert is_transient(MlflowException("the store is busy", error_code=TEMPORARILY_UNAVAILABLE))
    assert not is_transient(MlflowException("no such run", error_code=RESOURCE_DOES_NOT_EXIST))
    port = free_port()  # nothing listens on it
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    unreachable = _raised_by(lambda: mlflow.MlflowClient(f"http://127.0.0.1:{port}").get_experiment("0"))
    assert isinstance(unreachable, MlflowException) and is_transient(unreachable)


RESTART = """
import os, signal, sys
from pathlib import Path
from poise.pipelines import runtime
home = Path(sys.argv[1])
runtime.start_prefect_server(home)
first = runtime._server
os.killpg(first.process.pid, signal.SIGKILL)  # the server dies at start-up, as under a busy start
first.process.wait()
runtime.wait_for_prefect_server()
print(first.url, runtime._server.url, os.environ["PREFECT_API_URL"])
"""


def test_a_local_prefect_server_that_stops_at_start_up_is_started_again_on_a_new_port(tmp_path):
    env = {**os.environ, "POISE_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "home" / "prefect")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-c", RESTART, str(tmp_path / "home")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second, pointed = done.stdout.split()
    assert first != second and pointed == second  # this process now talks to the one that answered
    log = (tmp_path / "home" / "logs" / "prefect-server.log").read_text()
    assert "stopped at start-up (exit code -9); starting it again on a new port" in log
