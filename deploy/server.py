"""Serve a registered model's ``@champion`` over HTTP, and follow the alias without a restart.

The served model is one immutable ``Serving`` object behind one attribute: a request reads it
once and uses that version from start to finish, so a swap can never mix two versions in one
answer. A background thread polls ``@champion``; when it moves, the new version is loaded off
the request path and only then swapped in. If it fails to load, the old version keeps serving
and ``/health`` says why. Every answered row goes to the prediction log, where ``/feedback``
attaches the true labels once they are known.

Input mistakes (a missing or unknown column, text in a numeric column, an empty batch, an
infinite or NaN number) are HTTP 422 with ``{"detail": {"problem": ..., "fix": ...}}``, never a 500.
What reading an uploaded CSV changed (a decimal comma, junk cells read as missing) comes back
in the answer's ``warnings``.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from poise.contracts import Label
from poise.errors import DataError, PoiseError
from poise.registry import tracking, versions
from poise.registry.model import ModelInputError
from poise.registry.predictions import FeedbackError, PredictionStore, UnknownRequestError, default_path
from poise.settings import Settings, get_settings

log = logging.getLogger("poise.deploy")

TOKEN_ENV = "POISE_SERVE_TOKEN"
MAX_CSV_BYTES = 64 * 1024 * 1024
MAX_RECORDS = 100_000
#: A version that failed to load is tried again by the poller after this long (``/admin/reload`` retries at once).
RETRY_FAILED_SECONDS = 30.0

Scalar = str | int | float | bool | None


# --- request and response bodies -------------------------------------------------------------------------------


class PredictRequest(BaseModel):
    """Either ``records`` (a batch) or ``record`` (one row): column name → value; null means missing."""

    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Scalar]] | None = Field(default=None, min_length=1, max_length=MAX_RECORDS)
    record: dict[str, Scalar] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.records is None) == (self.record is None):
            raise ValueError('send either "records": [{...}, ...] or "record": {...}')
        return self

    def rows(self) -> list[dict[str, Scalar]]:
        return self.records if self.records is not None else [self.record or {}]


class Prediction(BaseModel):
    proba: float = Field(description="Probability of the positive class.")
    pred: Label = Field(description="The decision at the model's tuned threshold, in the target's own values.")


class PredictResponse(BaseModel):
    model: str
    version: str
    request_id: str | None = Field(description="Quote it (with the row number) in /feedback; null if logging failed.")
    predictions: list[Prediction]
    warnings: list[str] = Field(default_factory=list, description="What reading the uploaded CSV changed.")


class FeedbackRequest(BaseModel):
    """True labels for a logged request: ``labels`` for all its rows in order, or one ``row`` and ``label``."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=64)
    labels: list[Label] | None = Field(default=None, min_length=1, max_length=MAX_RECORDS)
    row: int | None = Field(default=None, ge=0)
    label: Label | None = None

    @model_validator(mode="after")
    def _labels_or_one_row(self) -> FeedbackRequest:
        one_row = self.row is not None or self.label is not None
        complete = self.row is not None and self.label is not None
        if (self.labels is not None and one_row) or (self.labels is None and not complete):
            raise ValueError('send either "labels": [...] (every row, in order) or "row" and "label" (one row)')
        return self


# --- the served model and its hot swap -------------------------------------------------------------------------


@dataclass(frozen=True)
class Serving:
    """One loaded version and what ``/model`` says about it: swapped as a whole, never piece by piece."""

    loaded: versions.LoadedModel
    info: dict[str, Any]
    loaded_at: str

    @property
    def version(self) -> str:
        return self.loaded.version


def load_version(name: str, version: str) -> Serving:
    """Load one version completely (model and metadata) before anything may serve it."""
    loaded = versions.load(f"{name}:{version}")
    return Serving(loaded, _version_facts(loaded), _now())


