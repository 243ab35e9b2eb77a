"""ASGI middleware: access log + metrics around everything, and the deliberate-fault switch."""
from __future__ import annotations

import random
import time

from prometheus_client import Counter, Histogram
from starlette.responses import JSONResponse

from .logs import logger

REQUESTS = Counter("app_requests_total", "HTTP requests answered", ["method", "path", "status"])
LATENCY = Histogram("app_request_duration_seconds", "HTTP request latency", ["method", "path"])

# Never faulted: the pipeline must still be able to see and probe a bad release.
FAULT_EXEMPT = frozenset({"/healthz", "/readyz", "/version", "/metrics"})
# Metric labels use known paths only, so random URLs cannot blow up the label set.
KNOWN_PATHS = frozenset({"/", "/login", "/logout", "/api/notes", "/api/projects", "/api/reports",
                         "/api/slow"}) | FAULT_EXEMPT


class ObserveMiddleware:
    """Log one JSON line and record metrics for every HTTP request, whatever answered it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # if the app raises before answering, that is what the client sees

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
            REQUESTS.labels(scope["method"], path, str(status)).inc()
            LATENCY.labels(scope["method"], path).observe(elapsed)
            logger.info("request", extra={"method": scope["method"], "path": scope["path"],
                                          "status": status, "duration_ms": round(elapsed * 1000, 2)})


class FaultMiddleware:
    """APP_FAULT_ERROR_RATE: answer that fraction of requests 500 (a deliberately bad release)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in FAULT_EXEMPT:
            rate = scope["app"].state.settings.fault_error_rate
            if rate > 0 and random.random() < rate:
                response = JSONResponse({"error": "injected fault (APP_FAULT_ERROR_RATE)"}, status_code=500)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)
