/** What handlers get and give: a request context in, a Reply (plain data) out; app.ts writes it. */
import type { IncomingMessage } from "node:http";
import type pg from "pg";

import type { Redis, SessionStore, SessionUser } from "./sessions.js";
import type { Settings } from "./settings.js";

/** What the process holds for its lifetime: opened at startup, closed at shutdown. */
export interface Deps {
  settings: Settings;
  pool: pg.Pool;
  redis: Redis;
  sessions: SessionStore;
  migrations: readonly string[];
  indexHtml: Buffer;
}

export interface Ctx {
  req: IncomingMessage;
  url: URL;
  deps: Deps;
  user?: SessionUser;
}

export interface Reply {
  status: number;
  body: string | Buffer;
  headers: Record<string, string | string[]>;
}

export type Handler = (ctx: Ctx) => Promise<Reply>;

export function json(status: number, value: unknown, headers: Record<string, string | string[]> = {}): Reply {
  return { status, body: JSON.stringify(value), headers: { "content-type": "application/json", ...headers } };
}

export function cookies(req: IncomingMessage): Map<string, string> {
  const jar = new Map<string, string>();
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) jar.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return jar;
}

const MAX_BODY_BYTES = 64 * 1024;

/** The request body as text, or undefined if larger than MAX_BODY_BYTES. */
export async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
