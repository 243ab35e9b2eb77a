"""Alembic environment: the database URL comes from DATABASE_URL, in either libpq or SQLAlchemy form."""
from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        raise SystemExit("DATABASE_URL is not set (e.g. postgresql://user:pw@127.0.0.1:5432/app)")
    # The contract hands out libpq URLs; SQLAlchemy needs the driver named to pick psycopg 3.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def run_offline() -> None:
    context.configure(url=_database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(_database_url(), poolclass=pool.NullPool,
                           connect_args={"connect_timeout": 10})
    with engine.connect() as connection:
        # One transaction for the whole upgrade: a failing migration leaves the schema untouched.
        context.configure(connection=connection, transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
