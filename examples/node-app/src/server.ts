/**
 * The server: `node dist/server.js`, listening on $HOST:$PORT, 127.0.0.1 by default (see docs/app-contract.md).
 *
 * Startup stops with exit 1 and a message naming the culprit when a variable is missing or malformed
 * or the log directory cannot be written. On SIGTERM or SIGINT it stops accepting, lets in-flight
 * requests finish (up to 20 s), closes the pools and exits 0.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";

import { makeHandler } from "./app.js";
import { makePool } from "./db.js";
import { withDeadline } from "./deadline.js";
import type { Deps } from "./http.js";
import { closeLogFile, describe, log, openLogFile } from "./logs.js";
import { MIGRATIONS_DIR, migrationNames } from "./schema.js";
import { SessionStore, makeRedis } from "./sessions.js";
import { settingsFromEnv } from "./settings.js";

const GRACE_MS = 20_000;
const CLOSE_TIMEOUT_MS = 5_000;
const INDEX_HTML = fileURLToPath(new URL("../public/index.html", import.meta.url));

function fail(message: string): never {
  log.error(`startup failed: ${message}`);
  process.exit(1);
}

/** Run a startup step; if it throws, log the reason and exit 1. */
function orFail<T>(step: () => T): T {
  try {
    return step();
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
}

function startupDeps(): Deps {
  const settings = orFail(() => settingsFromEnv());
  orFail(() => openLogFile(settings.logDir));
  const [migrations, indexHtml] = orFail(() => {
    try {
      return [migrationNames(), readFileSync(INDEX_HTML)] as const;
    } catch (err) {
      throw new Error(`the release is incomplete (${MIGRATIONS_DIR}, ${INDEX_HTML}): ${describe(err)}`);
    }
  });
  const pool = makePool(settings.databaseUrl);
  const redis = makeRedis(settings.redisUrl);
  const sessions = new SessionStore(redis, settings.secretKey, settings.sessionTtlS);
  return { settings, pool, redis, sessions, migrations, indexHtml };
}

/** Wait for `promise` at most `ms`; true if it settled in time (a failure to close is not fatal here). */
function within(ms: number, promise: Promise<unknown>): Promise<boolean> {
  return withDeadline(promise, ms, "close").then(() => true, () => false);
}

/** Stop accepting, drain in-flight requests to GRACE_MS, then close the pools; resolves the exit code. */
async function shutdown(server: Server, deps: Deps, signal: string): Promise<number> {
  log.info(`${signal} received: stopping, in-flight requests have ${GRACE_MS / 1000} s to finish`);
  // close() stops listening and closes idle keep-alive connections; busy ones close after their answer.
  const drained = new Promise<boolean>((resolve) => server.close(() => resolve(true)));
  const inTime = await within(GRACE_MS, drained);
  if (!inTime) {
    log.warning(`graceful shutdown timed out after ${GRACE_MS / 1000} s: closing the remaining connections`);
    server.closeAllConnections();
  }
  await within(CLOSE_TIMEOUT_MS, deps.pool.end());
  // close() lets queued commands finish; a Redis that is down or not answering gets destroy() at once.
  if (deps.redis.isReady) await within(CLOSE_TIMEOUT_MS, deps.redis.close());
  if (deps.redis.isOpen) deps.redis.destroy();
  log.info("shutdown complete: database pool and redis client closed");
  closeLogFile();
  return inTime ? 0 : 1;
}

function main(): void {
  const deps = startupDeps();
  let draining = false;
  const server = createServer(makeHandler(deps, () => draining));
  server.on("error", (err) => fail(`cannot listen on ${deps.settings.host}:${deps.settings.port}: ${describe(err)}`));
  server.listen(deps.settings.port, deps.settings.host, () => {
    const { release, gitSha, port } = deps.settings;
    log.info(`started: release ${release} (${gitSha}) on 127.0.0.1:${port}`);
  });
  const stop = (signal: string) => {
    if (draining) return log.info(`${signal} received again: already stopping`);
    draining = true;
    shutdown(server, deps, signal).then((code) => process.exit(code),
      (err) => { log.error("shutdown failed", { error: describe(err) }); process.exit(1); });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main();
