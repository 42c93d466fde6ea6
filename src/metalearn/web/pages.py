"""Rendering a page: the Jinja2 templates (every value autoescaped, control characters written
out), who is looking (signed in or not), and the reads rule the JSON API follows."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from metalearn.visible import visible
from metalearn.web.sessions import COOKIE, CSRF_FIELD, Session, Sessions

HERE = Path(__file__).resolve().parent
TEMPLATES, STATIC = HERE / "templates", HERE / "static"


def _finalize(value: Any) -> Any:
    """Every {{ value }}: markup we built (SVG charts) as it is, other text with control
    characters written out (then autoescaped), None as an empty cell."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return ""
    return visible(value) if isinstance(value, str) else value


def duration(seconds: float | None) -> str:
    """1h 02m, 3m 05s, 12.3 s; empty for None."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {secs:02d}s"


def number(value: float | None, digits: int = 4) -> str:
    """A metric value with digits significant digits; empty for None."""
    return "" if value is None else f"{value:.{digits}g}"


def when(value: Any) -> str:
    """A stored UTC time to the second; empty for None."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "svg"], default=True),
                  undefined=StrictUndefined, finalize=_finalize, trim_blocks=True, lstrip_blocks=True)
ENV.filters.update(duration=duration, number=number, when=when)


@dataclass(frozen=True)
class Viewer:
    """Who asks for a page: their session (None when not signed in) and what the server allows."""

    session: Session | None
    can_sign_in: bool  # the server has a token (without one nobody can write)

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


def sessions_of(request: Request) -> Sessions:
    return request.app.state.sessions


def viewer(request: Request) -> Viewer:
    """The page's viewer; where reads need the token (off loopback), a visitor who has not
    signed in is sent to the sign-in page first."""
    sessions = sessions_of(request)
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None and request.app.state.reads_need_session:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(status.HTTP_303_SEE_OTHER, "sign in first",
                            headers={"Location": f"/signin?next={quote(target, safe='')}"})
    return Viewer(session, sessions.enabled)


ViewerDep = Annotated[Viewer, Depends(viewer)]


def signed_in(viewer: ViewerDep) -> Viewer:
    """A viewer who has signed in (pages that only make sense to one: the start form)."""
    if viewer.session is None:
        raise HTTPException(status.HTTP_303_SEE_OTHER, "sign in first", headers={"Location": "/signin"})
    return viewer


SignedInDep = Annotated[Viewer, Depends(signed_in)]


def render(template: str, viewer: Viewer, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The template rendered for viewer, with its CSRF token for forms, as an HTML response."""
    html = ENV.get_template(template).render(viewer=viewer, csrf_field=CSRF_FIELD, **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def fragment(template: str, *, active: bool, **context: Any) -> HTMLResponse:
    """Part of a page (table rows, a chart) that a page's script (static/live.js) swaps in every
    few seconds; its X-Live header tells the script whether to ask again (active) or stop."""
    html = ENV.get_template(template).render(**context)
    return HTMLResponse(html, headers={**SECURITY_HEADERS, "X-Live": "active" if active else "done"})


# Scripts only from this server (no inline script, no other host), no framing, no sniffing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def local_path(target: str | None, default: str = "/") -> str:
    """target when it is a path on this server (an open redirect otherwise), else default."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default