def _version_facts(loaded: versions.LoadedModel) -> dict[str, Any]:
    """What ``/model`` reports, read once at load time so the endpoint never touches the registry."""
    facts = versions.describe(loaded.name, loaded.version)
    card = loaded.card
    return {
        "name": loaded.name, "version": loaded.version, "alias": versions.CHAMPION,
        "created_at": facts["created_at"], "trained_at": facts["trained_at"], "run_id": facts["run_id"],
        "holdout_metrics": facts["holdout_metrics"], "metric": card.metric or facts["tags"].get("metric"),
        "threshold": card.threshold, "strategy": card.strategy, "estimator": card.estimator,
        "target": card.target, "positive_label": card.positive_label, "negative_label": card.negative_label,
        "features": card.features, "numeric": card.numeric, "categorical": card.categorical,
        "datetime": card.datetime,
    }


class ModelHolder:
    """Holds the served version and keeps it in step with ``@champion``.

    ``current`` is replaced by one assignment (atomic in Python), so a request that read it keeps
    a complete, consistent version even while the next one is being loaded or swapped in.
    """

    def __init__(self, name: str, poll_seconds: float = 2.0, retry_seconds: float = RETRY_FAILED_SECONDS) -> None:
        self.name = name
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.current: Serving = _first_load(name)
        self.last_swap_error: dict[str, Any] | None = None
        self.last_checked_at: str | None = None
        self._failed: tuple[str | None, float] | None = None
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name=f"poise-swap-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.poll_seconds))
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check()
            except Exception:  # the poller must outlive any surprise; check() records the expected ones
                log.exception("checking @champion of %s failed", self.name)

    def check(self, *, force: bool = False) -> bool:
        """Swap to ``@champion`` if it moved; True if a new version now serves.

        A version that failed to load is retried only after ``retry_seconds`` unless ``force``:
        reloading a broken model every poll would spend the CPU the requests need.
        """
        with self._check_lock:
            self.last_checked_at = _now()
            try:
                wanted = versions.alias_version(self.name, versions.CHAMPION)
            except Exception as exc:
                self._failed_to(None, f"could not read @champion from the registry: {exc}")
                return False
            serving = self.current.version
            if wanted is None:
                self._failed_to(None, f"model {self.name!r} has no @champion any more; still serving v{serving}")
                return False
            if wanted == serving:
                self.last_swap_error, self._failed = None, None
                return False
            if not force and self._recently_failed(wanted):
                return False
            try:
                fresh = load_version(self.name, wanted)
            except Exception as exc:
                log.exception("could not load %s v%s; v%s keeps serving", self.name, wanted, serving)
                self._failed_to(wanted, f"could not load v{wanted} ({type(exc).__name__}: {exc}); "
                                        f"v{serving} keeps serving")
                return False
            self.current = fresh
            self.last_swap_error, self._failed = None, None
            log.info("%s: now serving v%s (was v%s)", self.name, wanted, serving)
            return True

    def _recently_failed(self, version: str) -> bool:
        return (self._failed is not None and self._failed[0] == version
                and time.monotonic() - self._failed[1] < self.retry_seconds)

    def _failed_to(self, version: str | None, message: str) -> None:
        self._failed = (version, time.monotonic())
        self.last_swap_error = {"version": version, "error": message, "at": _now()}


def _first_load(name: str) -> Serving:
    """The version to start with; unlike a failed swap there is nothing to fall back on, so it is an error."""
    version = _champion_or_error(name)
    try:
        return load_version(name, version)
    except Exception as exc:
        raise PoiseError(f"could not load {name} v{version} (its @champion): {type(exc).__name__}: {exc}",
                         f"roll back with `poise rollback {name}` or promote a working version") from exc


def _champion_or_error(name: str) -> str:
    version = versions.alias_version(name, versions.CHAMPION)
    if version is None:
        raise PoiseError(f"model {name!r} has no @champion to serve",
                         f"promote a version first: poise promote {name} VERSION")
    return version


