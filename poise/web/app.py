"""The console application: sessions, the token rule, templates, static files; the pages live in ``pages``.

    poise ui                                  # http://127.0.0.1:8500, as this machine's user
    poise ui --host 0.0.0.0 --token alice=SECRET --token bob=OTHER
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from poise.errors import PoiseError
from poise.settings import Settings, get_settings
from poise.web.auth import COOKIE, Session, Signer, holder, parse_tokens
from poise.web.jobs import Jobs

if TYPE_CHECKING:  # the agents load with the first page that needs them (``_warm_imports`` at start-up)
    from poise.agents.runner import Lifecycle

log = logging.getLogger("poise.web")
HERE = Path(__file__).resolve().parent
#: Paths open without a login: the login form itself, the console's own files and the liveness probe.
OPEN_PATHS = ("/login", "/static/", "/static-vendor/", "/health", "/favicon.ico")


class Console:
    """What every page needs: settings, the background jobs, templates and who is logged in."""

    def __init__(self, settings: Settings, tokens: dict[str, str]) -> None:
        self.settings = settings
        self.tokens = tokens
        self.signer = Signer()
        self.jobs = Jobs()
        environment = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                                  trim_blocks=True, lstrip_blocks=True)
        environment.tests["contains"] = lambda sequence, item: item in sequence
        self.templates = Jinja2Templates(env=environment)
        self._lifecycle: Lifecycle | None = None

    def lifecycle(self) -> Lifecycle:
        """The console's one Lifecycle: requests read runs with it and the background work drives them (its
        checkpoint store serialises each read and write, so one connection serves every thread)."""
        if self._lifecycle is None:
            from poise.agents.runner import Lifecycle

            self._lifecycle = Lifecycle(self.settings)
        return self._lifecycle

    def page(self, request: Request, template: str, status_code: int = 200, **context: object) -> HTMLResponse:
        session: Session = request.state.session
        return self.templates.TemplateResponse(
            request, template, {"user": request.state.user, "csrf": self.signer.csrf(session),
                                "login_required": bool(self.tokens), **context},
            status_code=status_code)


def create_app(settings: Settings | None = None, tokens: dict[str, str] | None = None) -> FastAPI:
    """The console for ``settings`` (default: this process's); with ``tokens`` (secret → holder) it asks to log in."""
    from poise.registry import tracking
    from poise.web import pages

    settings = settings or get_settings()
    console = Console(settings, tokens or {})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        console.jobs.shutdown()
        if console._lifecycle is not None:
            console._lifecycle.close()

    tracking.connect(settings)
    _warm_imports()
    app = FastAPI(title="poise console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/static-vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        """plotly.js from the installed plotly package: a dependency, never a file of ours."""
        path = resources.files("plotly") / "package_data" / "plotly.min.js"
        return FileResponse(str(path), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.middleware("http")
    async def session_and_login(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        session = console.signer.load(request.cookies.get(COOKIE))
        bearer = request.headers.get("authorization", "")
        if console.tokens and bearer.lower().startswith("bearer "):
            session.name = holder(console.tokens, bearer[7:]) or session.name
        if not console.tokens:
            from poise.agents.audit import who

            session.name = who()
        request.state.session, request.state.user = session, session.name
        if console.tokens and session.name is None and not request.url.path.startswith(OPEN_PATHS):
            if request.method == "GET" and not request.url.path.startswith("/api/"):
                response: Response = RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            else:
                response = Response("log in first: POST /login with the console's token", status_code=401)
        else:
            response = await call_next(request)
        if session.fresh or getattr(request.state, "session_changed", False):
            response.set_cookie(COOKIE, console.signer.dump(session), httponly=True, samesite="lax",
                                secure=request.url.scheme == "https")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        return response

    @app.exception_handler(PoiseError)
    async def poise_error(request: Request, exc: PoiseError) -> HTMLResponse:
        status = 403 if isinstance(exc, pages.FormRefused) else 400
        return console.page(request, "error.html", status_code=status, problem=exc.problem, fix=exc.fix)

    app.include_router(pages.router)
    console.lifecycle().checkpointer.setup()  # open the checkpoint store now, before any page or work asks
    return app


def _warm_imports() -> None:
    """Import the heavy stack once at start-up, so no page pays for it."""
    import importlib

    import numpy as np

    from poise.web.charts import threshold_figures

    for module in ("plotly.graph_objects", "sklearn.metrics", "poise.agents.runner", "poise.pipelines.monitor",
                   "poise.registry.versions", "poise.tools.models", "poise.tools.strategies"):
        importlib.import_module(module)

    threshold_figures(np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.4, 0.6]), 0.5)  # plotly loads its validators


def serve(host: str = "127.0.0.1", port: int = 8500, tokens: list[str] | str | None = None) -> None:
    """Run the console with uvicorn; beyond loopback only with a token, like ``poise serve``."""
    import os

    import uvicorn

    from poise.deploy.server import is_loopback
    from poise.web.auth import TOKEN_ENV

    parsed = parse_tokens(tokens if tokens else os.environ.get(TOKEN_ENV))
    if not parsed and not is_loopback(host):
        raise PoiseError(f"binding to {host} without a token lets anyone on the network approve plans",
                         f"set {TOKEN_ENV} (NAME=SECRET) or pass --token, or bind to 127.0.0.1")
    app = create_app(tokens=parsed)
    print(f"poise console on http://{host}:{port}" + (" (log in with a token)" if parsed else ""), flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
