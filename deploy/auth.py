"""Who may call the model server: an optional bearer token, and never an open port by accident."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

TOKEN_ENV = "POISE_SERVE_TOKEN"

_bearer = HTTPBearer(auto_error=False, description="Required when the server was started with a token.")


def resolve_token(token: str | None) -> str | None:
    """The token given, else ``POISE_SERVE_TOKEN``; blank means none."""
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    return (token.strip() or None) if token else None


def bearer_check(token: str | None) -> Callable[..., None]:
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


def is_loopback(host: str) -> bool:
    """True if ``host`` can only be reached from this machine."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname may resolve anywhere: treat it as exposed
