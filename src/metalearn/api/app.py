"""The HTTP API over the registry: start, meta-test, cancel and follow attempts, and predict
with their checkpoints.

This module wires the app: its state, the request gate, the validation-error answer, the docs
pages, the routers (api/routes/), each with the token check it needs, and the web pages (web/)."""
from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from metalearn.api import responses as r
from metalearn.api.auth import TokenCheck, no_check
from metalearn.api.docs import DESCRIPTION, TAGS, add_docs
from metalearn.api.gate import MAX_BODY, RequestGate
from metalearn.api.overrides import OverrideValidator
from metalearn.api.routes import predict, run_actions, run_reads, server
from metalearn.api.runner import Runner
from metalearn.inference.cache import CheckpointCache
from metalearn.registry.store import Store
from metalearn.web.mount import add_pages

log = logging.getLogger(__name__)


def create_app(
    store: Store,
    runner: Runner,
    validator: OverrideValidator,
    *,
    token: str | None,
    token_for_reads: bool = False,
    predict_cache: int = 2,
) -> FastAPI:
    """The FastAPI app; writes always need the bearer token, reads too when token_for_reads.
    predict_cache: how many loaded checkpoints POST /runs/{id}/predict keeps (least recently used out)."""
    tokens = TokenCheck(token)
    app = FastAPI(title="metalearn", description=DESCRIPTION, openapi_tags=TAGS,
                  docs_url=None, redoc_url=None)
    add_docs(app)
    app.state.store, app.state.runner, app.state.validator = store, runner, validator
    app.state.predict_cache = CheckpointCache(predict_cache)

    # The pages under / (web/): sign-in sessions, whose cookie the gate checks on a page write.
    pages = add_pages(app, tokens=tokens, reads_need_session=token_for_reads)
    # A write's token (a page write's session) before its body, and every body counted as it
    # is read (gate.py).
    app.add_middleware(RequestGate, check=tokens, max_body=MAX_BODY, pages=pages)
    app.add_exception_handler(RequestValidationError, invalid_request)

    app.include_router(server.router)
    app.include_router(run_actions.router, dependencies=[Depends(tokens)])
    app.include_router(predict.router, dependencies=[Depends(tokens)])
    app.include_router(run_reads.router, dependencies=[Depends(tokens if token_for_reads else no_check)],
                       responses=r.guarded(token_for_reads))
    return app


async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and what, never the input itself (it may be huge, or a secret)."""
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200],
               "type": e.get("type")} for e in exc.errors()[:20]]
    return JSONResponse({"detail": errors}, status_code=422)
