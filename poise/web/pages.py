"""The console's pages: one per decision. Each calls what the CLI calls (``Lifecycle``, ``Journal``,
``registry.versions``, the monitor's kept reports); long work goes to the background jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from poise.agents.audit import AWAITING_APPROVAL, FINISHED, RECOVERY
from poise.errors import PoiseError
from poise.web import facts

if TYPE_CHECKING:
    import pandas as pd
    from starlette.datastructures import FormData

    from poise.agents.runner import RunView
    from poise.contracts import Plan
    from poise.web.app import Console  # which imports this module
    from poise.web.charts import AtThreshold
    from poise.web.jobs import Progress

router = APIRouter()


class FormRefused(PoiseError):
    """A POST without this session's CSRF token: answered 403, before anything acts on it."""

#: Run statuses after which nothing more happens by itself.
SETTLED = (*FINISHED, "failed", AWAITING_APPROVAL, "done", "planned")


def _console(request: Request) -> Console:
    return request.app.state.console


async def csrf_checked(request: Request) -> None:
    """Every form posts the session's CSRF token; one without it did not come from our page."""
    form = await request.form()
    console = _console(request)
    if not console.signer.csrf_ok(request.state.session, form.get("csrf")):  # type: ignore[arg-type]
        raise FormRefused("the form's security token is missing or stale (or the form came from another site)",
                          "reload the page and send the form again")


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------------- login
@router.get("/health", include_in_schema=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _console(request).page(request, "login.html", next=_local(next), error=None)


@router.post("/login", dependencies=[Depends(csrf_checked)])
def login(request: Request, token: str = Form(""), next: str = Form("/")) -> Response:
    from poise.web.auth import holder

    console = _console(request)
    name = holder(console.tokens, token) if console.tokens else request.state.user
    if name is None:
        return console.page(request, "login.html", status_code=401, next=_local(next),
                            error="That token is not one this console accepts.")
    request.state.session.name = name
    request.state.session_changed = True
    return _see(_local(next))


def _local(url: str) -> str:
    """Only paths of this console: a login never sends anyone elsewhere."""
    return url if url.startswith("/") and not url.startswith("//") else "/"


# ---------------------------------------------------------------------- new task
@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return _see("/runs")  # type: ignore[return-value]


@router.get("/new", response_class=HTMLResponse)
def new_task(request: Request) -> HTMLResponse:
    console = _console(request)
    return console.page(request, "new.html", tables=facts.known_tables(console.settings.home), error=None, text="")


@router.post("/runs", dependencies=[Depends(csrf_checked)])
def start_run(request: Request, text: str = Form(""), data_file: UploadFile | None = File(None),
              known: str = Form("")) -> Response:
    from poise.agents.runner import new_run_id

    console = _console(request)
    home = console.settings.home
    try:
        if not text.strip():
            raise PoiseError("the task is empty", 'describe it, e.g. "catch machine failures, precision at least 0.5"')
        if data_file is not None and data_file.filename:
            data = facts.save_upload(data_file, home)
        elif known:
            data = facts.known_table(home, known)
        else:
            raise PoiseError("no data file", "upload a table or pick one the console already knows")
    except PoiseError as exc:
        return console.page(request, "new.html", status_code=400, tables=facts.known_tables(home),
                            error=exc, text=text)
    run_id = new_run_id()

    def plan() -> None:
        console.lifecycle().start(text, str(data), auto_approve=False, run_id=run_id)

    console.jobs.submit(run_id, "planning", plan)
    return _see(f"/runs/{run_id}")


# ---------------------------------------------------------------------- runs
@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    console = _console(request)
    rows = facts.runs(console.lifecycle().journal)
    progress = {r["run_id"]: progress_line(console.jobs.progress(r["run_id"])) for r in rows
                if console.jobs.busy(r["run_id"])}
    return console.page(request, "runs.html", runs=rows, progress=progress)


@router.get("/api/runs")
def runs_status(request: Request) -> JSONResponse:
    console = _console(request)
    answer = {}
    for r in facts.runs(console.lifecycle().journal):
        busy = console.jobs.busy(r["run_id"])
        answer[r["run_id"]] = {"status": r["status"], "settled": r["status"] in SETTLED and not busy,
                               "progress": progress_line(console.jobs.progress(r["run_id"])) if busy else ""}
    return JSONResponse(answer)


def progress_line(progress: Progress | None) -> str:
    """A running search in one line, for the list of runs."""
    if progress is None:
        return ""
    if not progress.trials:
        return progress.stage or progress.state
    best = "–" if progress.best_score is None else f"{progress.best_score:.4f}"
    left = "" if progress.seconds_left is None else f", {progress.seconds_left:.0f} s left"
    return f"trial {progress.trials}, best {best}, trying {progress.strategy} + {progress.estimator}{left}"


@router.get("/api/runs/{run_id}")
def run_status(request: Request, run_id: str) -> JSONResponse:
    return JSONResponse(_status(request, run_id))


def _status(request: Request, run_id: str) -> dict[str, Any]:
    """Where a run stands: the journal's status, and this console's background work on it."""
    console = _console(request)
    row = console.lifecycle().journal.run(run_id)
    progress = console.jobs.progress(row["run_id"] if row else run_id)
    busy = progress is not None and progress.state in ("queued", "working")
    status = row["status"] if row else "queued"
    if progress is not None and progress.state == "failed":
        status = "failed"
    if busy:
        phase = "working"
    elif status == AWAITING_APPROVAL:
        phase = "approval"
    elif status == "failed":
        phase = "failed"
    else:
        phase = "finished" if status in SETTLED else "stalled"
    return {"run_id": row["run_id"] if row else run_id, "status": status, "detail": row["detail"] if row else "",
            "phase": phase, "settled": phase not in ("working", "stalled"), "busy": busy,
            "progress": progress.as_dict() if progress else None}


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    console = _console(request)
    lifecycle = console.lifecycle()
    row = lifecycle.journal.run(run_id)
    status = _status(request, run_id)
    if row is None:
        if status["progress"] is None:
            raise PoiseError(f"no run {run_id!r}", "pick one from the list of runs")
        return console.page(request, "run.html", run={"run_id": run_id, "text": "", "kind": "lifecycle"},
                            view=None, state=status, events=[], repairs={}, form=None)
    view = lifecycle.view(row["run_id"])
    events = lifecycle.journal.events(row["run_id"])
    form = None
    if view.pending is not None and row["kind"] != RECOVERY:
        form = _plan_form(view)
    return console.page(request, "run.html", run=row, view=view, state=status, events=events,
                        repairs=facts.repairs_by_step(events), form=form, values=view.values)


def _plan_form(view: RunView, errors: list[str] | None = None) -> dict[str, Any]:
    """What the plan form offers: the registries' strategies and models, the profile's columns, the metrics."""
    from poise.contracts import METRICS, RECOVERY_ACTIONS
    from poise.tools.models import MODELS
    from poise.tools.strategies import STRATEGIES

    profile = view.contracts.profile
    return {"strategies": {k: v.description for k, v in STRATEGIES.items()},
            "models": {k: v.description for k, v in MODELS.items()},
            "columns": [c for c in profile.columns if c.name != profile.target],
            "profile": profile, "metrics": METRICS, "recovery_actions": RECOVERY_ACTIONS, "errors": errors or []}


@router.post("/runs/{run_id}/approve", dependencies=[Depends(csrf_checked)])
async def approve(request: Request, run_id: str) -> Response:
    from starlette.concurrency import run_in_threadpool

    form = await request.form()
    return await run_in_threadpool(_approve, request, run_id, form)


def _approve(request: Request, run_id: str, form: FormData) -> Response:
    console = _console(request)
    lifecycle = console.lifecycle()
    view = lifecycle.view(run_id)
    _must_wait(console, view)
    approver = request.state.user
    edited = None
    budget = None
    if lifecycle.journal.run(view.run_id)["kind"] != RECOVERY:
        try:
            edited = _edited_plan(console, view, form)
        except PoiseError as exc:
            events = lifecycle.journal.events(view.run_id)
            return console.page(request, "run.html", status_code=400, run=lifecycle.journal.run(view.run_id),
                                view=view, state=_status(request, view.run_id), events=events,
                                repairs=facts.repairs_by_step(events), values=view.values,
                                form=_plan_form(view, [exc.problem + (f" ({exc.fix})" if exc.fix else "")]))
        budget = (edited or view.plan).budget_seconds
    else:
        budget = ((view.values.get("recovery") or {}).get("plan") or {}).get("budget_seconds")

    def train() -> None:
        console.lifecycle().approve(view.run_id, edited, approver=approver)

    console.jobs.submit(view.run_id, "training", train, budget_seconds=budget)
    return _see(f"/runs/{view.run_id}")


def _must_wait(console: Console, view: RunView) -> None:
    if view.pending is None or console.jobs.busy(view.run_id):
        raise PoiseError(f"run {view.run_id} is not waiting for approval (it is {view.status})",
                         "nothing to decide: see the run's page")


def _edited_plan(console: Console, view: RunView, form: FormData) -> Plan | None:
    """The plan as the person left the form; None when nothing changed. Checked like any plan before it runs."""
    from pydantic import ValidationError

    from poise.agents.guardrails import check_plan
    from poise.contracts import METRICS, DataStep, Plan

    saved = view.contracts
    plan = saved.plan
    drops = set(form.getlist("drop"))
    reasons = {s.column: s.reason for s in plan.data_steps if s.action == "drop"}
    steps = [s.model_dump() for s in plan.data_steps if s.action != "drop"]
    steps += [DataStep(action="drop", column=c, reason=reasons.get(c, "dropped by a person in the console")
                       ).model_dump() for c in [c.name for c in saved.profile.columns] if c in drops]
    floors = {}
    for metric in METRICS:
        raw = str(form.get(f"floor_{metric}", "")).strip()
        if raw:
            floors[metric] = _number(raw, f"the holdout floor of {metric}")
    try:
        edited = Plan.model_validate({
            **plan.model_dump(),
            "data_steps": steps,
            "budget_seconds": _number(form.get("budget_seconds", ""), "the budget"),
            "cv_folds": int(_number(form.get("cv_folds", ""), "the number of CV folds")),
            "search": {"strategies": form.getlist("strategy"), "models": form.getlist("model")},
            "gates": {"min_holdout": floors, "must_beat_champion": form.get("must_beat_champion") == "on"},
            "final_fit_on_all_rows": form.get("final_fit_on_all_rows") == "on",
            "unattended_recoveries": form.getlist("unattended"),
        })
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "plan"
        raise PoiseError(f"{where}: {first['msg']}", "correct that field and approve again") from None
    if edited == plan:
        return None
    check_plan(edited, task=saved.task, profile=saved.profile, baseline=saved.baseline, settings=console.settings)
    return edited


def _number(raw: object, what: str) -> float:
    try:
        return float(str(raw).strip())
    except ValueError:
        raise PoiseError(f"{what} is {str(raw)!r}, not a number", "write a number such as 60 or 0.5") from None


@router.post("/runs/{run_id}/reject", dependencies=[Depends(csrf_checked)])
def reject(request: Request, run_id: str, reason: str = Form("")) -> Response:
    console = _console(request)
    view = console.lifecycle().view(run_id)
    _must_wait(console, view)
    if not reason.strip():
        raise PoiseError("a rejection needs a reason", "say why in the Reason box: it goes into the audit trail")
    console.lifecycle().reject(view.run_id, reason.strip(), approver=request.state.user)
    return _see(f"/runs/{view.run_id}")


@router.get("/runs/{run_id}/audit", response_class=HTMLResponse)
def audit_page(request: Request, run_id: str) -> HTMLResponse:
    console = _console(request)
    lifecycle = console.lifecycle()
    row = lifecycle.journal.run(run_id)
    if row is None:
        raise PoiseError(f"no run {run_id!r}", "pick one from the list of runs")
    return console.page(request, "audit.html", run=row, events=lifecycle.journal.events(row["run_id"]))


# ---------------------------------------------------------------------- models
@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> HTMLResponse:
    console = _console(request)
    return console.page(request, "models.html", models=facts.registered_models(console.settings.tracking_uri))


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(request: Request, name: str, version: str | None = None) -> HTMLResponse:
    console = _console(request)
    entry = facts.model_entry(name, console.settings.tracking_uri)
    chosen = facts.version_facts(entry, version)
    figures, point = None, None
    if chosen is not None and chosen.reference is not None and chosen.threshold is not None:
        figures, point = _threshold_view(name, chosen.version, chosen.threshold, chosen.reference)
    runs = facts.producing_runs(console.lifecycle().journal, name)
    return console.page(request, "model.html", entry=entry, chosen=chosen, figures=figures, point=point,
                        runs=runs, plots=figures is not None)


_FIGURES: dict[tuple[str, str, float], tuple[dict[str, str], AtThreshold]] = {}


def _threshold_view(
    name: str, version: str, threshold: float, holdout: pd.DataFrame
) -> tuple[dict[str, str], AtThreshold]:
    """The version's curves and confusion matrix; a version never changes, so they are drawn once."""
    from poise.registry.versions import LABEL, PROBA
    from poise.web import charts

    key = (name, version, threshold)
    if key not in _FIGURES:
        labels, proba = holdout[LABEL].to_numpy(), holdout[PROBA].to_numpy()
        _FIGURES[key] = (charts.threshold_figures(labels, proba, threshold),
                         charts.at_threshold(labels, proba, threshold))
    return _FIGURES[key]


@router.get("/models/{name}/{action}", response_class=HTMLResponse)
def confirm_move(request: Request, name: str, action: str, version: str | None = None) -> HTMLResponse:
    from poise.registry import versions

    if action not in ("promote", "rollback"):
        raise HTTPException(404)
    console = _console(request)
    entry = facts.model_entry(name, console.settings.tracking_uri)
    champion = versions.alias_version(name, versions.CHAMPION)
    target = version if action == "promote" else versions.alias_version(name, versions.PREVIOUS)
    if action == "promote" and version not in {v["version"] for v in entry["versions"]}:
        raise PoiseError(f"model {name!r} has no version {version}", "pick a version on the model page")
    return console.page(request, "confirm.html", name=name, action=action, version=target,
                                  champion=champion)


@router.post("/models/{name}/{action}", dependencies=[Depends(csrf_checked)])
def move(request: Request, name: str, action: str, version: str = Form("")) -> Response:
    """Promote or roll back as the CLI does, recorded in the audit trail under the logged-in name."""
    from poise.agents.audit import record_by_hand
    from poise.pipelines.deploy import notify_servers
    from poise.registry import versions

    if action not in ("promote", "rollback"):
        raise HTTPException(404)
    if action == "promote":
        previous = versions.promote(name, version)
        note = f" (was v{previous}, now @previous)" if previous and previous != version else ""
        summary, output = f"{name}@champion → v{version}{note}", {"previous": previous}
    else:
        was, version = versions.rollback(name)
        summary, output = f"{name}@champion → v{version} (was v{was}, now @previous)", {"previous": was}
    answers = notify_servers(name)
    record_by_hand(_console(request).lifecycle().journal, action, summary, model=name, version=version,
                   approver=request.state.user, output={**output, "servers": answers})
    return _see(f"/models/{name}")


# ---------------------------------------------------------------------- monitoring
@router.get("/monitoring", response_class=HTMLResponse)
def monitoring_index(request: Request) -> HTMLResponse:
    from poise.pipelines.monitor import stored_reports

    console = _console(request)
    registered = {m["name"] for m in facts.registered_models(console.settings.tracking_uri)}
    names = sorted(registered | set(facts.monitored_models(console.settings.home)))
    latest = {name: (stored_reports(name) or [(None, None)])[-1][1] for name in names}
    return console.page(request, "monitoring_index.html", names=names, latest=latest)


@router.get("/monitoring/{name}", response_class=HTMLResponse)
def monitoring_page(request: Request, name: str) -> HTMLResponse:
    from poise.pipelines.monitor import stored_reports

    console = _console(request)
    reports = stored_reports(name)
    points = facts.report_points(reports)
    lifecycle = console.lifecycle()
    recoveries = [r for r in lifecycle.journal.runs(limit=1000) if r["kind"] == RECOVERY and r["model"] == name]
    recoveries.sort(key=lambda r: r["status"] != AWAITING_APPROVAL)  # waiting for a person first; stable
    pending = {r["run_id"]: lifecycle.view(r["run_id"]).values.get("recovery") for r in recoveries
               if r["status"] == AWAITING_APPROVAL}
    working = [r for r in recoveries if console.jobs.busy(r["run_id"])]
    return console.page(request, "monitoring.html", name=name, latest=reports[-1][1] if reports else None,
                        latest_stem=reports[-1][0].stem if reports else None, points=points,
                        severity=_severity_view(points) if points else None, recoveries=recoveries,
                        pending=pending, working=working, plots=bool(points), settled=SETTLED)


_SEVERITY: dict[tuple[str, ...], str] = {}


def _severity_view(points: list[dict[str, Any]]) -> str:
    """The severity chart, drawn again only when a new report arrives (reports never change)."""
    from poise.web import charts

    key = tuple(p["stem"] for p in points)
    if key not in _SEVERITY:
        _SEVERITY.clear()  # only the newest set of reports is ever asked for again
        _SEVERITY[key] = charts.severity_figure(points)
    return _SEVERITY[key]


@router.get("/monitoring/{name}/report/{stem}", include_in_schema=False)
def monitoring_report(request: Request, name: str, stem: str) -> FileResponse:
    path = facts.report_html(_console(request).settings.home, name, stem)
    # Evidently's page runs its own script: sandboxed, it can never reach the console's cookies or forms
    return FileResponse(path, media_type="text/html",
                        headers={"Content-Security-Policy": "sandbox allow-scripts"})


@router.post("/monitoring/{name}/check", dependencies=[Depends(csrf_checked)])
def check_batch(request: Request, name: str, batch: UploadFile = File(...)) -> Response:
    """Check a batch of rows for drift and recover when the policy says act (``poise recover NAME --current``)."""
    from poise.agents.runner import new_run_id

    console = _console(request)
    facts.model_entry(name, console.settings.tracking_uri)
    path = facts.save_upload(batch, console.settings.home)
    run_id = new_run_id()

    def recover() -> None:
        console.lifecycle().recover(name, current=str(path), run_id=run_id)

    console.jobs.submit(run_id, "recovery", recover)
    return _see(f"/runs/{run_id}")
