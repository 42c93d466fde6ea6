"""The first thing a request meets: a write's token, then a bounded body, before any route.

FastAPI reads a route's whole body before it solves the route's dependencies (the token check
among them), and a chunked body says no length up front: 200 MB sent chunked without a token
were read whole before the answer was 401. This ASGI middleware checks the token of every
request that may change state from its headers alone, then reads the body itself with a
running count, answering 413 as soon as it passes the limit, and hands the route the bytes
it read. The routes keep their own token dependency (and the OpenAPI document its scheme).
A page write (the web pages' forms) is checked the same way against a signed-in session's
cookie instead of the token (web/page_writes.py).
"""
from __future__ import annotations

from typing import Protocol

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metalearn.api.auth import TokenCheck


class PageRule(Protocol):
    """Which writes are the pages' and how their sender is checked (web/page_writes.py)."""

    def claims(self, path: str) -> bool: ...

    def verify(self, path: str, headers: Headers) -> None: ...


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # every other method is a write
MAX_BODY = 256 * 1024  # bytes: a request is a few overrides, never megabytes


class RequestGate:
    """Refuses a write without the token before its body is read, and any body over max_body."""

    def __init__(self, app: ASGIApp, *, check: TokenCheck, max_body: int, pages: PageRule | None = None) -> None:
        self.app, self.check, self.max_body, self.pages = app, check, max_body, pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] not in READ_METHODS:
            try:
                if self.pages is not None and self.pages.claims(scope["path"]):
                    self.pages.verify(scope["path"], headers)
                else:
                    self.check.verify_header(headers.get("authorization"))
            except HTTPException as exc:
                await JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)(scope, receive, send)
                return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(scope, receive, send)
            return
        parts, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nobody is left to answer
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if size > self.max_body:
                await self._too_large(scope, receive, send)
                return
            more = message.get("more_body", False)
        body, replayed = b"".join(parts), False

        async def replay() -> Message:
            """The body read above once, then the connection's own messages (a disconnect)."""
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        """413, without reading what is left of the body (the server then closes the connection)."""
        response = JSONResponse({"detail": f"request body over {self.max_body} bytes"}, status_code=413)
        await response(scope, receive, send)
