/** The three modules (/api/notes, /api/projects, /api/reports), open to every signed-in role. */
import { setTimeout as sleep } from "node:timers/promises";

import { loginRequired } from "./auth.js";
import { listNotes, listProjects, report } from "./db.js";
import { json, type Ctx, type Handler, type Reply } from "./http.js";
import { log } from "./logs.js";

const MAX_SLOW_MS = 30_000;

function answer(ctx: Ctx, key: string, value: unknown): Reply {
  const { username, role } = ctx.user!;
  return json(200, { [key]: value, viewer: { username, role } });
}

export const notes = loginRequired(async (ctx) => answer(ctx, "notes", await listNotes(ctx.deps.pool)));
export const projects = loginRequired(async (ctx) => answer(ctx, "projects", await listProjects(ctx.deps.pool)));
export const reports = loginRequired(async (ctx) => answer(ctx, "report", await report(ctx.deps.pool)));

const slowSignedIn = loginRequired(async (ctx) => {
  const raw = ctx.url.searchParams.get("ms") ?? "1000";
  if (!/^-?\d+$/.test(raw)) return json(400, { error: "ms must be an integer" });
  const ms = Math.min(Math.max(Number(raw), 0), MAX_SLOW_MS);
  log.info("slow request started", { method: ctx.req.method, path: ctx.url.pathname });
  await sleep(ms);
  return json(200, { slept_ms: ms });
});

/** GET /api/slow?ms=N: answer after N ms. Only with APP_ALLOW_SLOW=1 (for drain tests); else 404. */
export const slow: Handler = async (ctx) =>
  ctx.deps.settings.allowSlow ? slowSignedIn(ctx) : json(404, { error: "not found" });
