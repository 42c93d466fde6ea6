"""The interactive API docs, /docs (Swagger UI) and /redoc (ReDoc), served with their scripts,
stylesheet and icon from the installed fastapi-offline package, so they render with no network
(FastAPI's own pages load them from a public CDN)."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from metalearn.api.auth import TOKEN_ENV
from metalearn.api.gate import MAX_BODY
from metalearn.api.overrides import MAX_DEPTH

# fastapi-offline ships static/swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
ASSETS_PACKAGE = "fastapi_offline"
ASSETS_URL = "/docs-assets"
DOCS_URL, REDOC_URL = "/docs", "/redoc"

DESCRIPTION = f"""\
Start, meta-test, cancel and follow training attempts of the metalearn run registry, and adapt a
finished one to your own few examples (predict).

**Authorization.** Requests that change something (every `POST`) need the bearer token the
server was started with (`{TOKEN_ENV}`); reads need it too when the server listens off
loopback. On the `/docs` page press **Authorize**, paste the token (without `Bearer `) and
confirm: every request sent from it then carries `Authorization: Bearer <token>`. A wrong or
missing token is answered with 401; a server started without a token refuses those requests
with 403, in both cases before the request's body is read. `/health` is always open.

**Limits.** A body over {MAX_BODY // 1024} KB, with or without a `Content-Length`, is refused
with 413. An override nests at most {MAX_DEPTH} brackets deep, and every number it sets is finite.

**Following an attempt.** `POST /runs` answers 202 with the new attempt's id; poll
`GET /runs/{{id}}/metrics`, passing each page's `last_step` back as `after_step`, until the
status is `completed`, `failed` or `interrupted`.
"""
TAGS = [
    {"name": "runs", "description": "Training and meta-test attempts: start, follow, cancel."},
    {"name": "server", "description": "Whether the server and its registry are up."},
]


def add_docs(app: FastAPI) -> None:
    """Register /docs, /redoc and their assets on an app made with docs_url=redoc_url=None."""
    app.mount(ASSETS_URL, StaticFiles(packages=[(ASSETS_PACKAGE, "static")]), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # validatorUrl null: Swagger UI never sends the spec to its public validator
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,  # the fonts are another CDN; ReDoc falls back to local ones
        )
