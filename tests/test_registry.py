"""MLflow for real (SQLite under a temporary POISE_HOME): register, load, predict, promote."""

from __future__ import annotations

import pandas as pd
import pytest

from poise.contracts import Plan, SearchSpace, TaskSpec
from poise.errors import ModelNotFoundError
from poise.pipelines.train import default_model_name, train
from poise.registry import versions
from poise.registry.model import ModelInputError
from tests.conftest import DATA

PIMA = DATA / "pima_diabetes.csv"


@pytest.fixture(scope="module")
def trained():
    """Two quick trainings of one model name on real data (pima, 768 rows)."""
    quick = Plan(search=SearchSpace(strategies=["none", "class_weight"], models=["logistic_regression"]),
                 budget_seconds=30, max_trials=2, cv_folds=3)
    first = train(TaskSpec(data=str(PIMA), target="target", model_name="pima", budget_seconds=30), quick)
    second = train(TaskSpec(data=str(PIMA), target="target", model_name="pima", budget_seconds=30, seed=1), quick,
                   promote_if_passed=False)
    return first, second


@pytest.mark.slow
def test_training_registers_a_version_with_lineage(trained):
    import mlflow

    first, second = trained
    assert (first.candidate.version, second.candidate.version) == ("1", "2")
    assert first.promoted and not second.promoted
    assert versions.alias_version("pima", "champion") == "1"
    assert versions.alias_version("pima", "challenger") == "2"
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(first.candidate.run_id)}
    assert {"task.json", "profile.json", "plan.json", "candidate.json", "trials.json", "gate.json"} <= artifacts
    run = client.get_run(first.candidate.run_id)
    assert run.data.tags["poise.fingerprint"] == first.profile.fingerprint
    assert "holdout.average_precision" in run.data.metrics
    trials = client.search_runs([run.info.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(trials) == first.candidate.n_trials == 2
    assert all("strategy" in t.data.params for t in trials)


@pytest.mark.slow
def test_json_artifacts_read_back_as_they_were_logged(trained):
    import numpy as np

    from poise.contracts import Candidate
    from poise.registry import tracking
    from poise.settings import get_settings

    first, _ = trained
    assert Candidate.model_validate(tracking.read_json(first.candidate.run_id, "candidate.json")) == first.candidate
    with tracking.search_run(get_settings(), run_name="json-artifacts") as run:
        run.log_json("plans.json", [first.plan, {"note": "plain"}])
        run.log_json("odd.json", {"count": np.int64(3), "share": 0.25})
    plans = tracking.read_json(run.run_id, "plans.json")
    assert Plan.model_validate(plans[0]) == first.plan and plans[1] == {"note": "plain"}
    assert tracking.read_json(run.run_id, "odd.json") == {"count": "3", "share": 0.25}  # str() of what JSON lacks
    assert tracking.read_json(run.run_id, "absent.json") is None


@pytest.mark.slow
def test_loaded_model_predicts_labels_and_probabilities(trained):
    first, _ = trained
    frame = pd.read_csv(PIMA)
    loaded = versions.load("pima:1")
    scored = loaded.predict(frame)
    assert list(scored.columns) == ["proba", "pred"] and len(scored) == len(frame)
    assert set(scored["pred"]) <= {0, 1}
    assert ((scored["proba"] >= first.candidate.threshold) == (scored["pred"] == 1)).all()


@pytest.mark.slow
def test_model_as_plain_mlflow_pyfunc(trained):
    import mlflow

    frame = pd.read_csv(PIMA).drop(columns=["target"])
    pyfunc = mlflow.pyfunc.load_model("models:/pima@champion")
    assert list(pyfunc.predict(frame.head(3)).columns) == ["proba", "pred"]


@pytest.mark.slow
def test_input_errors_name_the_columns(trained):
    loaded = versions.load("pima")
    frame = pd.read_csv(PIMA)
    with pytest.raises(ModelInputError, match="missing column.*'glucose'"):
        loaded.predict(frame.drop(columns=["glucose"]))
    with pytest.raises(ModelInputError, match="does not know: 'colour'"):
        loaded.predict(frame.assign(colour="red"))
    assert len(loaded.predict(frame.assign(colour="red"), allow_extra=True)) == len(frame)
    with pytest.raises(ModelInputError, match="'bmi' must be numeric"):
        loaded.predict(frame.assign(bmi="heavy"))


@pytest.mark.slow
def test_promote_moves_champion_and_keeps_previous(trained):
    assert versions.promote("pima", 2) == "1"
    assert versions.alias_version("pima", "champion") == "2"
    assert versions.alias_version("pima", "previous") == "1"
    assert versions.resolve("pima") == ("pima", "2")
    assert versions.resolve("pima@previous") == ("pima", "1")
    versions.promote("pima", 1)  # back, for the other tests


@pytest.mark.slow
def test_references_that_do_not_exist_are_clear_errors(trained):
    with pytest.raises(ModelNotFoundError, match="no registered model named 'nope'"):
        versions.resolve("nope")
    with pytest.raises(ModelNotFoundError, match="no version 99"):
        versions.resolve("pima:99")
    with pytest.raises(ModelNotFoundError, match="no alias @gold"):
        versions.resolve("pima@gold")


def test_default_model_name_comes_from_the_file():
    assert default_model_name("data/AI4I 2020.csv.gz") == "ai4i-2020"


def test_a_model_says_which_packages_differ_from_those_it_was_trained_with():
    from importlib import metadata

    from poise.registry.versions import version_mismatches

    here = metadata.version("pandas")
    found = version_mismatches([f"pandas=={here}", "numpy==0.0.1", "no-such-package-here==1.0"])
    assert found == [f"numpy (trained with 0.0.1, here {metadata.version('numpy')})",
                     "no-such-package-here (trained with 1.0, here not installed)"]
