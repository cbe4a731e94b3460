"""A real OpenAI-compatible HTTP server for tests, answering from a script.

Mocking the SDK would test our assumptions about it; this speaks HTTP on 127.0.0.1 so the real
``openai`` client (its retries, timeouts and parsing) runs exactly as it would against a model.
Each POST /v1/chat/completions takes the next scripted reply from a queue; an empty queue is an
HTTP 500 whose body says so, which makes a test that sends more requests than it scripted fail
loudly.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMPTY_QUEUE_MESSAGE = "ScriptedLLMServer: no scripted reply left for this request"


@dataclass(frozen=True)
class _Reply:
    """What to send back for one request."""

    status: int = 200
    content: str | None = None
    refusal: str | None = None
    body: Any = None  # for non-200 replies: dict (sent as JSON) or str
    hang_seconds: float = 0.0
    finish_reason: str = "stop"
    usage: bool = True
    content_type: str | None = None  # set: send ``body`` verbatim with this type instead of a completion


@dataclass
class _Script:
    """The queue of replies and the record of requests, shared with the handler threads."""

    model: str
    replies: deque[_Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)

    def record(self, body: dict[str, Any], headers: dict[str, str]) -> _Reply | None:
        with self.lock:
            self.requests.append(body)
            self.headers.append(headers)
            return self.replies.popleft() if self.replies else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ScriptedHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: pytest output should show test results, not access logs."""

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            model = {"id": self.server.script.model, "object": "model", "created": 0, "owned_by": "tests"}
            self._send(200, {"object": "list", "data": [model]})
        else:
            self._send(404, _error_body(f"no route GET {self.path}", "not_found"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, _error_body(f"no route POST {self.path}", "not_found"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, _error_body("request body is not JSON", "invalid_request_error"))
            return
        reply = self.server.script.record(body, {k.lower(): v for k, v in self.headers.items()})
        self._answer(reply, body)

    def _answer(self, reply: _Reply | None, request: dict[str, Any]) -> None:
        if reply is None:
            self._send(500, _error_body(EMPTY_QUEUE_MESSAGE, "server_error"))
            return
        if reply.hang_seconds and self.server.script.closing.wait(reply.hang_seconds):
            self.close_connection = True  # shutting down mid-hang: hang up without an answer
            return
        if reply.content_type is not None:
            self._send(reply.status, reply.body, reply.content_type)
            return
        if reply.status != 200:
            self._send(reply.status, reply.body if reply.body is not None else _error_body("scripted", "error"))
            return
        self._send(200, _completion(self.server.script.model, reply, request))

    def _send(self, status: int, payload: Any, content_type: str | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        if content_type is None:
            content_type = "text/plain; charset=utf-8" if isinstance(payload, str) else "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout); nothing to tell it
        self.close_connection = True


class _ScriptedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: _Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script


def _error_body(message: str, kind: str) -> dict[str, Any]:
    """The OpenAI error shape, so the SDK extracts a readable message."""
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _count_tokens(text: str) -> int:
    """A stand-in tokenizer: words are close enough for 'usage was reported'."""
    return max(1, len(text.split()))


def _completion(model: str, reply: _Reply, request: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.refusal is not None:
        message["refusal"] = reply.refusal
    answer: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}],
    }
    if reply.usage:
        prompt = sum(_count_tokens(str(m.get("content", ""))) for m in request.get("messages", []))
        completion = _count_tokens(reply.content or reply.refusal or "")
        answer["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    return answer


class ScriptedLLMServer:
    """Context manager: ``with ScriptedLLMServer() as srv: srv.reply_json({...}); ... srv.base_url``.

    ``model`` is the name the server reports in its answers (whatever the client asked for), so a
    test can tell the reported name from the requested one.
    """

    def __init__(self, model: str = "scripted-model") -> None:
        self._script = _Script(model=model)
        self._httpd: _ScriptedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def __enter__(self) -> ScriptedLLMServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        self._script.closing.clear()
        self._httpd = _ScriptedHTTPServer(self._script)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-llm-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving; a handler in the middle of a hang returns at once without answering."""
        self._script.closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    # -- script

    def reply_json(self, obj: Any, *, times: int = 1, usage: bool = True, finish_reason: str = "stop") -> None:
        """A valid chat completion whose message content is ``obj`` as JSON text."""
        self._queue(_Reply(content=json.dumps(obj), usage=usage, finish_reason=finish_reason), times)

    def reply_text(self, text: str, *, times: int = 1, usage: bool = True, finish_reason: str = "stop") -> None:
        """A valid chat completion whose content is ``text`` as-is (e.g. broken JSON)."""
        self._queue(_Reply(content=text, usage=usage, finish_reason=finish_reason), times)

    def reply_refusal(self, text: str, *, times: int = 1) -> None:
        """A completion with no content and the model's refusal message."""
        self._queue(_Reply(content=None, refusal=text), times)

    def reply_status(self, code: int, body: Any = None, *, times: int = 1) -> None:
        """An HTTP error; ``body`` is a dict (sent as JSON) or text; default is an OpenAI error body."""
        if not 100 <= code <= 599 or code == 200:
            raise ValueError(f"status must be a non-200 HTTP code, got {code}")
        self._queue(_Reply(status=code, body=body), times)

    def reply_raw(self, body: str, content_type: str = "application/json", *, status: int = 200,
                  times: int = 1) -> None:
        """``body`` verbatim, whatever it is: a broken envelope, a proxy's HTML page."""
        self._queue(_Reply(status=status, body=body, content_type=content_type), times)

    def reply_hang(self, seconds: float, obj: Any = None, *, times: int = 1) -> None:
        """Wait ``seconds`` before answering (``obj`` as JSON, or ``{}``): makes client timeouts happen."""
        self._queue(_Reply(content=json.dumps({} if obj is None else obj), hang_seconds=seconds), times)

    def _queue(self, reply: _Reply, times: int) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._script.lock:
            self._script.replies.extend([reply] * times)

    # -- what was received

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat completion requests received, in order."""
        with self._script.lock:
            return list(self._script.requests)

    @property
    def headers(self) -> list[dict[str, str]]:
        """The (lower-cased) headers of those requests, in the same order."""
        with self._script.lock:
            return list(self._script.headers)

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        with self._script.lock:
            return len(self._script.replies)
