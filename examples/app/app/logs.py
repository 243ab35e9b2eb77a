"""JSON logs: one object per line on stdout (time, level, message, and request fields when present)."""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

REQUEST_FIELDS = ("method", "path", "status", "duration_ms")
logger = logging.getLogger("app")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update({k: getattr(record, k) for k in REQUEST_FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging() -> None:
    """Send app and uvicorn logs to stdout as JSON; drop uvicorn's plain-text access log.

    Called when app.main is imported, which uvicorn does after configuring its own logging,
    so these handlers replace uvicorn's. Our middleware writes the access lines instead.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    for name in ("app", "uvicorn", "uvicorn.error"):
        log = logging.getLogger(name)
        log.handlers = [handler] if name != "uvicorn.error" else []
        log.setLevel(logging.INFO)
        log.propagate = name == "uvicorn.error"  # uvicorn.error -> uvicorn: one handler, one line
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True
