"""Command line for operators.

    APP_USER_PASSWORD=... python -m app.cli create-user --username alice --role member

create-user is idempotent: it creates the user, or updates role and password if it exists.
DATABASE_URL names the database (libpq or SQLAlchemy form).
"""
from __future__ import annotations

import argparse
import os
import sys

import psycopg

from .passwords import hash_password
from .settings import libpq_url

ROLES = ("admin", "member", "viewer")
UPSERT = """
    INSERT INTO users (username, role, password_hash) VALUES (%s, %s, %s)
    ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role, password_hash = EXCLUDED.password_hash
    RETURNING (xmax = 0) AS created"""


def create_user(database_url: str, username: str, role: str, password: str) -> bool:
    """Create or update a user; True if created, False if updated."""
    with psycopg.connect(libpq_url(database_url), connect_timeout=10) as conn:
        row = conn.execute(UPSERT, (username, role, hash_password(password))).fetchone()
    return bool(row[0])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="create or update a user (password from APP_USER_PASSWORD)")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    password = os.environ.get("APP_USER_PASSWORD", "")
    database_url = os.environ.get("DATABASE_URL", "")
    if not password:
        print("APP_USER_PASSWORD is not set (the password is read from it, never from arguments)",
              file=sys.stderr)
        return 2
    if not database_url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    created = create_user(database_url, args.username.strip(), args.role, password)
    print(f"{'created' if created else 'updated'} user {args.username} ({args.role})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
