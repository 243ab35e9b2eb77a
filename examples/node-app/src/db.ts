/** PostgreSQL access: one small pool per process, and every query the app runs. */
import pg from "pg";

import { log, describe } from "./logs.js";

// Short timeouts so a dead or unreachable database makes requests (and /readyz) fail fast, not hang.
const CONNECT_TIMEOUT_MS = 2000;
const QUERY_TIMEOUT_MS = 2500;

export type Row = Record<string, unknown>;

/** A pool that connects lazily: the app starts while PostgreSQL is down and recovers when it is back. */
export function makePool(databaseUrl: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: 5,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    application_name: "shipshape-node-sample-app",
  });
  // An idle connection dropped by a database restart: the pool discards it; without a listener
  // the 'error' event would crash the process.
  pool.on("error", (err) => log.warning("idle database connection lost", { error: describe(err) }));
  return pool;
}

async function rows(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<Row[]> {
  return (await pool.query(sql, params)).rows;
}

export async function findUser(pool: pg.Pool, username: string): Promise<Row | undefined> {
  return (await rows(pool, "SELECT id, username, role, password_hash FROM users WHERE username = $1",
    [username]))[0];
}

export function listNotes(pool: pg.Pool): Promise<Row[]> {
  return rows(pool, `
    SELECT n.id, n.title, n.body, p.name AS project, n.created_at::text AS created_at
    FROM notes n JOIN projects p ON p.id = n.project_id ORDER BY n.id`);
}

export function listProjects(pool: pg.Pool): Promise<Row[]> {
  return rows(pool, "SELECT id, name, status, created_at::text AS created_at FROM projects ORDER BY id");
}

/** Counts the reports page shows: projects by status, notes per project, users by role. */
export async function report(pool: pg.Pool): Promise<Record<string, Record<string, number>>> {
  const [byStatus, perProject, byRole] = await Promise.all([
    rows(pool, "SELECT status AS k, count(*)::int AS n FROM projects GROUP BY status"),
    rows(pool, `SELECT p.name AS k, count(n.id)::int AS n
                FROM projects p LEFT JOIN notes n ON n.project_id = p.id GROUP BY p.name ORDER BY p.name`),
    rows(pool, "SELECT role AS k, count(*)::int AS n FROM users GROUP BY role"),
  ]);
  const toMap = (rs: Row[]) => Object.fromEntries(rs.map((r) => [String(r.k), Number(r.n)]));
  return { projects_by_status: toMap(byStatus), notes_per_project: toMap(perProject),
    users_by_role: toMap(byRole) };
}

/** Names recorded in node-pg-migrate's table `pgmigrations` (empty if migrations never ran). */
export async function appliedMigrations(pool: pg.Pool): Promise<Set<string>> {
  const [exists] = await rows(pool, "SELECT to_regclass('pgmigrations') IS NOT NULL AS present");
  if (!exists.present) return new Set();
  return new Set((await rows(pool, "SELECT name FROM pgmigrations")).map((r) => String(r.name)));
}

const UPSERT = `
  INSERT INTO users (username, role, password_hash) VALUES ($1, $2, $3)
  ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role, password_hash = EXCLUDED.password_hash
  RETURNING (xmax = 0) AS created`;

/** Create or update a user; true if created, false if updated. */
export async function upsertUser(client: pg.ClientBase, username: string, role: string,
  passwordHash: string): Promise<boolean> {
  return Boolean((await client.query(UPSERT, [username, role, passwordHash])).rows[0].created);
}
