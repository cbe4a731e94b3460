"""The ``poise`` command. Start-up stays light: each command imports the heavy stack itself."""

from __future__ import annotations

import typer

from poise import __version__
from poise.cli import models, monitor, runs, serve, train, ui

app = typer.Typer(
    name="poise",
    help="Imbalance-aware AutoML: find, register and serve the best model for a rare-event table.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train.register(app)
runs.register(app)
models.register(app)
serve.register(app)
monitor.register(app)
ui.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"poise {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """State lives under POISE_HOME (default ~/.poise)."""


if __name__ == "__main__":  # pragma: no cover
    app()
