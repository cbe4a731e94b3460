"""The serving app: its routes, each typed with the bodies of ``schemas``.

Every answered row goes to the prediction log, where ``/feedback`` attaches the true labels once
they are known. Every answer says which version gave it (``version`` and ``X-Model-Version``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as FormFile  # what a parsed form holds; FastAPI's subclasses it

from poise.deploy.auth import bearer_check, resolve_token
from poise.deploy.holder import ModelHolder, Serving, now, pick_model
from poise.deploy.parsing import (
    MAX_CSV_BYTES,
    CsvUploadRoute,
    as_class,
    check_every_number_finite,
    check_every_record_complete,
    invalid_request,
    is_multipart,
    no_file_part,
    problem,
    read_csv,
)
from poise.deploy.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    LogError,
    ModelInfo,
    PredictRequest,
    PredictResponse,
    ReloadResponse,
)
from poise.registry import tracking
from poise.registry.model import ModelInputError
from poise.registry.predictions import FeedbackError, PredictionStore, UnknownRequestError, default_path
from poise.settings import Settings, get_settings

log = logging.getLogger("poise.deploy")

_ALLOW_EXTRA = "Ignore columns the model does not know instead of rejecting the request."
#: The other way to send a CSV, beside the multipart form FastAPI documents from the ``file`` parameter.
_CSV_AS_BODY = {"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}}


def create_app(model_name: str | None = None, settings: Settings | None = None, poll_seconds: float = 2.0,
               token: str | None = None, store: PredictionStore | None = None,
               max_csv_bytes: int = MAX_CSV_BYTES) -> FastAPI:
    """The serving app for ``model_name``'s @champion; loads it now, so a broken setup fails before binding.

    ``token`` (else ``POISE_SERVE_TOKEN``) protects every endpoint but ``/health`` and the docs;
    ``max_csv_bytes`` caps a CSV upload (a bigger one is answered 413).
    """
    settings = settings or get_settings()
    tracking.connect(settings)
    holder = ModelHolder(pick_model(model_name), poll_seconds)
    store = store or PredictionStore(default_path(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder.start()
        try:
            yield
        finally:
            holder.stop()
            for stop in app.state.on_shutdown:  # e.g. withdraw the note that announced this server
                stop()

    app = FastAPI(
        title="poise model server",
        description=f"Predictions from `{holder.name}@champion`, which is followed without a restart.",
        lifespan=lifespan,
    )
    app.state.holder, app.state.store, app.state.last_log_error = holder, store, None
    app.state.max_csv_bytes = max_csv_bytes
    app.state.on_shutdown = []
    app.add_exception_handler(RequestValidationError, invalid_request)
    guard = [Depends(bearer_check(resolve_token(token)))]
    guarded = APIRouter(dependencies=guard)
    uploads = APIRouter(dependencies=guard, route_class=CsvUploadRoute)

    @app.get("/health", tags=["status"])
    def health() -> HealthResponse:
        """Liveness and what is served; open without a token so probes need no secret."""
        serving = holder.current
        return HealthResponse(
            status="degraded" if holder.last_swap_error else "ok",
            model=holder.name, version=serving.version, loaded_at=serving.loaded_at,
            last_checked_at=holder.last_checked_at, last_swap_error=holder.last_swap_error,
            last_log_error=app.state.last_log_error,
        )

    @guarded.get("/model", tags=["status"])
    def model_info() -> ModelInfo:
        """The served version: holdout metrics, threshold, features and when it was trained."""
        return holder.current.info

    @guarded.post("/predict", tags=["predict"])
    def predict(body: PredictRequest, response: Response,
                allow_extra: bool = Query(False, description=_ALLOW_EXTRA)) -> PredictResponse:
        """Score one record or a batch of records (JSON)."""
        serving, rows = holder.current, body.rows()
        check_every_number_finite(rows)
        frame = pd.DataFrame.from_records(rows)
        check_every_record_complete(rows, frame.columns, serving.loaded.card.features)
        return _answer(app, serving, frame, allow_extra, response)

    @uploads.post("/predict/csv", tags=["predict"], openapi_extra=_CSV_AS_BODY)
    async def predict_csv(
        request: Request, response: Response,
        file: UploadFile | None = File(None, description="The CSV; or send the CSV itself as a text/csv body."),
        allow_extra: bool = Query(False, description=_ALLOW_EXTRA),
    ) -> PredictResponse:
        """Score a CSV batch: a multipart upload (field ``file``) or the CSV itself as the body (``text/csv``)."""
        if file is None and is_multipart(request):
            # a file sent under another field name is still the one file uploaded
            file = next((part for part in (await request.form()).values() if isinstance(part, FormFile)), None)
            if file is None:
                raise no_file_part()
        body = await file.read() if file is not None else await request.body()
        # parsing and scoring run off the event loop: a big upload blocks no one else
        frame, warnings = await run_in_threadpool(read_csv, body)
        return await run_in_threadpool(_answer, app, holder.current, frame, allow_extra, response, warnings)

    @guarded.post("/feedback", tags=["feedback"])
    def feedback(body: FeedbackRequest) -> FeedbackResponse:
        """Attach true labels to logged predictions, by request id (and row number)."""
        card = holder.current.loaded.card
        try:
            if body.labels is not None:
                labelled = store.attach_labels(body.request_id, [as_class(card, y) for y in body.labels])
            else:
                labelled = store.attach_label(body.request_id, int(body.row or 0), as_class(card, body.label))
        except UnknownRequestError as exc:
            raise HTTPException(404, detail=problem(exc)) from None
        except FeedbackError as exc:
            raise HTTPException(422, detail=problem(exc)) from None
        return FeedbackResponse(request_id=body.request_id, labelled=labelled)

    @guarded.post("/admin/reload", tags=["admin"])
    def reload() -> ReloadResponse:
        """Check @champion now (and retry a version that failed to load) instead of waiting for the poll."""
        changed = holder.check(force=True)
        return ReloadResponse(changed=changed, model=holder.name, version=holder.current.version,
                              last_swap_error=holder.last_swap_error)

    app.include_router(guarded)
    app.include_router(uploads)
    return app


def _answer(app: FastAPI, serving: Serving, frame: pd.DataFrame, allow_extra: bool, response: Response,
            warnings: list[str] | None = None) -> PredictResponse:
    """Predict with one version, log the rows, answer; the version in the body is the one that predicted."""
    try:
        scored = serving.loaded.predict(frame, allow_extra=allow_extra)
    except ModelInputError as exc:
        raise HTTPException(422, detail=problem(exc)) from None
    proba = scored["proba"].astype(float).tolist()
    pred = scored["pred"].tolist()
    request_id = None
    try:
        request_id = app.state.store.log(serving.loaded.name, serving.version, frame, proba, pred)[0].request_id
    except Exception as exc:  # a full disk must not take predictions down; /health shows it
        log.exception("could not log a prediction request")
        app.state.last_log_error = LogError(error=f"{type(exc).__name__}: {exc}", at=now())
    response.headers["X-Model-Version"] = serving.version
    return PredictResponse.model_validate({
        "model": serving.loaded.name, "version": serving.version, "request_id": request_id,
        "predictions": [{"proba": p, "pred": y} for p, y in zip(proba, pred, strict=True)],
        "warnings": warnings or [],
    })