def pick_model(model_name: str | None) -> str:
    """The model to serve: the one named, or the only one registered."""
    if model_name:
        if "@" in model_name or ":" in model_name:
            raise PoiseError(f"{model_name!r} names a version; the server always follows @champion",
                             "pass the bare model name, and promote the version you want served")
        name, _ = versions.resolve(model_name)  # a clear error, listing the known names, if unknown
        return name
    names = [entry["name"] for entry in versions.list_models()]
    if len(names) == 1:
        return names[0]
    if not names:
        raise PoiseError("there is no registered model to serve", "train one first: poise train DATA --target COLUMN")
    raise PoiseError(f"{len(names)} registered models ({', '.join(sorted(names))}); which one should be served?",
                     "name it: poise serve --model NAME")


# --- the app ---------------------------------------------------------------------------------------------------


def create_app(model_name: str | None = None, settings: Settings | None = None, poll_seconds: float = 2.0,
               token: str | None = None, store: PredictionStore | None = None) -> FastAPI:
    """The serving app for ``model_name``'s @champion; loads it now, so a broken setup fails before binding.

    ``token`` (else ``POISE_SERVE_TOKEN``) protects every endpoint but ``/health`` and the docs.
    """
    settings = settings or get_settings()
    tracking.connect(settings)
    token = _token(token)
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
    app.state.on_shutdown = []
    app.add_exception_handler(RequestValidationError, _invalid_request)
    guarded = APIRouter(dependencies=[Depends(_bearer_check(token))])

    @app.get("/health", tags=["status"])
    def health() -> dict[str, Any]:
        """Liveness and what is served; open without a token so probes need no secret."""
        serving = holder.current
        return {
            "status": "degraded" if holder.last_swap_error else "ok",
            "model": holder.name, "version": serving.version, "loaded_at": serving.loaded_at,
            "last_checked_at": holder.last_checked_at, "last_swap_error": holder.last_swap_error,
            "last_log_error": app.state.last_log_error,
        }

    @guarded.get("/model", tags=["status"])
    def model_info() -> dict[str, Any]:
        """The served version: holdout metrics, threshold, features and when it was trained."""
        return holder.current.info

    @guarded.post("/predict", response_model=PredictResponse, tags=["predict"])
    def predict(body: PredictRequest, allow_extra: bool = Query(False, description=_ALLOW_EXTRA)) -> JSONResponse:
        """Score one record or a batch of records (JSON)."""
        serving, rows = holder.current, body.rows()
        _check_every_number_finite(rows)
        frame = pd.DataFrame.from_records(rows)
        _check_every_record_complete(rows, frame.columns, serving.loaded.card.features)
        return _answer(app, serving, frame, allow_extra)

    @guarded.post("/predict/csv", response_model=PredictResponse, tags=["predict"], openapi_extra=_CSV_BODY)
    async def predict_csv(request: Request,
                          allow_extra: bool = Query(False, description=_ALLOW_EXTRA)) -> JSONResponse:
        """Score a CSV batch: a multipart upload (field ``file``) or the CSV itself as the body (``text/csv``)."""
        body = await _read_body(request)  # parsing runs off the event loop: a big upload blocks no one else
        frame, warnings = await run_in_threadpool(_read_csv, body, request.headers.get("content-type", ""))
        return await run_in_threadpool(_answer, app, holder.current, frame, allow_extra, warnings)

    @guarded.post("/feedback", tags=["feedback"])
    def feedback(body: FeedbackRequest) -> dict[str, Any]:
        """Attach true labels to logged predictions, by request id (and row number)."""
        card = holder.current.loaded.card
        try:
            if body.labels is not None:
                labelled = store.attach_labels(body.request_id, [_as_class(card, y) for y in body.labels])
            else:
                labelled = store.attach_label(body.request_id, int(body.row or 0), _as_class(card, body.label))
        except UnknownRequestError as exc:
            raise HTTPException(404, detail=_problem(exc)) from None
        except FeedbackError as exc:
            raise HTTPException(422, detail=_problem(exc)) from None
        return {"request_id": body.request_id, "labelled": labelled}

    @guarded.post("/admin/reload", tags=["admin"])
    def reload() -> dict[str, Any]:
        """Check @champion now (and retry a version that failed to load) instead of waiting for the poll."""
        changed = holder.check(force=True)
        return {"changed": changed, "model": holder.name, "version": holder.current.version,
                "last_swap_error": holder.last_swap_error}

    app.include_router(guarded)
    return app


