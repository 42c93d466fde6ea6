"""Which writes are the pages' and how the request gate checks them: a signed-in session's
cookie (before the body is read) instead of the API's bearer token. Signing in is the one page
write without a session; its body (the token) is bounded by the gate like any other."""
from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import HTTPException, status
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from metalearn.web.sessions import COOKIE, Sessions

SIGN_IN = "/signin"
# Every page write is under one of these paths; the JSON API's are under /runs.
PREFIXES = ("/start", "/attempts/", "/signout")


class PageWrites:
    """The gate's rule for page writes."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def claims(self, path: str) -> bool:
        """Whether a write to path is a page's (checked here, not by the bearer token)."""
        return path == SIGN_IN or path.startswith(PREFIXES)

    def verify(self, path: str, headers: Headers) -> None:
        """Raise 403 for a form another site's page sent (its Origin names another host), then
        401 unless the write is a sign-in or carries a signed-in session's cookie."""
        origin = headers.get("origin")
        # "null" (a sandboxed frame, a file) is no origin of this server's either
        if origin is not None and urlsplit(origin).netloc != headers.get("host"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"a page write from another origin ({origin[:80]}) "
                                "is refused: submit the form from this server's own page")
        if path == SIGN_IN:
            return
        self.sessions.require(cookie_parser(headers.get("cookie", "")).get(COOKIE))
