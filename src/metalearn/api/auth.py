"""Bearer-token checks: every state-changing request, and reads too off loopback."""
from __future__ import annotations

import hmac
import ipaddress

from fastapi import HTTPException, Request, status

TOKEN_ENV = "METALEARN_API_TOKEN"
MIN_TOKEN_LENGTH = 32  # off loopback; secrets.token_urlsafe(32) gives 43 characters


def is_loopback(host: str) -> bool:
    """Whether host only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenCheck:
    """A FastAPI dependency comparing the bearer token in constant time."""

    def __init__(self, token: str | None) -> None:
        self.token = token or None

    def __call__(self, request: Request) -> None:
        if self.token is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this server has no API token: set {TOKEN_ENV} where it starts to allow this request",
            )
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )


def no_check() -> None:
    """Reads on a loopback-only server need no token."""
