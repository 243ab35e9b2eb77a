"""Alembic migrations, run for real (`alembic upgrade`) from an empty database."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.support.sample_app import APP_DIR, alembic, migrate


@pytest.fixture
def empty_db(postgres_server) -> str:
    return postgres_server.create_database()


def _dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_upgrade_from_empty_applies_both_revisions_and_keeps_rows(postgres_server, empty_db):
    db = _dbname(empty_db)
    migrate(empty_db, "0001_initial")
    assert postgres_server.psql("SELECT version_num FROM alembic_version", db) == "0001_initial"
    before = postgres_server.psql("SELECT id, name FROM projects ORDER BY id", db)
    assert before == "1|Website\n2|Mobile app"

    migrate(empty_db)

    assert postgres_server.psql("SELECT version_num FROM alembic_version", db) == "0002_project_status"
    # The column added by 0002 reached the rows that existed before it, via its server default.
    after = postgres_server.psql("SELECT id, name, status FROM projects ORDER BY id", db)
    assert after == "1|Website|active\n2|Mobile app|active"
    assert postgres_server.psql("SELECT count(*) FROM notes", db) == "3"


@pytest.mark.parametrize("table, column", [
    ("users", "password_hash"), ("users", "role"), ("projects", "status"), ("notes", "project_id"),
])
def test_head_schema_has_columns(postgres_server, empty_db, table, column):
    migrate(empty_db)
    found = postgres_server.psql(
        f"SELECT count(*) FROM information_schema.columns WHERE table_name = '{table}' "
        f"AND column_name = '{column}'", _dbname(empty_db))
    assert found == "1"


def test_status_is_constrained(postgres_server, empty_db):
    migrate(empty_db)
    with pytest.raises(RuntimeError, match="projects_status_valid"):
        postgres_server.psql("UPDATE projects SET status = 'bogus' WHERE id = 1", _dbname(empty_db))


def test_downgrade_to_first_revision_drops_column(postgres_server, empty_db):
    migrate(empty_db)
    alembic(empty_db, "downgrade", "0001_initial")
    columns = postgres_server.psql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'projects'",
        _dbname(empty_db))
    assert "status" not in columns.split()


def test_accepts_sqlalchemy_form_of_database_url(postgres_server, empty_db):
    migrate(empty_db.replace("postgresql://", "postgresql+psycopg://", 1))
    assert postgres_server.psql("SELECT version_num FROM alembic_version",
                                _dbname(empty_db)) == "0002_project_status"


def test_heads_lists_one_head():
    out = alembic("postgresql://unused@127.0.0.1:1/unused", "heads")
    assert out.split() == ["0002_project_status", "(head)"]


FAILING_REVISION = '''
from alembic import op
import sqlalchemy as sa

revision = "0003_broken"
down_revision = "0002_project_status"


def upgrade():
    op.add_column("notes", sa.Column("extra", sa.Text))
    op.execute("SELECT 1/0")
'''


def test_failed_migration_leaves_schema_untouched(postgres_server, empty_db, tmp_path):
    # A copy of the app with a third revision that fails half-way, as a bad release would ship.
    app_copy = tmp_path / "app"
    shutil.copytree(APP_DIR, app_copy, ignore=shutil.ignore_patterns("__pycache__"))
    (app_copy / "migrations" / "versions" / "0003_broken.py").write_text(FAILING_REVISION)
    migrate(empty_db, "0001_initial")

    proc = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=app_copy,
                          env={**os.environ, "DATABASE_URL": empty_db}, capture_output=True, text=True)

    assert proc.returncode != 0 and "division by zero" in proc.stderr
    db = _dbname(empty_db)
    # One transaction for the whole upgrade: neither 0002 nor half of 0003 stuck.
    assert postgres_server.psql("SELECT version_num FROM alembic_version", db) == "0001_initial"
    columns = postgres_server.psql("SELECT column_name FROM information_schema.columns "
                                   "WHERE table_name IN ('projects', 'notes')", db).split()
    assert "status" not in columns and "extra" not in columns
