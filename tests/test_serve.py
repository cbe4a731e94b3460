"""The model server for real: a trained pima model, the FastAPI app, MLflow aliases moving under it.

Two quick versions are trained once for the module; every test that moves @champion puts it back
on v1 first (``on_v1``), so the tests do not depend on their order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from poise.contracts import Plan, SearchSpace, TaskSpec
from poise.errors import ModelNotFoundError, PoiseError
from poise.processes import free_port, wait_for
from poise.registry import versions
from tests.conftest import DATA, ROOT

PIMA = DATA / "pima_diabetes.csv"
NAME = "serve-pima"
TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def trained() -> pd.DataFrame:
    """Versions 1 and 2 of NAME (logistic regression, one trial each); returns the feature rows."""
    from poise.pipelines.train import train

    tiny = Plan(search=SearchSpace(strategies=["none"], models=["logistic_regression"]),
                budget_seconds=20, max_trials=1, cv_folds=3, ensemble_size=1)
    for seed in (0, 1):
        train(TaskSpec(data=str(PIMA), target="target", model_name=NAME, budget_seconds=20, seed=seed), tiny,
              promote_if_passed=False)
    return pd.read_csv(PIMA).drop(columns=["target"])


@pytest.fixture
def on_v1(trained: pd.DataFrame) -> pd.DataFrame:
    versions.promote(NAME, 1)
    return trained


@pytest.fixture
def client(on_v1: pd.DataFrame):
    from fastapi.testclient import TestClient

    from poise.deploy.server import create_app

    with TestClient(create_app(NAME, poll_seconds=0.2, token=None)) as test_client:
        yield test_client


def records(frame: pd.DataFrame, n: int) -> list[dict]:
    return frame.head(n).to_dict(orient="records")


# --- predictions ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_predicts_one_record_and_a_batch(client, on_v1):
    one = client.post("/predict", json={"record": records(on_v1, 1)[0]})
    assert one.status_code == 200, one.text
    body = one.json()
    assert (body["model"], body["version"], one.headers["X-Model-Version"]) == (NAME, "1", "1")
    assert len(body["predictions"]) == 1 and body["request_id"]

    many = client.post("/predict", json={"records": records(on_v1, 50)}).json()
    expected = versions.load(f"{NAME}:1").predict(on_v1.head(50))
    assert [p["pred"] for p in many["predictions"]] == expected["pred"].tolist()
    assert all(p["pred"] in (0, 1) and isinstance(p["pred"], int) for p in many["predictions"])
    assert all(0.0 <= p["proba"] <= 1.0 for p in many["predictions"])
    assert [p["proba"] for p in many["predictions"]] == pytest.approx(expected["proba"].tolist())


@pytest.mark.slow
def test_predicts_an_uploaded_csv(client, on_v1):
    text = on_v1.head(20).to_csv(index=False)
    upload = client.post("/predict/csv", files={"file": ("rows.csv", text, "text/csv")})
    assert upload.status_code == 200, upload.text
    assert upload.json()["version"] == "1" and len(upload.json()["predictions"]) == 20
    raw = client.post("/predict/csv", content=on_v1.head(5).to_csv(index=False, sep=";"),
                      headers={"Content-Type": "text/csv"})
    assert raw.status_code == 200, raw.text
    assert raw.json()["predictions"] == upload.json()["predictions"][:5]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: {k: v for k, v in r.items() if k != "glucose"}, "'glucose'"),
        (lambda r: {**r, "bmi": "heavy"}, "'bmi'"),
        (lambda r: {**r, "colour": "red"}, "'colour'"),
        (lambda r: {**r, "age": {"years": 50}}, "age"),
    ],
    ids=["missing column", "text in a numeric column", "unknown column", "nested value"],
)
@pytest.mark.slow
def test_bad_records_are_422_naming_the_field(client, on_v1, change, named):
    response = client.post("/predict", json={"records": [records(on_v1, 1)[0], change(records(on_v1, 2)[1])]})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert named in detail["problem"] and detail["fix"]


@pytest.mark.slow
def test_unknown_columns_pass_when_allowed(client, on_v1):
    row = {**records(on_v1, 1)[0], "colour": "red"}
    assert client.post("/predict?allow_extra=true", json={"record": row}).status_code == 200


@pytest.mark.slow
def test_other_malformed_requests_are_422(client, on_v1):
    row = records(on_v1, 1)[0]
    cases = {
        "empty batch": ({"records": []}, "records"),
        "neither shape": ({"rows": [row]}, "rows"),
        "both shapes": ({"record": row, "records": [row]}, "either"),
        "a record without a feature others carry": (
            {"records": [row, {k: v for k, v in row.items() if k != "age"}]}, "record 1 lacks 'age'"),
    }
    for case, (body, named) in cases.items():
        response = client.post("/predict", json=body)
        assert response.status_code == 422, case
        assert named in response.json()["detail"]["problem"], case
    bad_csv = on_v1.head(3).assign(bmi=["1", "x", "2"]).to_csv(index=False)
    response = client.post("/predict/csv", files={"file": ("rows.csv", bad_csv, "text/csv")})
    assert response.status_code == 422 and "'bmi'" in response.json()["detail"]["problem"]
    for empty in ("", ",".join(on_v1.columns) + "\n"):
        assert client.post("/predict/csv", content=empty, headers={"Content-Type": "text/csv"}).status_code == 422


@pytest.mark.slow
def test_infinite_and_nan_numbers_are_422_naming_the_field(client, on_v1):
    row = records(on_v1, 1)[0]
    for value, shown in ((float("inf"), "inf"), (float("-inf"), "-inf"), (float("nan"), "nan")):
        response = client.post("/predict", content=json.dumps({"records": [row, {**row, "bmi": value}]}),
                               headers={"Content-Type": "application/json"})  # JSON Infinity / NaN literals
        assert response.status_code == 422, response.text
        assert f"record 1 field 'bmi' is {shown}" in response.json()["detail"]["problem"]
    text = on_v1.head(3).assign(bmi=["30.1", "inf", "-inf"]).to_csv(index=False)
    response = client.post("/predict/csv", content=text, headers={"Content-Type": "text/csv"})
    assert response.status_code == 422, response.text
    assert "infinite values" in response.json()["detail"]["problem"] and "'bmi'" in response.json()["detail"]["problem"]


@pytest.mark.slow
def test_an_uploaded_european_csv_scores_as_its_numbers_and_says_how_it_was_read(client, on_v1):
    rows = on_v1.head(30).astype(float)
    plain = client.post("/predict/csv", content=rows.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert plain.status_code == 200 and plain.json()["warnings"] == []
    european = rows.to_csv(index=False, sep=";", decimal=",")
    upload = client.post("/predict/csv", files={"file": ("rows.csv", european.encode("cp1252"), "text/csv")})
    assert upload.status_code == 200, upload.text
    assert upload.json()["predictions"] == plain.json()["predictions"]
    assert upload.json()["warnings"] == ["numbers use a decimal comma, and were read so"]
    assert client.post("/predict", json={"record": records(on_v1, 1)[0]}).json()["warnings"] == []


@pytest.mark.slow
def test_an_upload_over_the_limit_is_413_naming_it(on_v1):
    import httpx
    from fastapi.testclient import TestClient

    from poise.deploy.server import create_app

    text = on_v1.head(40).to_csv(index=False)
    limit = len(text) - 1
    with TestClient(create_app(NAME, poll_seconds=600, token=None, max_csv_bytes=limit)) as small:

        def chunks(body: bytes):  # no Content-Length: the server has to count what arrives
            yield from (body[start:start + 100] for start in range(0, len(body), 100))

        form = httpx.Request("POST", "http://server/predict/csv", files={"file": ("rows.csv", text, "text/csv")})
        for sent in ({"content": text, "headers": {"Content-Type": "text/csv"}},
                     {"files": {"file": ("rows.csv", text, "text/csv")}},
                     {"content": chunks(text.encode()), "headers": {"Content-Type": "text/csv"}},
                     {"content": chunks(form.read()), "headers": {"Content-Type": form.headers["Content-Type"]}}):
            response = small.post("/predict/csv", **sent)
            assert response.status_code == 413, response.text
            detail = response.json()["detail"]
            assert f"limit of {limit:,} bytes" in detail["problem"] and f"at most {limit:,} bytes" in detail["fix"]
        fits = small.post("/predict/csv", content=text[: text.index("\n", 1000)], headers={"Content-Type": "text/csv"})
        assert fits.status_code == 200, fits.text


@pytest.mark.slow
def test_a_csv_sent_as_a_form_body_or_under_another_field_is_still_the_csv(client, on_v1):
    text = on_v1.head(10).to_csv(index=False, sep=";")  # curl --data-binary @rows.csv says it is a form
    as_form = client.post("/predict/csv", content=text, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert as_form.status_code == 200, as_form.text
    other_field = client.post("/predict/csv", files={"rows": ("rows.csv", text, "text/csv")})
    assert other_field.status_code == 200, other_field.text
    assert other_field.json()["predictions"] == as_form.json()["predictions"]
    assert len(as_form.json()["predictions"]) == 10
    form_without_file = b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nforgot the file\r\n--b--\r\n'
    no_file = client.post("/predict/csv", content=form_without_file,
                          headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert no_file.status_code == 422 and "no file part" in no_file.json()["detail"]["problem"]


# --- status -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_model_and_health_describe_the_served_version(client):
    info = client.get("/model").json()
    assert (info["name"], info["version"], info["alias"]) == (NAME, "1", "champion")
    assert 0.0 < info["threshold"] < 1.0 and "average_precision" in info["holdout_metrics"]
    assert "glucose" in info["features"] and info["trained_at"] and info["created_at"]
    assert (info["positive_label"], info["negative_label"]) == (1, 0)
    health = client.get("/health").json()
    assert health["status"] == "ok" and (health["model"], health["version"]) == (NAME, "1")
    assert health["loaded_at"] and health["last_swap_error"] is None
    assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200


@pytest.mark.slow
def test_every_answer_is_the_model_its_route_documents(client, on_v1):
    from poise.deploy import schemas

    api = client.get("/openapi.json").json()

    def documented(method: str, path: str) -> str:
        return api["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]

    text = on_v1.head(3).to_csv(index=False)
    answers = {
        ("get", "/health"): (client.get("/health"), schemas.HealthResponse),
        ("get", "/model"): (client.get("/model"), schemas.ModelInfo),
        ("post", "/predict"): (client.post("/predict", json={"record": records(on_v1, 1)[0]}), schemas.PredictResponse),
        ("post", "/predict/csv"): (client.post("/predict/csv", content=text, headers={"Content-Type": "text/csv"}),
                                   schemas.PredictResponse),
        ("post", "/admin/reload"): (client.post("/admin/reload"), schemas.ReloadResponse),
    }
    request_id = answers["post", "/predict"][0].json()["request_id"]
    answers["post", "/feedback"] = (client.post("/feedback", json={"request_id": request_id, "labels": [1]}),
                                    schemas.FeedbackResponse)
    for (method, path), (response, model) in answers.items():
        assert response.status_code == 200, (path, response.text)
        assert documented(method, path) == f"#/components/schemas/{model.__name__}", path
        assert model.model_validate(response.json()).model_dump(mode="json") == response.json(), path  # no extra keys
    upload = api["paths"]["/predict/csv"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data", "text/csv"}


@pytest.mark.slow
def test_the_model_to_serve_is_named_or_the_only_one(trained, monkeypatch):
    from poise.deploy import server

    assert server.pick_model(NAME) == NAME
    with pytest.raises(ModelNotFoundError, match="no registered model named 'nope'"):
        server.pick_model("nope")
    with pytest.raises(PoiseError, match="always follows @champion"):
        server.pick_model(f"{NAME}:2")
    monkeypatch.setattr(versions, "list_models", lambda: [{"name": "only"}])
    assert server.pick_model(None) == "only"
    monkeypatch.setattr(versions, "list_models", lambda: [{"name": "a"}, {"name": "b"}])
    with pytest.raises(PoiseError, match="2 registered models"):
        server.pick_model(None)
    monkeypatch.setattr(versions, "list_models", lambda: [])
    with pytest.raises(PoiseError, match="no registered model to serve"):
        server.pick_model(None)


# --- auth and binding -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_token_guards_everything_but_health_and_docs(on_v1):
    from fastapi.testclient import TestClient

    from poise.deploy.server import create_app

    row = records(on_v1, 1)[0]
    with TestClient(create_app(NAME, poll_seconds=0.2, token=TOKEN)) as guarded:
        assert guarded.post("/predict", json={"record": row}).status_code == 401
        wrong = guarded.post("/predict", json={"record": row}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
        assert guarded.get("/model").status_code == 401
        assert guarded.post("/admin/reload").status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert guarded.post("/predict", json={"record": row}, headers=auth).status_code == 200
        assert guarded.get("/model", headers=auth).status_code == 200
        assert guarded.get("/health").status_code == 200
        assert guarded.get("/openapi.json").status_code == 200


def test_refuses_to_bind_beyond_loopback_without_a_token(monkeypatch):
    from poise.deploy.server import is_loopback, serve

    monkeypatch.delenv("POISE_SERVE_TOKEN", raising=False)
    with pytest.raises(PoiseError, match="binding to 0.0.0.0 without a token") as caught:
        serve(NAME, host="0.0.0.0", port=8000, token=None)
    assert "POISE_SERVE_TOKEN" in (caught.value.fix or "")
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.7", "example.org"))


@pytest.mark.slow
def test_a_real_uvicorn_server_on_loopback(on_v1):
    import httpx
    import uvicorn

    from poise.deploy.server import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(NAME, poll_seconds=0.2, token=TOKEN), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=20, what="uvicorn starting")
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").json()["version"] == "1"
        row = records(on_v1, 1)[0]
        assert httpx.post(f"{base}/predict", json={"record": row}).status_code == 401
        answer = httpx.post(f"{base}/predict", json={"record": row}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


# --- prediction log and feedback --------------------------------------------------------------------------------


@pytest.mark.slow
def test_predictions_are_logged_and_labels_attach_later(client, on_v1):
    from poise.registry.predictions import PredictionStore, default_path

    answer = client.post("/predict", json={"records": records(on_v1, 3)}).json()
    request_id = answer["request_id"]
    assert client.post("/feedback", json={"request_id": request_id, "labels": [1, 0, "1"]}).json()["labelled"] == 3
    assert client.post("/feedback", json={"request_id": request_id, "row": 1, "label": 1}).status_code == 200

    window = PredictionStore(default_path()).window(NAME)
    mine = window[window["request_id"] == request_id].sort_values("row")
    assert mine["row"].tolist() == [0, 1, 2] and set(mine["version"]) == {"1"}
    assert mine["label"].tolist() == [1, 1, 1]
    assert mine["glucose"].tolist() == on_v1["glucose"].head(3).tolist()
    assert mine["proba"].tolist() == pytest.approx([p["proba"] for p in answer["predictions"]])
    assert mine["pred"].tolist() == [p["pred"] for p in answer["predictions"]]
    assert mine["at"].notna().all() and mine["labelled_at"].notna().all()

    unknown = client.post("/feedback", json={"request_id": "no-such-request", "labels": [1]})
    assert unknown.status_code == 404 and "no-such-request" in unknown.json()["detail"]["problem"]
    assert client.post("/feedback", json={"request_id": request_id, "labels": [1]}).status_code == 422
    wrong = client.post("/feedback", json={"request_id": request_id, "labels": [1, 0, "maybe"]})
    assert wrong.status_code == 422 and "'maybe'" in wrong.json()["detail"]["problem"]
    assert client.post("/feedback", json={"request_id": request_id, "row": 7, "label": 1}).status_code == 422
    assert client.post("/feedback", json={"request_id": request_id}).status_code == 422


def test_store_window_filters_and_bulk_labels(tmp_path):
    from datetime import UTC, datetime

    from poise.registry.predictions import PredictionStore, RowId

    store = PredictionStore(tmp_path / "predictions.db")
    frame = pd.DataFrame({"x": [1.0, None], "label": ["a", "b"]})  # an input named like a meta column
    first = store.log("m", "1", frame, [0.2, 0.9], ["no", "yes"])
    cut = datetime.now(UTC)
    second = store.log("m", "2", frame.head(1), [0.6], ["yes"])
    store.log("other", "1", frame.head(1), [0.1], ["no"])
    assert len(store.window("m")) == 3 and store.window("m", last_n=1)["request_id"].tolist() == [second[0][0]]
    assert store.window("m", since=cut)["version"].tolist() == ["2"]
    assert store.window("m", version="1")["input.label"].tolist() == ["a", "b"]
    labels = pd.DataFrame({"request_id": [first[0][0], first[0][0], "nope"], "row": [0, 1, 0],
                           "label": ["no", "yes", "no"]})
    outcome = store.attach_labels_frame(labels)
    assert outcome.labelled == 2 and outcome.unknown == [RowId("nope", 0)]
    assert store.window("m", version="1")["label"].tolist() == ["no", "yes"]


@pytest.mark.slow
def test_feedback_command_attaches_a_csv_of_labels(client, on_v1, tmp_path):
    from typer.testing import CliRunner

    from poise.registry.predictions import PredictionStore, default_path

    request_id = client.post("/predict", json={"records": records(on_v1, 2)}).json()["request_id"]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": [request_id, request_id, "gone"], "row": [0, 1, 0], "label": [0, 1, 1]}).to_csv(
        labels, index=False)
    result = CliRunner().invoke(_cli(), ["feedback", str(labels)])
    assert result.exit_code == 0, result.output
    assert "2 of 3 row(s) labelled" in result.output
    window = PredictionStore(default_path()).window(NAME)
    assert window.loc[window["request_id"] == request_id, "label"].tolist() == [0, 1]


# --- hot swap and rollback --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_hot_swap_under_load_drops_no_request(client, on_v1):
    row = records(on_v1, 1)[0]
    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                response = client.post("/predict", json={"record": row})
            except Exception as exc:  # any failure counts
                failures.append(repr(exc))
                continue
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text}")
            elif response.json()["version"] != response.headers["X-Model-Version"]:
                failures.append("body and header disagree")
            else:
                seen.append(response.json()["version"])
            time.sleep(0.005)

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        wait_for(lambda: len(seen) >= 20 or failures, timeout=30, what="20 answers from v1")  # load before the swap
        versions.promote(NAME, 2)
        wait_for(lambda: seen[-20:].count("2") == 20 or failures, timeout=30, what="20 answers in a row from v2")
    finally:
        stop.set()
        worker.join(timeout=10)
    assert failures == []
    assert set(seen) == {"1", "2"}
    switch = seen.index("2")
    assert set(seen[:switch]) == {"1"} and set(seen[switch:]) == {"2"}, "a request saw v1 after v2"
    assert client.get("/health").json()["version"] == "2"


@pytest.mark.slow
def test_a_version_that_fails_to_load_leaves_the_old_one_serving(client, on_v1):
    import mlflow

    broken = mlflow.MlflowClient().create_model_version(NAME, source=str(ROOT / "no-such-artifacts" / "model"))
    row = records(on_v1, 1)[0]
    mlflow.MlflowClient().set_registered_model_alias(NAME, versions.CHAMPION, broken.version)
    wait_for(lambda: client.get("/health").json()["last_swap_error"], timeout=15, interval=0.1,
             what="the server noting the failed swap")
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["version"] == "1"
    assert health["last_swap_error"]["version"] == str(broken.version)
    assert f"could not load v{broken.version}" in health["last_swap_error"]["error"]
    answer = client.post("/predict", json={"record": row})
    assert answer.status_code == 200 and answer.json()["version"] == "1"
    forced = client.post("/admin/reload").json()  # retries at once, fails again, still v1
    assert forced["changed"] is False and forced["version"] == "1" and forced["last_swap_error"]

    versions.promote(NAME, 1)  # champion back where the server is: the error clears
    wait_for(lambda: client.get("/health").json()["status"] == "ok", timeout=15, interval=0.1,
             what="the server clearing the error")
    assert client.get("/health").json()["last_swap_error"] is None


@pytest.mark.slow
def test_admin_reload_swaps_at_once(on_v1):
    from fastapi.testclient import TestClient

    from poise.deploy.server import create_app

    with TestClient(create_app(NAME, poll_seconds=600)) as slow_poller:
        versions.promote(NAME, 2)
        answer = slow_poller.post("/admin/reload").json()
        assert answer["changed"] is True and answer["version"] == "2"
        assert slow_poller.post("/predict", json={"record": records(on_v1, 1)[0]}).json()["version"] == "2"


@pytest.mark.slow
def test_rollback_swaps_champion_and_previous(client, on_v1):
    from typer.testing import CliRunner

    from poise.registry.versions import rollback

    versions.promote(NAME, 2)
    assert rollback(NAME) == ("2", "1")
    assert (versions.alias_version(NAME, "champion"), versions.alias_version(NAME, "previous")) == ("1", "2")
    result = CliRunner().invoke(_cli(), ["rollback", NAME])
    assert result.exit_code == 0 and "v2 (was v1, now @previous)" in result.output
    from poise.agents.audit import Journal
    from poise.settings import get_settings

    journal = Journal(get_settings().home / "runs.db")
    last = journal.runs(limit=1)[0]
    assert (last["kind"], last["model"], last["version"]) == ("rollback", NAME, "2")
    event = journal.events(last["run_id"])[0]
    assert event.mind == "person" and event.approver and event.output["previous"] == "1"
    wait_for(lambda: client.get("/health").json()["version"] == "2", timeout=15, interval=0.1,
             what="the running server following the rollback")


@pytest.mark.slow
def test_rollback_without_previous_is_a_clear_error(trained):
    import mlflow
    from typer.testing import CliRunner

    from poise.deploy.server import create_app
    from poise.registry.versions import rollback

    lonely = "serve-lonely"
    registry = mlflow.MlflowClient()
    registry.create_registered_model(lonely)
    version = registry.create_model_version(lonely, source=str(ROOT / "no-such-artifacts" / "model")).version
    with pytest.raises(ModelNotFoundError, match="no @champion to roll back from"):
        rollback(lonely)
    with pytest.raises(PoiseError, match="no @champion to serve"):
        create_app(lonely)
    registry.set_registered_model_alias(lonely, versions.CHAMPION, version)
    with pytest.raises(PoiseError, match=f"could not load {lonely} v{version}") as broken:
        create_app(lonely)
    assert "poise rollback" in (broken.value.fix or "")
    with pytest.raises(ModelNotFoundError, match="no @previous version") as caught:
        rollback(lonely)
    assert "poise promote serve-lonely" in (caught.value.fix or "")
    result = CliRunner().invoke(_cli(), ["rollback", lonely])
    assert result.exit_code == 2 and "no @previous" in result.output
    registry.delete_registered_model(lonely)


@pytest.mark.slow
def test_serve_cli_starts_light():
    code = ("import sys, poise.cli.serve; heavy = {'fastapi', 'mlflow', 'pandas', 'uvicorn'} & set(sys.modules);"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def _cli():
    import typer

    from poise.cli import serve

    app = typer.Typer()
    serve.register(app)
    return app
