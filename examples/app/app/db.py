"""PostgreSQL access: one small async connection pool per process, and the queries the app runs."""
from __future__ import annotations

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

# Short timeouts so a dead or unreachable database makes requests (and /readyz) fail fast, not hang.
CONNECT_TIMEOUT_S = 2
ACQUIRE_TIMEOUT_S = 2


def make_pool(database_url: str) -> AsyncConnectionPool:
    """A pool that is not yet open; open it in the app lifespan (`await pool.open(wait=False)`)."""
    return AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=5,
        open=False,
        timeout=ACQUIRE_TIMEOUT_S,
        # Connections broken by a database restart are detected and replaced when borrowed.
        check=AsyncConnectionPool.check_connection,
        # Give up background reconnects soon (backoff 1 s, 2 s, ...): after that each request that
        # finds no connection starts a fresh attempt, so recovery follows the database within seconds.
        reconnect_timeout=3,
        kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "row_factory": dict_row,
                "application_name": "shipshape-sample-app"},
    )


async def fetch_all(pool: AsyncConnectionPool, sql: str, params: tuple = ()) -> list[dict]:
    async with pool.connection() as conn:
        cur = await conn.execute(sql, params)
        return await cur.fetchall()


async def fetch_one(pool: AsyncConnectionPool, sql: str, params: tuple = ()) -> dict | None:
    rows = await fetch_all(pool, sql, params)
    return rows[0] if rows else None


async def find_user(pool: AsyncConnectionPool, username: str) -> dict | None:
    return await fetch_one(pool, "SELECT id, username, role, password_hash FROM users WHERE username = %s",
                           (username,))


async def list_notes(pool: AsyncConnectionPool) -> list[dict]:
    return await fetch_all(pool, """
        SELECT n.id, n.title, n.body, p.name AS project, n.created_at::text AS created_at
        FROM notes n JOIN projects p ON p.id = n.project_id ORDER BY n.id""")


async def list_projects(pool: AsyncConnectionPool) -> list[dict]:
    return await fetch_all(pool, "SELECT id, name, status, created_at::text AS created_at "
                                 "FROM projects ORDER BY id")


async def report(pool: AsyncConnectionPool) -> dict:
    """Counts the reports page shows: projects by status, notes per project, users by role."""
    by_status = await fetch_all(pool, "SELECT status, count(*) AS n FROM projects GROUP BY status")
    per_project = await fetch_all(pool, """
        SELECT p.name AS project, count(n.id) AS notes
        FROM projects p LEFT JOIN notes n ON n.project_id = p.id GROUP BY p.name ORDER BY p.name""")
    by_role = await fetch_all(pool, "SELECT role, count(*) AS n FROM users GROUP BY role")
    return {
        "projects_by_status": {r["status"]: r["n"] for r in by_status},
        "notes_per_project": {r["project"]: r["notes"] for r in per_project},
        "users_by_role": {r["role"]: r["n"] for r in by_role},
    }


async def schema_revisions(pool: AsyncConnectionPool) -> set[str]:
    """Revisions recorded in alembic_version (empty if migrations never ran)."""
    async with pool.connection() as conn:
        exists = await (await conn.execute("SELECT to_regclass('alembic_version') AS t")).fetchone()
        if exists["t"] is None:
            return set()
        rows = await (await conn.execute("SELECT version_num FROM alembic_version")).fetchall()
        return {r["version_num"] for r in rows}
