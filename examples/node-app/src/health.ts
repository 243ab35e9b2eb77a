/** /healthz, /readyz, /version, /metrics: what the pipeline and monitoring probe. */
import { appliedMigrations } from "./db.js";
import { DeadlineError, withDeadline } from "./deadline.js";
import { json, type Ctx, type Deps, type Reply } from "./http.js";
import { describe } from "./logs.js";
import { registry } from "./metrics.js";
import { pendingMigrations } from "./schema.js";

// Each dependency check gets this long; /readyz must answer even when a dependency hangs.
const CHECK_TIMEOUT_MS = 3000;

/** 200 while the process is alive and serving; deliberately checks nothing else. */
export async function healthz(): Promise<Reply> {
  return json(200, { status: "ok" });
}

async function checkDatabase(deps: Deps): Promise<string | undefined> {
  const pending = pendingMigrations(deps.migrations, await appliedMigrations(deps.pool));
  return pending.length ? `schema: pending ${pending.join(", ")}` : undefined;
}

async function checkRedis(deps: Deps): Promise<string | undefined> {
  await deps.redis.ping();
  return undefined;
}

/** Run one check to a deadline; any failure becomes a one-line reason instead of an exception. */
async function runCheck(name: string, check: (deps: Deps) => Promise<string | undefined>,
  deps: Deps): Promise<string | undefined> {
  try {
    return await withDeadline(check(deps), CHECK_TIMEOUT_MS, name);
  } catch (err) {
    return err instanceof DeadlineError ? err.message : `${name}: ${describe(err)}`;
  }
}

/** 200 when PostgreSQL and Redis answer and no shipped migration is pending; else 503 with the reasons. */
export async function readyz(ctx: Ctx): Promise<Reply> {
  const { deps } = ctx;
  const reasons = deps.settings.faultReadiness
    ? ["fault: APP_FAULT_READINESS=1"]
    : (await Promise.all([runCheck("database", checkDatabase, deps), runCheck("redis", checkRedis, deps)]))
      .filter((r): r is string => r !== undefined);
  if (reasons.length) return json(503, { status: "unready", reason: reasons.join("; ") });
  return json(200, { status: "ready" });
}

export async function version(ctx: Ctx): Promise<Reply> {
  const { release, gitSha } = ctx.deps.settings;
  return json(200, { release, git_sha: gitSha });
}

export async function metrics(): Promise<Reply> {
  return { status: 200, body: await registry.metrics(), headers: { "content-type": registry.contentType } };
}
