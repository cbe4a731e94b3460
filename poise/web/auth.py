"""Who is asking, and whether a form really came from our own page.

A visitor gets a session in a signed cookie (a random id and, once known, a name). The name is
the token holder's when the console was started with tokens (``--token NAME=SECRET``), or this
machine's user on loopback without a token: the same rule as ``poise serve``, binding beyond
loopback without a token is refused. Every form carries a CSRF token derived from the session id;
a POST without the right one is refused before it can act.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from poise.errors import PoiseError

TOKEN_ENV = "POISE_UI_TOKEN"
COOKIE = "poise_session"
ANONYMOUS_HOLDER = "token holder"


def parse_tokens(values: list[str] | str | None) -> dict[str, str]:
    """``["alice=S1", "S2"]`` or ``"alice=S1,S2"`` → secret → holder name (a bare secret's holder is unnamed)."""
    if values is None:
        return {}
    items = values.split(",") if isinstance(values, str) else [part for v in values for part in v.split(",")]
    tokens: dict[str, str] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, sep, secret = item.partition("=")
        name, secret = (name.strip(), secret.strip()) if sep else (ANONYMOUS_HOLDER, name)
        if not secret or not name:
            raise PoiseError(f"token {item!r} has an empty name or secret", "write NAME=SECRET or just SECRET")
        if len(secret) < 8:
            raise PoiseError(f"the token of {name!r} is shorter than 8 characters", "use a longer, random secret")
        tokens[secret] = name
    return tokens


@dataclass
class Session:
    sid: str
    name: str | None = None
    fresh: bool = False  # new in this request: the cookie must be set


class Signer:
    """Signs the session cookie and derives each session's CSRF token, with a key of this process."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or secrets.token_bytes(32)

    def _mac(self, purpose: str, payload: str) -> str:
        return hmac.new(self.key, f"{purpose}|{payload}".encode(), hashlib.sha256).hexdigest()

    def dump(self, session: Session) -> str:
        payload = base64.urlsafe_b64encode(json.dumps({"sid": session.sid, "name": session.name}).encode()).decode()
        return f"{payload}.{self._mac('session', payload)}"

    def load(self, cookie: str | None) -> Session:
        """The session in ``cookie``, or a new one when it is missing, forged or from another process."""
        if cookie and "." in cookie:
            payload, mac = cookie.rsplit(".", 1)
            if hmac.compare_digest(mac, self._mac("session", payload)):
                try:
                    data = json.loads(base64.urlsafe_b64decode(payload.encode()))
                    return Session(str(data["sid"]), data.get("name"))
                except (ValueError, KeyError, TypeError):
                    pass
        return Session(secrets.token_urlsafe(16), None, fresh=True)

    def csrf(self, session: Session) -> str:
        return self._mac("csrf", session.sid)

    def csrf_ok(self, session: Session, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(str(sent), self.csrf(session))


def holder(tokens: dict[str, str], sent: str | None) -> str | None:
    """The name of the holder of ``sent``, or None for a wrong token (compared in constant time)."""
    if not sent:
        return None
    found = None
    for secret, name in tokens.items():
        if hmac.compare_digest(secret.encode(), sent.strip().encode()):
            found = name
    return found
