"""The three modules (/api/notes, /api/projects, /api/reports), open to every signed-in role."""
from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse

from . import db
from .auth import login_required
from .logs import logger

MAX_SLOW_MS = 30_000


def _answer(request: Request, key: str, value) -> JSONResponse:
    user = request.state.user
    return JSONResponse({key: value, "viewer": {"username": user["username"], "role": user["role"]}})


@login_required
async def notes(request: Request) -> JSONResponse:
    return _answer(request, "notes", await db.list_notes(request.app.state.pool))


@login_required
async def projects(request: Request) -> JSONResponse:
    return _answer(request, "projects", await db.list_projects(request.app.state.pool))


@login_required
async def reports(request: Request) -> JSONResponse:
    return _answer(request, "report", await db.report(request.app.state.pool))


async def slow(request: Request) -> JSONResponse:
    """GET /api/slow?ms=N: answer after N ms. Only with APP_ALLOW_SLOW=1 (for drain tests); else 404."""
    if not request.app.state.settings.allow_slow:
        return JSONResponse({"error": "not found"}, status_code=404)
    return await _slow(request)


@login_required
async def _slow(request: Request) -> JSONResponse:
    try:
        ms = min(max(int(request.query_params.get("ms", "1000")), 0), MAX_SLOW_MS)
    except ValueError:
        return JSONResponse({"error": "ms must be an integer"}, status_code=400)
    logger.info("slow request started", extra={"method": request.method, "path": request.url.path})
    await asyncio.sleep(ms / 1000)
    return JSONResponse({"slept_ms": ms})