_ALLOW_EXTRA = "Ignore columns the model does not know instead of rejecting the request."
_CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
                           "required": ["file"]},
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


def _answer(app: FastAPI, serving: Serving, frame: pd.DataFrame, allow_extra: bool,
            warnings: list[str] | None = None) -> JSONResponse:
    """Predict with one version, log the rows, answer; the version in the body is the one that predicted."""
    try:
        scored = serving.loaded.predict(frame, allow_extra=allow_extra)
    except ModelInputError as exc:
        raise HTTPException(422, detail=_problem(exc)) from None
    proba = scored["proba"].astype(float).tolist()
    pred = scored["pred"].tolist()
    request_id = None
    try:
        request_id = app.state.store.log(serving.loaded.name, serving.version, frame, proba, pred)[0].request_id
    except Exception as exc:  # a full disk must not take predictions down; /health shows it
        log.exception("could not log a prediction request")
        app.state.last_log_error = {"error": f"{type(exc).__name__}: {exc}", "at": _now()}
    body = {
        "model": serving.loaded.name, "version": serving.version, "request_id": request_id,
        "predictions": [{"proba": p, "pred": y} for p, y in zip(proba, pred, strict=True)],
        "warnings": warnings or [],
    }
    return JSONResponse(body, headers={"X-Model-Version": serving.version})


def _check_every_number_finite(rows: list[dict[str, Scalar]]) -> None:
    """JSON ``Infinity`` and ``NaN`` are numbers no model can use; null is how a missing value is sent."""
    for i, row in enumerate(rows):
        for column, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise HTTPException(422, detail={
                    "problem": f"record {i} field {column!r} is {value!r}, not a finite number",
                    "fix": f"send a finite number for {column!r}, or null where it is not known",
                })


def _check_every_record_complete(rows: list[dict[str, Scalar]], columns: pd.Index, features: list[str]) -> None:
    """A feature some records carry and others leave out is most likely a client bug, not a missing value."""
    present = [c for c in features if c in columns]
    for i, row in enumerate(rows):
        lacking = [c for c in present if c not in row]
        if lacking:
            raise HTTPException(422, detail={
                "problem": f"record {i} lacks {', '.join(map(repr, lacking))}, which other records carry",
                "fix": "send every feature in every record; use null for a value that is not known",
            })


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_CSV_BYTES:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CSV_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> HTTPException:
    return HTTPException(413, detail={"problem": f"the upload is larger than {MAX_CSV_BYTES // 2**20} MB",
                                      "fix": "split the batch into smaller files"})


def _read_csv(body: bytes, content_type: str) -> tuple[pd.DataFrame, list[str]]:
    """The uploaded table (the ``file`` part of a multipart form, or the body itself) and what reading it changed."""
    if content_type.lower().startswith("multipart/form-data"):
        body = _file_part(body, content_type)
    from poise.tools.data import read_csv_bytes, reading_notes

    if not body.strip():
        raise HTTPException(422, detail={"problem": "the CSV is empty", "fix": "upload a header row and some rows"})
    try:
        frame = read_csv_bytes(body)
    except DataError as exc:
        raise HTTPException(422, detail=_problem(exc)) from None
    if frame.empty:
        raise HTTPException(422, detail={"problem": "the CSV has a header but no rows", "fix": "add rows to score"})
    infinite = [note for note in reading_notes(frame) if note.kind == "infinite"]
    if infinite:  # a file read for training may treat them as missing; a request is answered as sent
        columns = ", ".join(map(repr, infinite[0].columns))
        raise HTTPException(422, detail={"problem": f"the CSV holds infinite values (inf, -inf) in {columns}",
                                         "fix": f"send finite numbers in {columns}, or leave unknown cells empty"})
    return frame, [str(note) for note in reading_notes(frame)]


