"""Server-side sessions: the data lives in Redis; the cookie carries only a signed, random session id."""
from __future__ import annotations

import json
import secrets

from itsdangerous import BadSignature, TimestampSigner
from redis.asyncio import Redis

COOKIE_NAME = "session"
_KEY_PREFIX = "session:"


def make_redis(url: str) -> Redis:
    """A Redis client with short timeouts, so a dead Redis fails a request instead of hanging it."""
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, decode_responses=True)


class SessionStore:
    """Create, read and end sessions. Signing means a forged or altered cookie is never looked up."""

    def __init__(self, redis: Redis, secret_key: str, ttl_s: int):
        self.redis = redis
        self.ttl_s = ttl_s
        self._signer = TimestampSigner(secret_key, salt="shipshape-session")

    async def create(self, user: dict) -> str:
        """Store a session for `user`; return the signed cookie value."""
        session_id = secrets.token_urlsafe(32)
        data = {"user_id": user["id"], "username": user["username"], "role": user["role"]}
        await self.redis.set(_KEY_PREFIX + session_id, json.dumps(data), ex=self.ttl_s)
        return self._signer.sign(session_id).decode()

    async def load(self, cookie: str | None) -> dict | None:
        """The session data for a cookie value, or None if absent, forged, expired or ended."""
        session_id = self._unsign(cookie)
        if session_id is None:
            return None
        raw = await self.redis.get(_KEY_PREFIX + session_id)
        return json.loads(raw) if raw else None

    async def end(self, cookie: str | None) -> None:
        session_id = self._unsign(cookie)
        if session_id is not None:
            await self.redis.delete(_KEY_PREFIX + session_id)

    def _unsign(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            return self._signer.unsign(cookie, max_age=self.ttl_s).decode()
        except BadSignature:  # includes SignatureExpired
            return None
