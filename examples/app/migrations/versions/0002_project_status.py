"""Add projects.status to a table that already has rows (server default fills them).

Revision ID: 0002_project_status
Revises: 0001_initial
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_project_status"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A server default (not a Python default) so existing rows get a value in the same statement
    # and NOT NULL holds without a separate backfill; PostgreSQL 11+ does this without a rewrite.
    op.add_column("projects", sa.Column("status", sa.Text, nullable=False, server_default="active"))
    op.create_check_constraint("projects_status_valid", "projects", "status IN ('active', 'archived')")


def downgrade() -> None:
    op.drop_constraint("projects_status_valid", "projects", type_="check")
    op.drop_column("projects", "status")
