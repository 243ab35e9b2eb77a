/**
 * Initial schema: users, projects, notes; seed sample projects and notes.
 * Run by `node-pg-migrate up -m migrations` (all pending files in one transaction), recorded in pgmigrations.
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 */
export const up = (pgm) => {
  pgm.createTable("users", {
    id: "id",
    username: { type: "text", notNull: true, unique: true },
    role: { type: "text", notNull: true, check: "role IN ('admin', 'member', 'viewer')" },
    password_hash: { type: "text", notNull: true },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.createTable("projects", {
    id: "id",
    name: { type: "text", notNull: true, unique: true },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.createTable("notes", {
    id: "id",
    project_id: { type: "integer", notNull: true, references: "projects", onDelete: "CASCADE" },
    title: { type: "text", notNull: true },
    body: { type: "text", notNull: true, default: "" },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  // Sample data, so a fresh deploy has something to show and migration 0002 meets existing rows.
  pgm.sql("INSERT INTO projects (id, name) VALUES (1, 'Website'), (2, 'Mobile app')");
  pgm.sql("SELECT setval('projects_id_seq', 2)");
  pgm.sql(`INSERT INTO notes (project_id, title, body) VALUES
    (1, 'Launch checklist', 'DNS, TLS, backups.'),
    (1, 'Copy review', 'Landing page text.'),
    (2, 'Beta testers', 'Invite the first ten.')`);
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  pgm.dropTable("notes");
  pgm.dropTable("projects");
  pgm.dropTable("users");
};
