"""Bearer-token checks: every state-changing request, and reads too off loopback."""
from __future__ import annotations

import hmac
import ipaddress

from fastapi import HTTPException, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

TOKEN_ENV = "METALEARN_API_TOKEN"
MIN_TOKEN_LENGTH = 32  # off loopback; secrets.token_urlsafe(32) gives 43 characters
# Declares the bearer scheme in the OpenAPI document (the docs page's Authorize button); the
# checking is TokenCheck's, so a missing token is 401 or 403 as below, never HTTPBearer's own.
BEARER = HTTPBearer(
    scheme_name="bearerToken",
    description=f"The token the server was started with ({TOKEN_ENV}). On the docs page: "
                "**Authorize**, paste the token alone (no `Bearer ` before it), **Authorize**; "
                "every request the page sends then carries it.",
    auto_error=False,
)


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

    def __call__(self, credentials: HTTPAuthorizationCredentials | None = Security(BEARER)) -> None:
        self.verify(credentials.credentials if credentials is not None else "")  # None: no Bearer header

    def verify_header(self, authorization: str | None) -> None:
        """verify the token of an Authorization header, read as HTTPBearer reads it."""
        scheme, given = get_authorization_scheme_param(authorization)
        self.verify(given if scheme.lower() == "bearer" else "")

    def verify(self, given: str) -> None:
        """Raise 403 when this server has no token, 401 unless given is its token."""
        if self.token is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this server has no API token: set {TOKEN_ENV} where it starts to allow this request",
            )
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )


def no_check() -> None:
    """Reads on a loopback-only server need no token."""
