"""Running models: ``poise serve``, ``poise rollback``, ``poise feedback``."""

from __future__ import annotations

from pathlib import Path

import typer

from poise.cli.common import console, stdout, user_errors


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("rollback")(rollback_command)
    app.command("feedback")(feedback_command)


@user_errors
def serve_command(
    model: str | None = typer.Option(None, "--model", help="Registered model to serve (default: the only one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs a token."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    token: str | None = typer.Option(
        None, "--token", envvar="POISE_SERVE_TOKEN", show_envvar=True,
        help="Require 'Authorization: Bearer TOKEN' on every endpoint but /health (prefer the env variable: "
             "a --token is visible to other users in the process list).",
    ),
    poll: float = typer.Option(2.0, "--poll", min=0.1, help="Seconds between checks of @champion."),
) -> None:
    """Serve NAME@champion over HTTP (docs at /docs); a promotion or rollback is picked up without a restart."""
    from poise.deploy.server import serve

    serve(model, host=host, port=port, token=token, poll_seconds=poll)


@user_errors
def rollback_command(name: str = typer.Argument(..., help="Registered model name.")) -> None:
    """Move @champion back to @previous (and @previous to the version it replaced)."""
    from poise.cli.models import announce_move
    from poise.registry import tracking
    from poise.registry.versions import check_name, rollback
    from poise.settings import get_settings

    check_name(name)  # before the registry is opened, as promote does
    tracking.connect(get_settings())
    was, now = rollback(name)
    summary = f"{name}@champion → v{now} (was v{was}, now @previous)"
    stdout.print(summary, highlight=False)
    announce_move("rollback", name, now, summary, previous=was)


@user_errors
def feedback_command(
    file: Path = typer.Argument(..., help="CSV with columns request_id, row, label (one line per labelled row)."),
) -> None:
    """Attach true labels to logged predictions, for the drift and performance monitor."""
    from poise.registry.predictions import PredictionStore, default_path
    from poise.tools.data import load_table

    frame = load_table(file)
    outcome = PredictionStore(default_path()).attach_labels_frame(frame)
    stdout.print(f"{outcome.labelled} of {len(frame)} row(s) labelled", highlight=False)
    if outcome.unknown:
        shown = ", ".join(f"{r.request_id}/{r.row}" for r in outcome.unknown[:5])
        more = f" and {len(outcome.unknown) - 5} more" if len(outcome.unknown) > 5 else ""
        console.print(f"[yellow]no logged prediction for[/] {shown}{more}", highlight=False)
        if outcome.labelled == 0:
            raise typer.Exit(1)
