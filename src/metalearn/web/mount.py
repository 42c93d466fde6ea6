"""Add the pages to the API's app: sessions, the static files, one router per page."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from metalearn.api.auth import TokenCheck
from metalearn.web.page_writes import PageWrites
from metalearn.web.pages import STATIC
from metalearn.web.routes import compare_page, run_forms, run_page, runs_page, sign_in, study_page
from metalearn.web.sessions import Sessions


def add_pages(app: FastAPI, *, tokens: TokenCheck, reads_need_session: bool) -> PageWrites:
    """Serve the pages from app (left out of its OpenAPI document); the rule the request gate
    applies to their writes. reads_need_session: reading a page needs a signed-in session, as
    reading the JSON API needs the token (a server listening off loopback)."""
    sessions = Sessions(tokens)
    app.state.sessions, app.state.reads_need_session = sessions, reads_need_session
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (sign_in, runs_page, run_page, run_forms, compare_page, study_page):
        app.include_router(module.router, include_in_schema=False)
    return PageWrites(sessions)
