/** Server-side sessions: the data lives in Redis; the cookie carries only a signed, random session id. */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { createClient } from "redis";

import { withDeadline } from "./deadline.js";
import { describe, log } from "./logs.js";

export const COOKIE_NAME = "session";
const KEY_PREFIX = "session:";
const TIMEOUT_MS = 2000;

export interface SessionUser { user_id: number; username: string; role: string }

/**
 * A Redis client that connects in the background and keeps reconnecting: the app starts while Redis
 * is down. Callers put a deadline on each command (withDeadline), so a hung Redis fails a request.
 */
export function makeRedis(url: string) {
  const client = createClient({
    url,
    socket: { connectTimeout: TIMEOUT_MS, reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 1000) },
  });
  let down = false;  // log a lost connection once, not on every retry
  client.on("error", (err) => {
    if (!down) log.warning("redis connection error", { error: describe(err) });
    down = true;
  });
  client.on("ready", () => {
    if (down) log.info("redis connection restored");
    down = false;
  });
  client.connect().catch((err) => log.warning("redis connect failed", { error: describe(err) }));
  return client;
}

export type Redis = ReturnType<typeof makeRedis>;

/** Create, read and end sessions. Signing means a forged or altered cookie is never looked up. */
export class SessionStore {
  constructor(private readonly redis: Redis, private readonly secretKey: string, readonly ttlS: number) {}

  /** Store a session for `user`; return the signed cookie value. */
  async create(user: SessionUser): Promise<string> {
    const id = randomBytes(32).toString("base64url");
    await withDeadline(this.redis.set(KEY_PREFIX + id, JSON.stringify(user), { EX: this.ttlS }),
      TIMEOUT_MS, "redis");
    return `${id}.${this.sign(id)}`;
  }

  /** The session for a cookie value, or undefined if absent, forged, expired or ended. */
  async load(cookie: string | undefined): Promise<SessionUser | undefined> {
    const id = this.unsign(cookie);
    if (id === undefined) return undefined;
    const raw = await withDeadline(this.redis.get(KEY_PREFIX + id), TIMEOUT_MS, "redis");
    return raw ? (JSON.parse(raw) as SessionUser) : undefined;
  }

  async end(cookie: string | undefined): Promise<void> {
    const id = this.unsign(cookie);
    if (id !== undefined) await withDeadline(this.redis.del(KEY_PREFIX + id), TIMEOUT_MS, "redis");
  }

  private sign(id: string): string {
    return createHmac("sha256", this.secretKey).update("shipshape-session:" + id).digest("base64url");
  }

  private unsign(cookie: string | undefined): string | undefined {
    const [id, signature, ...rest] = (cookie ?? "").split(".");
    if (!id || !signature || rest.length > 0) return undefined;
    const want = Buffer.from(this.sign(id));
    const got = Buffer.from(signature);
    return got.length === want.length && timingSafeEqual(got, want) ? id : undefined;
  }
}