def _file_part(body: bytes, content_type: str) -> bytes:
    """Pull the uploaded file out of a multipart body with the standard library (no form-parsing dependency)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    for part in parts:
        if part.get_param("name", header="content-disposition") == "file" or part.get_filename():
            return part.get_payload(decode=True) or b""
    raise HTTPException(422, detail={"problem": "the multipart upload has no file part",
                                     "fix": "send the CSV in a form field named 'file' (curl -F file=@rows.csv)"})


def _as_class(card: Any, label: Label | None) -> Label:
    """A true label in the model's own values: ``"1"`` from a JSON client means the class ``1``."""
    for known in (card.positive_label, card.negative_label):
        if label == known or str(label) == str(known):
            return known
    raise HTTPException(422, detail={
        "problem": f"label {label!r} is neither of the model's classes {card.positive_label!r} / "
                   f"{card.negative_label!r}",
        "fix": f"send {card.positive_label!r} or {card.negative_label!r} as each true label",
    })


# --- auth, errors, time ----------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="Required when the server was started with a token.")


def _bearer_check(token: str | None) -> Any:
    """A dependency that lets a request through only with ``Authorization: Bearer <token>`` (if a token is set)."""

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if token is None:
            return
        sent = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(sent.encode(), token.encode()):
            raise HTTPException(
                401,
                detail={"problem": "missing or wrong bearer token",
                        "fix": "send the header 'Authorization: Bearer <token>' with the server's token"},
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def _token(token: str | None) -> str | None:
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    return (token.strip() or None) if token else None


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """Body-shape errors in the same ``problem``/``fix`` form as every other 422, naming the field.

    The offending input is not echoed back: it may be a whole batch.
    """
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems: dict[str, str] = {}
    for error in errors:
        where, message = _describe(error)
        problems.setdefault(where, message)
    problem = "; ".join(f"{w}: {m}" if w else m for w, m in list(problems.items())[:5]) or str(exc)
    if request.url.path == "/feedback":
        fix = 'send {"request_id": ..., "labels": [...]} or {"request_id": ..., "row": N, "label": ...}'
    else:
        fix = 'send {"records": [{"column": value, ...}, ...]} or {"record": {...}}; see /docs'
    slim = [{k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in errors[:20]]
    return JSONResponse(status_code=422, content={
        "detail": {"problem": f"invalid request: {problem}", "fix": fix, "errors": jsonable_encoder(slim)}
    })


_UNION_MEMBERS = {"str", "int", "float", "bool"}


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """(field path, message) of one pydantic error; one message per field for the scalar union, not four."""
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    if error.get("type") == "json_invalid":
        return "", f"the body is not valid JSON ({(error.get('ctx') or {}).get('error', 'decode error')})"
    if loc and loc[-1] in _UNION_MEMBERS:
        return ".".join(loc[:-1]), "must be a string, number, boolean or null"
    return ".".join(loc), str(error.get("msg", "invalid"))


def _problem(exc: PoiseError) -> dict[str, str | None]:
    return {"problem": exc.problem, "fix": exc.fix}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# --- running it ------------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname may resolve anywhere: treat it as exposed


def serve(model_name: str | None = None, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          poll_seconds: float = 2.0) -> None:
    """Run the server with uvicorn; off loopback only with a token, so a model is never exposed by accident."""
    token = _token(token)
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

    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - naming, not binding
    url = f"http://[{local}]:{port}" if ":" in local else f"http://{local}:{port}"
    note = servers.announce(get_settings().home, url, app.state.holder.name)
    app.state.on_shutdown.append(lambda: servers.withdraw(note))  # uvicorn ends a SIGTERM by re-raising it
    uvicorn.run(app, host=host, port=port, log_level="info")
