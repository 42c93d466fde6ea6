"""Signed-in browser sessions: the API token, entered once, is traded for a random session id
kept in an HttpOnly, SameSite=Strict cookie; each session has its own CSRF token that every
form carries. The token itself never reaches the browser again (not in a cookie, URL or page)."""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import HTTPException, status

from metalearn.api.auth import TokenCheck

COOKIE = "metalearn_session"
CSRF_FIELD = "csrf"
LIFETIME_S = 12 * 3600  # a session lasts a working day; sign in again after
MAX_SESSIONS = 256  # the oldest is signed out past this (a server has a handful of users)


@dataclass(frozen=True)
class Session:
    """One signed-in browser: its cookie value, the CSRF token its forms carry, when it ends."""

    id: str
    csrf: str
    expires: float


class Sessions:
    """The server's signed-in sessions, in memory (a restart signs everyone out)."""

    def __init__(self, tokens: TokenCheck, *, lifetime_s: float = LIFETIME_S) -> None:
        self.tokens, self.lifetime_s = tokens, lifetime_s
        self._live: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether anyone can sign in: the server was started with a token."""
        return self.tokens.token is not None

    def sign_in(self, given: str) -> Session:
        """A new session for the right token; 401 (or 403 without a server token) otherwise."""
        self.tokens.verify(given)
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time() + self.lifetime_s)
        with self._lock:
            self._live[session.id] = session
            while len(self._live) > MAX_SESSIONS:
                self._live.popitem(last=False)
        return session

    def get(self, cookie: str | None) -> Session | None:
        """The live session a cookie value names, else None (unknown, or expired)."""
        if not cookie:
            return None
        with self._lock:
            session = self._live.get(cookie)
            if session is not None and session.expires < time.time():
                del self._live[cookie]
                session = None
        return session

    def sign_out(self, cookie: str | None) -> None:
        """End the session a cookie value names (nothing when there is none)."""
        with self._lock:
            self._live.pop(cookie or "", None)

    def require(self, cookie: str | None) -> Session:
        """The cookie's session, or 401 saying to sign in (the gate's check of a page write)."""
        session = self.get(cookie)
        if session is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first (/signin): this page "
                                "write needs a signed-in session")
        return session


def check_csrf(session: Session, given: str | None) -> None:
    """403 unless a form's CSRF field is its session's token (compared in constant time)."""
    if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the form's CSRF token is missing or wrong: "
                            "reload the page and submit it again")
