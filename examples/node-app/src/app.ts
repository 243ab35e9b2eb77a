/** Routes, and the one request handler: fault switch, dispatch, error answer, access log and metrics. */
import type { IncomingMessage, ServerResponse } from "node:http";

import * as api from "./api.js";
import * as auth from "./auth.js";
import * as health from "./health.js";
import { json, type Deps, type Handler, type Reply } from "./http.js";
import { describe, log } from "./logs.js";
import { FAULT_EXEMPT, observe } from "./metrics.js";

/** Sent on every answer that does not set its own: on Cloud Run no nginx adds them (on a VPS nginx
 * drops these and sends its own). */
const SECURITY_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "strict-origin-when-cross-origin",
  "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
};

const index: Handler = async (ctx) => ({
  status: 200, body: ctx.deps.indexHtml, headers: { "content-type": "text/html; charset=utf-8" },
});

/** path -> method -> handler. HEAD is answered wherever GET is (Node drops the body). */
export const ROUTES: Record<string, Record<string, Handler>> = {
  "/": { GET: index },
  "/healthz": { GET: health.healthz },
  "/readyz": { GET: health.readyz },
  "/version": { GET: health.version },
  "/metrics": { GET: health.metrics },
  "/login": { POST: auth.login },
  "/logout": { POST: auth.logout },
  "/api/notes": { GET: api.notes },
  "/api/projects": { GET: api.projects },
  "/api/reports": { GET: api.reports },
  "/api/slow": { GET: api.slow },
};

function route(method: string, path: string): Handler {
  const methods = ROUTES[path];
  if (methods === undefined) return async () => json(404, { error: "not found" });
  const handler = methods[method === "HEAD" ? "GET" : method];
  if (handler === undefined) {
    return async () => json(405, { error: "method not allowed" }, { allow: Object.keys(methods).join(", ") });
  }
  return handler;
}

/** APP_FAULT_ERROR_RATE: that fraction of requests (all but the probes) answer 500: a deliberately bad release. */
function injectedFault(deps: Deps, path: string): boolean {
  const rate = deps.settings.faultErrorRate;
  return rate > 0 && !FAULT_EXEMPT.has(path) && Math.random() < rate;
}

async function answer(req: IncomingMessage, url: URL, deps: Deps): Promise<Reply> {
  if (injectedFault(deps, url.pathname)) return json(500, { error: "injected fault (APP_FAULT_ERROR_RATE)" });
  try {
    return await route(req.method ?? "GET", url.pathname)({ req, url, deps });
  } catch (err) {
    log.error("request failed", { method: req.method, path: url.pathname, error: describe(err) });
    return json(500, { error: "internal error" });
  }
}

/** The request target as a URL; only origin-form ("/path?query"), so "//host/x" stays a path. */
function target(raw: string): URL | undefined {
  if (!raw.startsWith("/")) return undefined;
  try {
    return new URL("http://app.invalid" + raw);
  } catch {
    return undefined;
  }
}

/**
 * Serve one request and log it. `draining` is read when the answer is written: once the server is
 * stopping, answers carry `Connection: close` so keep-alive clients do not wait on a closing socket.
 */
export function makeHandler(deps: Deps, draining: () => boolean) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const start = performance.now();
    const method = req.method ?? "GET";
    const url = target(req.url ?? "");
    const reply = url ? await answer(req, url, deps) : json(400, { error: "bad request target" });
    const headers = { ...SECURITY_HEADERS, ...reply.headers, ...(draining() ? { connection: "close" } : {}) };
    try {
      res.writeHead(reply.status, headers).end(reply.body);
    } catch (err) {  // the client is gone, or a header was unusable: nothing left to answer
      log.error("writing the answer failed", { method, path: url?.pathname, error: describe(err) });
      res.destroy();
    }
    const seconds = (performance.now() - start) / 1000;
    const path = url?.pathname ?? "other";
    observe(method, path, reply.status, seconds);
    log.info("request", { method, path, status: reply.status,
      duration_ms: Math.round(seconds * 100_000) / 100 });
  };
}
