"""Reading what a client sent, and saying what is wrong with it.

Input mistakes (a missing or unknown column, text in a numeric column, an empty batch, an
infinite or NaN number) are HTTP 422 with ``{"detail": {"problem": ..., "fix": ...}}``, never a 500.
What reading an uploaded CSV changed (a decimal comma, junk cells read as missing) is returned as
warnings for the answer to carry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

import pandas as pd
from fastapi import HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import Message, Receive, Scope

from poise.contracts import Label
from poise.deploy.schemas import Scalar
from poise.errors import DataError, PoiseError
from poise.registry.model import ModelCard

#: The largest CSV upload accepted, unless ``create_app(max_csv_bytes=...)`` says otherwise.
MAX_CSV_BYTES = 64 * 1024 * 1024


# --- a CSV upload ----------------------------------------------------------------------------------------------


class CsvUploadRoute(APIRoute):
    """The route of a CSV upload: it reads at most ``app.state.max_csv_bytes``, and only a multipart body is a form.

    Both happen before FastAPI reads the body: a multipart file is spooled to disk as it arrives, so
    a limit checked in the endpoint would come after the whole upload had been stored.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_at_most(request: Request) -> Response:
            limit = int(request.app.state.max_csv_bytes)
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise too_large(limit)  # refused before a byte of the body is read
            return await handle(Request(_csv_not_form(request.scope), _receive_at_most(request.receive, limit)))

        return handle_at_most


def _receive_at_most(receive: Receive, limit: int) -> Receive:
    """``receive`` that ends the request once more than ``limit`` bytes of body arrived, declared or not."""
    received = 0

    async def receive_at_most() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(limit)
        return message

    return receive_at_most


def _csv_not_form(scope: Scope) -> Scope:
    """A body sent as ``application/x-www-form-urlencoded`` is still the CSV itself.

    ``curl --data-binary`` sends that type unless told otherwise; read as a form, the CSV's commas
    and semicolons would become form fields.
    """
    form_type = b"application/x-www-form-urlencoded"
    headers = scope["headers"]
    if not any(k == b"content-type" and v.split(b";")[0].strip().lower() == form_type for k, v in headers):
        return scope
    return {**scope, "headers": [(k, b"text/csv") if k == b"content-type" else (k, v) for k, v in headers]}


def too_large(limit: int) -> HTTPException:
    shown = f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit:,} bytes"
    return HTTPException(413, detail={"problem": f"the upload is larger than the server's limit of {shown}",
                                      "fix": f"split the batch into files of at most {shown} each"})


def no_file_part() -> HTTPException:
    return HTTPException(422, detail={"problem": "the multipart upload has no file part",
                                      "fix": "send the CSV in a form field named 'file' (curl -F file=@rows.csv)"})


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def read_csv(body: bytes) -> tuple[pd.DataFrame, list[str]]:
    """The uploaded table and what reading it changed."""
    from poise.tools.data import read_csv_bytes, reading_notes

    if not body.strip():
        raise HTTPException(422, detail={"problem": "the CSV is empty", "fix": "upload a header row and some rows"})
    try:
        frame = read_csv_bytes(body)
    except DataError as exc:
        raise HTTPException(422, detail=problem(exc)) from None
    if frame.empty:
        raise HTTPException(422, detail={"problem": "the CSV has a header but no rows", "fix": "add rows to score"})
    infinite = [note for note in reading_notes(frame) if note.kind == "infinite"]
    if infinite:  # a file read for training may treat them as missing; a request is answered as sent
        columns = ", ".join(map(repr, infinite[0].columns))
        raise HTTPException(422, detail={"problem": f"the CSV holds infinite values (inf, -inf) in {columns}",
                                         "fix": f"send finite numbers in {columns}, or leave unknown cells empty"})
    return frame, [str(note) for note in reading_notes(frame)]


# --- JSON records and labels -----------------------------------------------------------------------------------


def check_every_number_finite(rows: list[dict[str, Scalar]]) -> None:
    """JSON ``Infinity`` and ``NaN`` are numbers no model can use; null is how a missing value is sent."""
    for i, row in enumerate(rows):
        for column, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise HTTPException(422, detail={
                    "problem": f"record {i} field {column!r} is {value!r}, not a finite number",
                    "fix": f"send a finite number for {column!r}, or null where it is not known",
                })


def check_every_record_complete(rows: list[dict[str, Scalar]], columns: pd.Index, features: list[str]) -> None:
    """A feature some records carry and others leave out is most likely a client bug, not a missing value."""
    present = [c for c in features if c in columns]
    for i, row in enumerate(rows):
        lacking = [c for c in present if c not in row]
        if lacking:
            raise HTTPException(422, detail={
                "problem": f"record {i} lacks {', '.join(map(repr, lacking))}, which other records carry",
                "fix": "send every feature in every record; use null for a value that is not known",
            })


def as_class(card: ModelCard, label: Label | None) -> Label:
    """A true label in the model's own values: ``"1"`` from a JSON client means the class ``1``."""
    for known in (card.positive_label, card.negative_label):
        if label == known or str(label) == str(known):
            return known
    raise HTTPException(422, detail={
        "problem": f"label {label!r} is neither of the model's classes {card.positive_label!r} / "
                   f"{card.negative_label!r}",
        "fix": f"send {card.positive_label!r} or {card.negative_label!r} as each true label",
    })


# --- errors ----------------------------------------------------------------------------------------------------


def problem(exc: PoiseError) -> dict[str, str | None]:
    return {"problem": exc.problem, "fix": exc.fix}


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """Body-shape errors in the same ``problem``/``fix`` form as every other 422, naming the field.

    The offending input is not echoed back: it may be a whole batch.
    """
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems: dict[str, str] = {}
    for error in errors:
        where, message = _describe(error)
        problems.setdefault(where, message)
    summary = "; ".join(f"{w}: {m}" if w else m for w, m in list(problems.items())[:5]) or str(exc)
    if request.url.path == "/feedback":
        fix = 'send {"request_id": ..., "labels": [...]} or {"request_id": ..., "row": N, "label": ...}'
    else:
        fix = 'send {"records": [{"column": value, ...}, ...]} or {"record": {...}}; see /docs'
    slim = [{k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in errors[:20]]
    return JSONResponse(status_code=422, content={
        "detail": {"problem": f"invalid request: {summary}", "fix": fix, "errors": jsonable_encoder(slim)}
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
