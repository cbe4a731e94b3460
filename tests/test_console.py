"""The web console in a real browser (Chromium): pages, escaping, CSRF, the token rule, accessible names,
and how fast the list pages load. Nothing here trains a model; planning a small table runs for real."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from poise.errors import PoiseError
from poise.settings import get_settings
from tests.browser import LiveConsole, browser, page  # noqa: F401 - fixtures

HOSTILE_COLUMN = "<script>alert(1)</script>"
HOSTILE_TEXT = 'predict label, 10 seconds <b>bold</b><img src=x onerror="alert(2)">'


@pytest.fixture(scope="module")
def live() -> LiveConsole:
    from poise.web.app import create_app

    with LiveConsole(create_app()) as server:
        yield server


@pytest.fixture(scope="module")
def hostile_table(tmp_path_factory) -> str:
    """A small table whose column names and values are HTML, with a rare label."""
    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=n)
    frame = pd.DataFrame({"x": x, HOSTILE_COLUMN: rng.normal(size=n),
                          "note": rng.choice(["<i>a</i>", "b&c", "<svg onload=alert(3)>"], size=n),
                          "label": (x + rng.normal(scale=0.5, size=n) > 1.6).astype(int)})
    path = tmp_path_factory.mktemp("hostile") / "hostile.csv"
    frame.to_csv(path, index=False)
    return str(path)


def _alerts(tab) -> list[str]:
    seen: list[str] = []
    tab.on("dialog", lambda dialog: (seen.append(dialog.message), dialog.dismiss()))
    return seen


def plan_in_browser(tab, live, text: str, table: str) -> str:
    """Describe a task and upload a table through the form; wait for the plan. Returns the run id."""
    from playwright.sync_api import expect

    tab.goto(f"{live.url}/new")
    tab.get_by_label("Task").fill(text)
    tab.get_by_label("Data file").set_input_files(table)
    tab.get_by_role("button", name="Plan").click()
    expect(tab.get_by_role("status", name="Status")).to_contain_text("awaiting approval", timeout=180_000)
    return tab.url.rstrip("/").rsplit("/", 1)[-1]


@pytest.mark.slow
def test_every_page_renders_with_labelled_inputs_and_named_buttons(page, live):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{live.url}/new")
    expect(page.get_by_label("Task")).to_be_editable()
    expect(page.get_by_label("Data file")).to_be_visible()
    expect(page.get_by_role("button", name="Plan")).to_be_visible()
    for path, heading in (("/new", "Describe a task"), ("/runs", "Runs"), ("/models", "Models"),
                          ("/monitoring", "Monitoring")):
        page.goto(live.url + path)
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        assert unlabelled(page) == [], path


def unlabelled(tab) -> list[str]:
    """Inputs without a label, and buttons without a name, on the page."""
    return tab.evaluate("""() => [
        ...[...document.querySelectorAll('input:not([type=hidden]), textarea, select')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name),
        ...[...document.querySelectorAll('button')]
            .filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).map(b => b.outerHTML)]""")


@pytest.mark.slow
def test_user_text_and_column_names_are_shown_as_text_never_run(page, live, hostile_table):  # noqa: F811
    from playwright.sync_api import expect

    alerts = _alerts(page)
    run_id = plan_in_browser(page, live, HOSTILE_TEXT, hostile_table)
    # the plan page: the task text and the hostile column appear literally, as text
    expect(page.get_by_text(HOSTILE_TEXT)).to_be_visible()
    expect(page.get_by_text(HOSTILE_COLUMN, exact=True).first).to_be_visible()
    expect(page.get_by_label(f"Drop {HOSTILE_COLUMN}")).to_be_attached()
    html = httpx.get(f"{live.url}/runs/{run_id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert '<img src=x onerror="alert(2)">' not in html and "<b>bold</b>" not in html
    assert page.locator("img[src=x], b").count() == 0
    # every control the person decides with has a name a screen reader reads out
    expect(page.get_by_label("Training budget (seconds)")).to_have_value("10")
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    expect(page.get_by_role("button", name="Reject")).to_be_visible()
    assert unlabelled(page) == []

    # a plan edited into something invalid is refused with the reason, and nothing starts
    for box in page.locator("input[name=model]").all():
        box.uncheck()
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("alert")).to_contain_text("search.models")
    expect(page.get_by_role("status", name="Status")).to_contain_text("awaiting approval")

    page.get_by_label("Reason").fill("<em>wrong</em> target")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status", name="Status")).to_contain_text("rejected")
    page.goto(f"{live.url}/runs/{run_id}/audit")
    expect(page.get_by_text("plan rejected: <em>wrong</em> target")).to_be_visible()
    from poise.agents.audit import who

    expect(page.locator("tr.step-approve")).to_contain_text(who())
    page.goto(f"{live.url}/runs")
    expect(page.get_by_text(HOSTILE_TEXT[:60])).to_be_visible()
    assert alerts == []


@pytest.mark.slow
def test_a_form_without_its_security_token_is_refused(live, hostile_table):
    from poise.agents.audit import AWAITING_APPROVAL
    from poise.agents.runner import Lifecycle

    lifecycle = Lifecycle()
    view = lifecycle.start("predict label, 10 seconds", hostile_table)
    lifecycle.close()
    assert view.status == AWAITING_APPROVAL
    with httpx.Client(base_url=live.url) as client:
        client.get("/runs")  # a session of its own, like a page from another site would not have
        for sent in ({}, {"csrf": "forged"}):
            answer = client.post(f"/runs/{view.run_id}/reject", data={"reason": "no", **sent})
            assert answer.status_code == 403 and "security token" in answer.text and "<html" in answer.text
        answer = client.post(f"/runs/{view.run_id}/approve", data={"budget_seconds": "5"})
        assert answer.status_code == 403
    assert Lifecycle().view(view.run_id).status == AWAITING_APPROVAL


@pytest.mark.slow
def test_beyond_loopback_needs_a_token():
    from poise.web.app import serve

    with pytest.raises(PoiseError, match="without a token"):
        serve(host="0.0.0.0", port=1, tokens=None)
    done = subprocess.run([sys.executable, "-m", "poise.cli.main", "ui", "--host", "0.0.0.0"], capture_output=True,
                          text=True, env={**os.environ, "POISE_UI_TOKEN": ""}, timeout=300)
    assert done.returncode == 2 and "without a token" in done.stderr


@pytest.mark.slow
def test_with_tokens_a_person_logs_in_and_acts_under_their_name(browser, hostile_table):  # noqa: F811
    from playwright.sync_api import expect

    from poise.agents.runner import Lifecycle
    from poise.web.app import create_app
    from poise.web.auth import parse_tokens

    lifecycle = Lifecycle()
    waiting = lifecycle.start("predict label, 10 seconds", hostile_table).run_id
    lifecycle.close()

    app = create_app(tokens=parse_tokens(["alice=secret-of-alice", "bob=secret-of-bob"]))
    with LiveConsole(app) as server:
        assert httpx.get(f"{server.url}/api/runs").status_code == 401
        assert httpx.get(f"{server.url}/api/runs", headers={"Authorization": "Bearer secret-of-bob"}).status_code == 200
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{server.url}/runs")
        assert "/login" in page.url
        page.get_by_label("Token").fill("not-a-token")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("not one this console accepts")
        page.get_by_label("Token").fill("secret-of-alice")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Runs")
        expect(page.get_by_text("signed in as alice")).to_be_visible()
        page.goto(f"{server.url}/runs/{waiting}")
        page.get_by_label("Reason").fill("not this quarter")
        page.get_by_role("button", name="Reject").click()
        expect(page.get_by_role("status", name="Status")).to_contain_text("rejected")
        page.goto(f"{server.url}/runs/{waiting}/audit")
        expect(page.locator("tr.step-approve")).to_contain_text("alice")
        context.close()


def _median_ms(client: httpx.Client, path: str, times: int = 7) -> float:
    client.get(path)  # warm
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        answer = client.get(path)
        spent.append(1000 * (time.perf_counter() - started))
        assert answer.status_code == 200, answer.text[:500]
    return statistics.median(spent)


@pytest.mark.slow
def test_list_pages_load_fast_with_200_runs_and_50_versions(live):
    import mlflow

    from poise.agents.audit import Journal

    journal = Journal(get_settings().home / "runs.db")
    for i in range(200):
        journal.start_run(f"perf{i:08d}", f"catch failures number {i} in data.csv, two minutes")
        journal.set_status(f"perf{i:08d}", "deployed", "perf", model="perf", version=str(1 + i % 50))
    client = mlflow.MlflowClient()
    client.create_registered_model("perf")
    for i in range(50):
        client.create_model_version("perf", f"file:///nonexistent/{i}", tags={
            "strategy": "smote", "estimator": "hgb", "metric": "average_precision", "threshold": "0.4",
            "holdout.average_precision": "0.8", "holdout.roc_auc": "0.9"})
    client.set_registered_model_alias("perf", "champion", "50")
    try:
        with httpx.Client(base_url=live.url) as http:
            spent = {path: _median_ms(http, path) for path in ("/runs", "/api/runs", "/models", "/models/perf",
                                                               "/monitoring/perf", "/runs/perf00000007")}
        assert re.search("v50", httpx.get(f"{live.url}/models/perf").text)
    finally:
        client.delete_registered_model("perf")  # other tests may count on the models they registered
    print("median ms:", {k: round(v, 1) for k, v in spent.items()})
    assert all(ms < 200 for ms in spent.values()), spent


def test_tokens_name_their_holders_and_a_forged_session_is_a_new_one():
    from poise.web.auth import ANONYMOUS_HOLDER, Session, Signer, holder, parse_tokens

    tokens = parse_tokens("alice=secret-of-alice, plain-secret-1")
    assert tokens == {"secret-of-alice": "alice", "plain-secret-1": ANONYMOUS_HOLDER}
    assert holder(tokens, "secret-of-alice") == "alice" and holder(tokens, "secret-of-bob") is None
    with pytest.raises(PoiseError, match="shorter than 8"):
        parse_tokens(["bob=short"])
    signer = Signer()
    cookie = signer.dump(Session("abc", "alice"))
    assert signer.load(cookie).name == "alice"
    payload, mac = cookie.rsplit(".", 1)
    forged = signer.load(f"{payload}.{'0' * len(mac)}")
    assert forged.fresh and forged.name is None and forged.sid != "abc"
    assert Signer().load(cookie).fresh  # another process's key: not ours
    assert not signer.csrf_ok(Session("abc"), signer.csrf(Session("other")))
