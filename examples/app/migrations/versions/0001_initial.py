"""Initial schema: users, projects, notes; seed sample projects and notes.

Revision ID: 0001_initial
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

ROLES = ("admin", "member", "viewer")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.Text, nullable=False, unique=True),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(f"role IN {ROLES!r}", name="users_role_valid"),
    )
    projects = op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    notes = op.create_table(
        "notes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    # Sample data, so a fresh deploy has something to show and migration 0002 meets existing rows.
    op.bulk_insert(projects, [{"id": 1, "name": "Website"}, {"id": 2, "name": "Mobile app"}])
    op.execute("SELECT setval('projects_id_seq', 2)")
    op.bulk_insert(notes, [
        {"project_id": 1, "title": "Launch checklist", "body": "DNS, TLS, backups."},
        {"project_id": 1, "title": "Copy review", "body": "Landing page text."},
        {"project_id": 2, "title": "Beta testers", "body": "Invite the first ten."},
    ])


def downgrade() -> None:
    op.drop_table("notes")
    op.drop_table("projects")
    op.drop_table("users")
