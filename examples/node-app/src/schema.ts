/** The migrations shipped with this release, and which of them the database has not run yet. */
import { readdirSync } from "node:fs";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";

/** migrations/ next to dist/: the directory `node-pg-migrate up -m migrations` runs from the release. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../migrations", import.meta.url));

/** Migration names as node-pg-migrate records them in `pgmigrations`: file names without extension. */
export function migrationNames(dir: string = MIGRATIONS_DIR): string[] {
  return readdirSync(dir, { withFileTypes: true })
    // node-pg-migrate's default --ignore-pattern skips dot files; so does this.
    .filter((entry) => (entry.isFile() || entry.isSymbolicLink()) && !entry.name.startsWith("."))
    .map((entry) => entry.name.slice(0, entry.name.length - extname(entry.name).length))
    .sort();
}

/** Shipped migrations missing from the database. Extra rows (a newer release's) are fine: rollbacks. */
export function pendingMigrations(shipped: readonly string[], applied: ReadonlySet<string>): string[] {
  return shipped.filter((name) => !applied.has(name));
}
