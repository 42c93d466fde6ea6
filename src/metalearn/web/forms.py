"""Reading a page's form: URL-encoded fields (the request gate has bounded the body), and the
check every page write makes: a signed-in session and its CSRF token."""
from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import HTTPException, Request, status

from metalearn.web.sessions import COOKIE, CSRF_FIELD, Session, check_csrf

MAX_FIELDS = 512


class Form:
    """A submitted form's fields: each name with the values it was sent with, in order."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str, default: str = "") -> str:
        """The field's last value, else default."""
        values = self.fields.get(name)
        return values[-1] if values else default

    def all(self, name: str) -> list[str]:
        """Every value of a repeated field (checkboxes, a multiple select)."""
        return list(self.fields.get(name, []))


async def read_form(request: Request) -> Form:
    """The URL-encoded fields of the request's body (415 for any other encoding)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            "a page form is sent as application/x-www-form-urlencoded")
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        fields = parse_qs(body, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"form over {MAX_FIELDS} fields") from exc
    return Form(fields)


async def write_form(request: Request) -> tuple[Session, Form]:
    """The session and fields of a page write: 401 without a signed-in session, 403 without
    its CSRF token (the gate has already refused a write with no session cookie)."""
    session = request.app.state.sessions.require(request.cookies.get(COOKIE))
    form = await read_form(request)
    check_csrf(session, form.get(CSRF_FIELD))
    return session, form
