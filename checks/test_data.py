"""Data services: PostgreSQL, Redis, migrations and backups (facts from one SSH round trip)."""
from __future__ import annotations

import pytest

from shipshape.facts import is_loopback

ORDER = 4
AREA = "Data: PostgreSQL, Redis, backups"
NO_ALEMBIC = "release has no Alembic migrations: its readiness check covers the schema"


def _private(facts, port, check) -> None:
    addresses = facts.listening(port)
    public = [a for a in addresses if not is_loopback(a)]
    assert not public, f"port {port} listens on public interface(s) {', '.join(public)}"
    check.detail(f"listening on {', '.join(addresses)}" if addresses else "not listening at all")


def test_postgres_answers(facts, stack, check):
    """PostgreSQL accepts connections"""
    check.target(f"127.0.0.1:{stack.database.port}")
    ready = facts["database"]["ready"]
    assert ready["rc"] == 0, ready["output"]
    check.detail(ready["output"])


def test_postgres_not_public(facts, stack, check):
    """PostgreSQL listens on loopback only"""
    check.target(f"port {stack.database.port}")
    _private(facts, stack.database.port, check)


def test_redis_answers(facts, stack, check):
    """Redis answers PING with the stack's password"""
    check.target(f"127.0.0.1:{stack.redis.port}")
    result = facts["redis"]["authenticated"]
    assert "PONG" in result["output"], result["output"][-300:]
    check.detail("PONG")


def test_redis_not_public(facts, stack, check):
    """Redis listens on loopback only"""
    check.target(f"port {stack.redis.port}")
    _private(facts, stack.redis.port, check)


def test_redis_refuses_anonymous(facts, stack, check):
    """Redis refuses commands without the password"""
    check.target(f"PING without AUTH on 127.0.0.1:{stack.redis.port}")
    output = facts["redis"]["anonymous"]["output"]
    assert "PONG" not in output, "Redis answered PONG to an unauthenticated client"
    assert "NOAUTH" in output, f"no NOAUTH refusal: {output[-300:]}"
    check.detail(output.splitlines()[-1] if output else "")


def test_migrations_at_head(facts, stack, check):
    """Database schema is at the Alembic head of the serving release"""
    serving = facts.serving_slots()
    assert serving, f"no serving slot in slots.json ({facts['slots_error'] or facts.slots})"
    release = next(iter(serving.values()))["release"]
    heads = facts["heads"].get(release) or []
    revision = facts["database"]["revision"]
    check.target(f"{stack.database.name}.alembic_version vs release {release}")
    if not heads:
        # The probe finds no revision under migrations/versions/ (absent or empty: it cannot tell).
        # A database that still records one means the release lost its migrations, not that the app
        # has none (an app on another tool, or none at all, has no alembic_version table).
        recorded = revision["output"] if revision["rc"] == 0 else ""
        assert not recorded, (f"database is at Alembic revision {recorded}, but release {release} has no "
                              "migrations/versions/ revisions (left out of the artifact?)")
        pytest.skip(NO_ALEMBIC)
    assert revision["rc"] == 0, f"cannot read alembic_version: {revision['output'][-300:]}"
    assert len(heads) == 1, f"expected one Alembic head in release {release}, found {heads}"
    assert revision["output"] == heads[0], f"database at {revision['output'] or 'nothing'}, head is {heads[0]}"
    check.detail(f"at head {heads[0]}")


def test_latest_backup_recent(facts, stack, layout, check):
    """Latest backup is younger than shipshape:checks.backup_max_age_hours"""
    check.target(f"{layout.backups}/*.dump")
    latest = facts["latest_backup"]
    assert latest, f"no backup in {layout.backups}"
    age_hours = (facts["now"] - latest["mtime"]) / 3600
    limit = stack.checks.backup_max_age_hours
    check.detail(f"{latest['path'].rsplit('/', 1)[-1]}, {age_hours:.1f} h old (limit {limit:g} h)")
    assert age_hours < limit, f"latest backup is {age_hours:.1f} h old (limit {limit:g} h)"
