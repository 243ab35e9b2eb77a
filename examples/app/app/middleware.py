"""ASGI middleware: access log + metrics around everything, security headers, the deliberate-fault switch."""
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


# Where nginx fronts the app (a VPS) it sets its own and drops these; on Cloud Run nothing else does.
SECURITY_HEADERS = {b"x-content-type-options": b"nosniff", b"x-frame-options": b"DENY",
                    b"referrer-policy": b"strict-origin-when-cross-origin",
                    b"content-security-policy": b"default-src 'self'; frame-ancestors 'none'"}


class SecurityHeadersMiddleware:
    """Send the usual security headers on every answer that does not set its own."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((k, v) for k, v in SECURITY_HEADERS.items() if k not in present)]
            await send(message)

        await self.app(scope, receive, send_wrapper)
