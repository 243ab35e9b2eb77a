/**
 * Add projects.status to a table that already has rows (the column default fills them).
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  // A column default (not an application default) so existing rows get a value in the same statement
  // and NOT NULL holds without a separate backfill; PostgreSQL 11+ does this without a rewrite.
  pgm.addColumn("projects", { status: { type: "text", notNull: true, default: "active" } });
  pgm.addConstraint("projects", "projects_status_valid", { check: "status IN ('active', 'archived')" });
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.dropConstraint("projects", "projects_status_valid");
  pgm.dropColumn("projects", "status");
};
