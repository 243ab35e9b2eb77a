"""The ASGI application (`app.main:app`): routes, middleware, and the lifespan that owns the pools.

Run: python -m uvicorn app.main:app --host 127.0.0.1 --port $PORT --timeout-graceful-shutdown 20
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import FileResponse
from starlette.routing import Route

from . import api, auth, db, health
from .logs import logger, setup_logging
from .middleware import FaultMiddleware, ObserveMiddleware, SecurityHeadersMiddleware
from .sessions import SessionStore, make_redis
from .settings import Settings

STATIC_DIR = Path(__file__).parent / "static"

setup_logging()


@asynccontextmanager
async def lifespan(app: Starlette):
    """Open the PostgreSQL pool and Redis client at startup; close both after the last request.

    uvicorn runs the shutdown half only after in-flight requests have finished (or the
    graceful-shutdown timeout passed), so closing here cannot cut a request short.
    """
    settings = Settings.from_env()
    app.state.settings = settings
    app.state.pool = db.make_pool(settings.database_url)
    # wait=False: start even while the database is down; /readyz reports it until it is back.
    await app.state.pool.open(wait=False)
    app.state.redis = make_redis(settings.redis_url)
    app.state.sessions = SessionStore(app.state.redis, settings.secret_key, settings.session_ttl_s)
    logger.info("started: release %s (%s)", settings.release, settings.git_sha)
    try:
        yield
    finally:
        await app.state.pool.close(timeout=5)
        await app.state.redis.aclose()
        logger.info("shutdown complete: database pool and redis client closed")


async def index(request):
    return FileResponse(STATIC_DIR / "index.html")


routes = [
    Route("/", index),
    Route("/healthz", health.healthz),
    Route("/readyz", health.readyz),
    Route("/version", health.version),
    Route("/metrics", health.metrics),
    Route("/login", auth.login, methods=["POST"]),
    Route("/logout", auth.logout, methods=["POST"]),
    Route("/api/notes", api.notes),
    Route("/api/projects", api.projects),
    Route("/api/reports", api.reports),
    Route("/api/slow", api.slow),
]

app = Starlette(routes=routes, lifespan=lifespan,
                middleware=[Middleware(ObserveMiddleware), Middleware(SecurityHeadersMiddleware),
                            Middleware(FaultMiddleware)])
