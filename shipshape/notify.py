"""Deploy notifications to a Slack-compatible webhook. Best effort: never raises, never fails a deploy.

    notify(stack, "start", release="20261121120000-0123456789ab", who="alice@laptop")

The webhook URL is a secret (Slack's carries its token in the path), so nothing here prints it, nor
an exception text that could hold part of it: a failure prints one line with the event and the
error's class or HTTP status only.
"""
from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from shipshape.progress import console
from shipshape.secrets import SecretError
from shipshape.stackfile import secrets_path

EVENTS = {"start": "started", "success": "succeeded", "failure": "FAILED", "rollback": "rolled back"}
RETRIES = 2
BACKOFF_S = 0.2
# urllib3 logs each retry with the request path, which for Slack holds the token
URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")


def payload(stack_name: str, event: str, fields: dict) -> dict:
    """Slack reads `text`; the fields ride along for other consumers."""
    summary = " ".join(f"{k}={v}" for k, v in fields.items() if k in ("release", "git_sha", "who", "step"))
    text = f"[{stack_name}] deploy {EVENTS[event]}" + (f": {summary}" if summary else "")
    reason = fields.get("reason")
    if reason:
        text += f" ({reason})"
    return {"text": text, "stack": stack_name, "event": event, **fields}


def session(retries: int = RETRIES) -> requests.Session:
    """A session retrying connection errors, timeouts and 5xx (POST included: a duplicate beats a miss)."""
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=BACKOFF_S,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                  raise_on_status=False, respect_retry_after_header=False)
    http = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


def notify(stack, event: str, **fields) -> bool:
    """POST the event to stack.notifications.webhook; True if delivered or none is configured."""
    ref = stack.notifications.webhook
    if ref is None:
        return True
    try:
        if event not in EVENTS:
            return _warn(event, f"unknown event; expected one of {', '.join(EVENTS)}")
        url = ref.resolve(secrets_path(stack.name)).reveal()
        body = json.dumps(payload(stack.name, event, fields), default=str)
        with session() as http, _quiet_urllib3():
            response = http.post(url, data=body, headers={"Content-Type": "application/json"},
                                 timeout=stack.notifications.timeout)
        if response.status_code >= 300:
            return _warn(event, f"webhook answered HTTP {response.status_code}")
        return True
    except SecretError:
        return _warn(event, f"webhook secret {ref} could not be resolved")
    except Exception as error:  # noqa: BLE001 — a notification must never stop a deploy
        return _warn(event, _kind(error))


def _warn(event: str, why: str) -> bool:
    console.print(f"[yellow]warning:[/] notification {event!r} not sent: {why}", highlight=False,
                  soft_wrap=True)
    return False


def _kind(error: Exception) -> str:
    """The error's class, and the cause's class behind requests' retry wrapper (never its text)."""
    cause = getattr(error.args[0], "reason", None) if error.args else None
    return type(error).__name__ + (f" ({type(cause).__name__})" if isinstance(cause, Exception) else "")


@contextmanager
def _quiet_urllib3():
    """Drop urllib3's log records made by this thread while it posts to the webhook."""
    thread = threading.get_ident()
    drop = lambda record: record.thread != thread  # noqa: E731
    loggers = [logging.getLogger(name) for name in URLLIB3_LOGGERS]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)
