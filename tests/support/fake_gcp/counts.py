"""What the fake Cloud Run router saw: one Point per proxied request (a fake, for tests only).

The router (router.py) records every request it proxied to a revision; the Monitoring fake
(monitoring.py) reads them back as `run.googleapis.com/request_count` and `request_latencies`.

Example:

    counts = Counts()
    counts.record("shop", "shop-00002-abc", 503, 1.2)
    [p.code for p in counts.points(revision="shop-00002-abc")]     # [503]
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    """One request as seen by the router: which revision answered, with what, how fast, when."""

    service: str
    revision: str
    code: int
    latency_ms: float
    at: float


class Counts:
    """A thread-safe, append-only log of Points."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: list[Point] = []

    def record(self, service: str, revision: str, code: int, latency_ms: float,
               at: float | None = None) -> None:
        """Add one request; `at` (epoch seconds) defaults to now."""
        point = Point(service, revision, int(code), float(latency_ms),
                      time.time() if at is None else float(at))
        with self._lock:
            self._points.append(point)

    def points(self, service: str | None = None, revision: str | None = None,
               start: float = 0.0, end: float = float("inf")) -> list[Point]:
        """Points matching service/revision (None: any) with start <= at <= end, in recording order."""
        with self._lock:
            snapshot = list(self._points)
        return [p for p in snapshot
                if (service is None or p.service == service)
                and (revision is None or p.revision == revision)
                and start <= p.at <= end]
