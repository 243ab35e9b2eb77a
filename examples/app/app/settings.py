"""Configuration from the environment, validated once at startup into a frozen object."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A missing or malformed environment variable; the message names it."""


def libpq_url(url: str) -> str:
    """postgresql+psycopg://... (SQLAlchemy form) -> postgresql://... (libpq form)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def sqlalchemy_url(url: str) -> str:
    """postgresql://... (libpq form) -> postgresql+psycopg://... (SQLAlchemy form, for Alembic)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _required(env: dict, name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required (see docs/app-contract.md)")
    return value


def _fraction(env: dict, name: str) -> float:
    raw = env.get(name, "").strip() or "0"
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={raw!r}: expected a number between 0 and 1")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment."""

    database_url: str
    redis_url: str
    secret_key: str
    release: str = "dev"
    git_sha: str = "unknown"
    fault_error_rate: float = 0.0
    fault_readiness: bool = False
    allow_slow: bool = False
    session_ttl_s: int = 8 * 3600

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        return cls(
            database_url=libpq_url(_required(env, "DATABASE_URL")),
            redis_url=_required(env, "REDIS_URL"),
            secret_key=_required(env, "SECRET_KEY"),
            release=env.get("RELEASE_ID") or "dev",
            git_sha=env.get("GIT_SHA") or "unknown",
            fault_error_rate=_fraction(env, "APP_FAULT_ERROR_RATE"),
            fault_readiness=env.get("APP_FAULT_READINESS", "") == "1",
            allow_slow=env.get("APP_ALLOW_SLOW", "") == "1",
        )
