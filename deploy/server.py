"""Serve a registered model's ``@champion`` over HTTP, and follow the alias without a restart.

``poise serve`` starts here. The server is made of:

- ``schemas``: the request and answer bodies (what ``/docs`` shows and every answer is checked against);
- ``holder``: the served version and its hot swap when ``@champion`` moves;
- ``parsing``: reading JSON records and CSV uploads, and the ``problem``/``fix`` answers to bad input;
- ``auth``: the bearer token and the loopback check;
- ``app``: the FastAPI app and its routes.
"""

from __future__ import annotations

import logging

from poise.deploy.app import create_app
from poise.deploy.auth import TOKEN_ENV, is_loopback, resolve_token
from poise.deploy.holder import ModelHolder, Serving, load_version, pick_model
from poise.errors import PoiseError
from poise.settings import get_settings

__all__ = ["ModelHolder", "Serving", "create_app", "is_loopback", "load_version", "pick_model", "serve"]

log = logging.getLogger("poise.deploy")


def serve(model_name: str | None = None, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          poll_seconds: float = 2.0) -> None:
    """Run the server with uvicorn; off loopback only with a token, so a model is never exposed by accident."""
    token = resolve_token(token)
    if token is None and not is_loopback(host):
        raise PoiseError(
            f"binding to {host} without a token exposes the model to the network",
            f"set {TOKEN_ENV} or pass --token, or bind to 127.0.0.1",
        )
    app = create_app(model_name, poll_seconds=poll_seconds, token=token)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    import uvicorn
    from threadpoolctl import threadpool_limits

    from poise.registry import servers

    # One OpenMP/BLAS thread per request: requests run side by side on uvicorn's threads instead, and a
    # single row no longer waits for a team of threads to wake (measured: 28 → 13 ms a row in-process,
    # a 10,000-row batch 51 → 57 ms).
    threadpool_limits(1)

    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # naming, not binding
    url = f"http://[{local}]:{port}" if ":" in local else f"http://{local}:{port}"
    note = servers.announce(get_settings().home, url, app.state.holder.name)
    app.state.on_shutdown.append(lambda: servers.withdraw(note))  # uvicorn ends a SIGTERM by re-raising it
    uvicorn.run(app, host=host, port=port, log_level="info")
