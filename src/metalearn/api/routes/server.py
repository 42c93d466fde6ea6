"""The server's own state: /health, open to anyone."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from metalearn.api.models import Health
from metalearn.api.routes.app_state import RunnerDep, StoreDep
from metalearn.registry import schema

router = APIRouter()


@router.get("/health", tags=["server"], response_model=Health, summary="Is the server up",
            response_description="The registry answered",
            description="Open to anyone: the registry answers a query; how many attempts run.")
def health(store: StoreDep, runner: RunnerDep) -> dict[str, Any]:
    with store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok", "schema_version": schema.SCHEMA_VERSION,
            "running": len(runner.children), "max_parallel": runner.max_parallel,
            "max_queued": runner.max_queued}
