"""/healthz, /readyz, /version, /metrics: what the pipeline and monitoring probe."""
from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import db
from .schema import head_revisions

# Each dependency check gets this long; /readyz must answer even when a dependency hangs.
CHECK_TIMEOUT_S = 3


async def healthz(request: Request) -> JSONResponse:
    """200 while the process is alive and serving; deliberately checks nothing else."""
    return JSONResponse({"status": "ok"})


async def _check_database(state) -> str | None:
    revisions = await db.schema_revisions(state.pool)
    heads = set(head_revisions())
    if revisions != heads:
        at = ", ".join(sorted(revisions)) or "no migrations applied"
        return f"schema: database at {at}, migrations head is {', '.join(sorted(heads))}"
    return None


async def _check_redis(state) -> str | None:
    await state.redis.ping()
    return None


async def _run_check(name: str, check, state) -> str | None:
    try:
        return await asyncio.wait_for(check(state), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"{name}: no answer within {CHECK_TIMEOUT_S}s"
    except Exception as exc:  # any failure is a reason to be unready, reported rather than raised
        detail = " ".join(str(exc).split())  # driver errors span lines; a reason is one line
        return f"{name}: {type(exc).__name__}: {detail}"


async def readyz(request: Request) -> JSONResponse:
    """200 when PostgreSQL and Redis answer and the schema is at the Alembic head; else 503 + reason."""
    state = request.app.state
    if state.settings.fault_readiness:
        reasons = ["fault: APP_FAULT_READINESS=1"]
    else:
        results = await asyncio.gather(_run_check("database", _check_database, state),
                                       _run_check("redis", _check_redis, state))
        reasons = [r for r in results if r]
    if reasons:
        return JSONResponse({"status": "unready", "reason": "; ".join(reasons)}, status_code=503)
    return JSONResponse({"status": "ready"})


async def version(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    return JSONResponse({"release": settings.release, "git_sha": settings.git_sha})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
