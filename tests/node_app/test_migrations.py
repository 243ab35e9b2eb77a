"""Migrations: the stack's migrate command, node-pg-migrate's table, and what /readyz makes of it."""
from __future__ import annotations

import shutil

import httpx

from .conftest import MIGRATE, migrate, sh

SHIPPED = ["0001_initial", "0002_project_status"]


def _readyz(app) -> tuple[int, dict]:
    response = httpx.get(app.url + "/readyz", timeout=10)
    return response.status_code, response.json()


def test_unready_before_migrating_then_ready_after(start_node_app, node_release, postgres_server):
    url = postgres_server.create_database()
    app = start_node_app(database_url=url)
    assert _readyz(app) == (503, {"status": "unready",
                                  "reason": "schema: pending 0001_initial, 0002_project_status"})
    output = migrate(node_release, url)
    assert "> - 0001_initial" in output and "> - 0002_project_status" in output
    assert _readyz(app) == (200, {"status": "ready"})
    names = postgres_server.psql("SELECT name FROM pgmigrations ORDER BY id", dbname=url.rsplit("/", 1)[1])
    assert names.splitlines() == SHIPPED


def test_migrating_again_has_nothing_to_do(node_release, node_database):
    assert "No migrations to run!" in migrate(node_release, node_database)


def test_second_migration_fills_existing_rows(start_node_app, node_release, postgres_server):
    url = postgres_server.create_database()
    db = url.rsplit("/", 1)[1]
    sh(node_release, f"{MIGRATE} 1", {"DATABASE_URL": url})  # only 0001: tables and seed rows
    postgres_server.psql("INSERT INTO projects (name) VALUES ('Added before 0002')", dbname=db)
    app = start_node_app(database_url=url)
    assert _readyz(app) == (503, {"status": "unready", "reason": "schema: pending 0002_project_status"})

    migrate(node_release, url)
    rows = postgres_server.psql("SELECT name || '=' || status FROM projects ORDER BY id", dbname=db)
    assert rows.splitlines() == ["Website=active", "Mobile app=active", "Added before 0002=active"]
    assert _readyz(app)[0] == 200


def test_database_ahead_of_the_release_is_still_ready(start_node_app, node_release, postgres_server):
    # After a rollback the database keeps the newer release's migrations; the older release must serve.
    url = postgres_server.create_database()
    migrate(node_release, url)
    postgres_server.psql("INSERT INTO pgmigrations (name, run_on) VALUES ('0003_from_a_newer_release', now())",
                         dbname=url.rsplit("/", 1)[1])
    assert _readyz(start_node_app(database_url=url)) == (200, {"status": "ready"})


def test_failing_migration_leaves_the_schema_as_it_was(node_release, postgres_server, tmp_path):
    url = postgres_server.create_database()
    # The shipped migrations plus a broken third, beside a package.json that makes .js files ES modules.
    shutil.copytree(node_release / "migrations", tmp_path / "migrations")
    shutil.copy(node_release / "package.json", tmp_path / "package.json")
    (tmp_path / "migrations" / "0003_broken.js").write_text(
        "export const up = (pgm) => { pgm.sql('CREATE TABLE half_done (id int)'); "
        "pgm.sql('SELECT no_such_function()'); };\n")
    proc = sh(node_release, f"{MIGRATE.replace('-m migrations', '-m ' + str(tmp_path / 'migrations'))}",
              {"DATABASE_URL": url}, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "no_such_function" in proc.stdout + proc.stderr
    # One transaction for all pending files: not even 0001 stays applied.
    assert postgres_server.psql("SELECT to_regclass('users') IS NULL AND to_regclass('half_done') IS NULL",
                                dbname=url.rsplit("/", 1)[1]) == "t"
