"""POST /login, POST /logout, and `login_required` for the endpoints only signed-in users may call."""
from __future__ import annotations

import functools
import json

from starlette.requests import Request
from starlette.responses import JSONResponse

from . import db
from .passwords import DUMMY_HASH, verify_password
from .sessions import COOKIE_NAME

UNAUTHORIZED = {"error": "authentication required"}


def login_required(endpoint):
    """Answer 401 JSON unless the request carries a live session; else set request.state.user."""
    @functools.wraps(endpoint)
    async def wrapper(request: Request):
        user = await request.app.state.sessions.load(request.cookies.get(COOKIE_NAME))
        if user is None:
            return JSONResponse(UNAUTHORIZED, status_code=401)
        request.state.user = user
        return await endpoint(request)
    return wrapper


async def _credentials(request: Request) -> tuple[str, str] | None:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return None
    return username, password


async def login(request: Request) -> JSONResponse:
    """JSON {"username", "password"} -> 200 with a session cookie; 401 on bad credentials."""
    creds = await _credentials(request)
    if creds is None:
        return JSONResponse({"error": 'expected JSON {"username": ..., "password": ...}'}, status_code=400)
    user = await db.find_user(request.app.state.pool, creds[0])
    # Always run one scrypt, so unknown users and wrong passwords take the same time.
    ok = verify_password(creds[1], user["password_hash"] if user else DUMMY_HASH)
    if user is None or not ok:
        return JSONResponse({"error": "invalid credentials"}, status_code=401)
    cookie = await request.app.state.sessions.create(user)
    response = JSONResponse({"username": user["username"], "role": user["role"]})
    response.set_cookie(COOKIE_NAME, cookie, max_age=request.app.state.settings.session_ttl_s,
                        httponly=True, samesite="lax", path="/")
    return response


@login_required
async def logout(request: Request) -> JSONResponse:
    """End the session in Redis and clear the cookie."""
    await request.app.state.sessions.end(request.cookies.get(COOKIE_NAME))
    response = JSONResponse({"status": "signed out"})
    response.delete_cookie(COOKIE_NAME, path="/")
    return response
