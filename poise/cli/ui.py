"""``poise ui``: the web console."""

from __future__ import annotations

import typer

from poise.cli.common import user_errors


def register(app: typer.Typer) -> None:
    app.command("ui")(ui_command)


@user_errors
def ui_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs a token."),
    port: int = typer.Option(8500, "--port", min=1, max=65535),
    token: list[str] | None = typer.Option(
        None, "--token", envvar="POISE_UI_TOKEN", show_envvar=True,
        help="NAME=SECRET (repeatable; a bare SECRET works too): who may log in, and the name that goes into the "
             "audit trail. Without one, the console runs on loopback only, as this machine's user.",
    ),
) -> None:
    """Open the web console: describe a task, approve its plan, watch training, drift and recoveries."""
    from poise.web.app import serve

    serve(host=host, port=port, tokens=token or None)
