"""Watching served models: ``poise monitor``, ``poise recover``, ``poise watch``, ``poise recoveries``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from poise.cli.common import console, print_json, stdout, user_errors

if TYPE_CHECKING:  # the contracts load pydantic: only when a command runs
    from poise.contracts import DriftReport

_CURRENT = typer.Option(None, "--current", "-c", help="A table of recent rows (with the target column where "
                                                      "labels are known) instead of the logged predictions.")
_WINDOW = typer.Option(None, "--window", "-w", min=1, help="How many of the newest predictions the champion "
                                                           "served to check (default 1000).")


def register(app: typer.Typer) -> None:
    for name, command in (("monitor", monitor_command), ("recover", recover_command), ("watch", watch_command),
                          ("recoveries", recoveries_command)):
        app.command(name)(command)


@user_errors
def monitor_command(
    name: str = typer.Argument(..., help="Registered model name: its @champion is checked."),
    current: Path | None = _CURRENT,
    window: int | None = _WINDOW,
    html: bool = typer.Option(True, "--html/--no-html", help="Also write Evidently's HTML report."),
    as_json: bool = typer.Option(False, "--json", help="Print the DriftReport as JSON."),
) -> None:
    """One drift check: per-feature and prediction drift, decay on labelled rows, and its severity."""
    from poise.pipelines.monitor import monitor_flow

    with console.status("checking for drift…"):
        report = monitor_flow(name, str(current) if current else None, window, html)
    if as_json:
        print_json(report)
        return
    print_report(report)


def print_report(report: DriftReport) -> None:
    colour = {"none": "green", "watch": "yellow", "act": "red"}[report.severity]
    stdout.print(f"{report.model_name} v{report.model_version}: severity [bold {colour}]{report.severity}[/] "
                 f"({report.current_rows} recent rows against {report.reference_rows})", highlight=False)
    for reason in report.reasons:
        stdout.print(f"  {reason}", highlight=False)
    drifted = [f for f in report.features if f.drifted]
    if drifted:
        from rich.table import Table

        table = Table(show_edge=False, title="drifted features")
        for column in ("feature", "test", "score", "threshold"):
            table.add_column(column)
        for f in sorted(drifted, key=lambda f: f.column):
            table.add_row(f.column, f.method, f"{f.score:.4g}", f"{f.threshold:.4g}")
        stdout.print(table)
    if report.html_path:
        stdout.print(f"report: {report.html_path}", highlight=False)


@user_errors
def recover_command(
    name: str = typer.Argument(..., help="Registered model name."),
    current: Path | None = _CURRENT,
    window: int | None = _WINDOW,
    budget: float | None = typer.Option(None, "--budget", "-b",
                                        help="Seconds for a retrain (default: the champion's)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check for drift and, when the policy says act, run a recovery (or wait for approval)."""
    from poise.agents.runner import Lifecycle
    from poise.cli.runs import show_outcome

    with console.status("checking and recovering…"):
        view = Lifecycle().recover(name, str(current) if current else None, window, budget)
    show_outcome(view, as_json)


@user_errors
def watch_command(
    name: str = typer.Argument(..., help="Registered model name."),
    every: float = typer.Option(300.0, "--every", min=1.0, help="Seconds between checks."),
    window: int | None = _WINDOW,
    recover: bool = typer.Option(True, "--recover/--monitor-only", help="Recover when the policy says act."),
    checks: int | None = typer.Option(None, "--checks", min=1, help="Stop after this many checks (default: never)."),
) -> None:
    """Check the champion's newest predictions on a schedule; recover when the policy says act."""
    from poise.agents.runner import Lifecycle
    from poise.errors import PoiseError
    from poise.pipelines.monitor import monitor_flow

    lifecycle = Lifecycle() if recover else None
    done = 0
    while checks is None or done < checks:
        started = time.monotonic()
        try:
            if lifecycle is not None:
                view = lifecycle.recover(name, None, window)
                report = view.values.get("report")
                action = (view.values.get("recovery") or {}).get("action")
                stdout.print(f"{time.strftime('%H:%M:%S')} run {view.run_id}: severity "
                             f"{report['severity'] if report else '?'}, "
                             f"{action or 'no recovery'} → {view.status}", highlight=False)
            else:
                report = monitor_flow(name, None, window)
                stdout.print(f"{time.strftime('%H:%M:%S')} severity {report.severity}: "
                             + "; ".join(report.reasons[:2]), highlight=False)
        except PoiseError as exc:  # e.g. nothing served yet: say so and keep watching
            console.print(f"{time.strftime('%H:%M:%S')} [yellow]{exc.problem}[/]", highlight=False)
        done += 1
        if checks is None or done < checks:
            time.sleep(max(0.0, every - (time.monotonic() - started)))


@user_errors
def recoveries_command(
    name: str | None = typer.Argument(None, help="Only this model's recoveries."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recovery runs and their outcomes."""
    from poise.agents.audit import RECOVERY, Journal
    from poise.settings import get_settings

    journal = Journal(get_settings().home / "runs.db")
    rows = [r for r in journal.runs(limit=1000) if r["kind"] == RECOVERY and (name is None or r["model"] == name)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no recoveries yet: poise recover NAME --current RECENT.csv (or poise watch NAME)")
        return
    from rich.table import Table

    table = Table(show_edge=False)
    for column in ("run", "model", "status", "created (UTC)", "outcome"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["run_id"], f"{r['model'] or ''} v{r['version'] or ''}", r["status"],
                      r["created_at"][:16].replace("T", " "), (r["detail"] or "")[:90])
    stdout.print(table)
