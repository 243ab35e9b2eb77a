/** POST /login, POST /logout, and `loginRequired` for the endpoints only signed-in users may call. */
import { findUser } from "./db.js";
import { cookies, json, readBody, type Ctx, type Handler, type Reply } from "./http.js";
import { DUMMY_HASH, verifyPassword } from "./passwords.js";
import { COOKIE_NAME } from "./sessions.js";

export const UNAUTHORIZED = { error: "authentication required" };

/** Answer 401 JSON unless the request carries a live session; else set ctx.user and call `handler`. */
export function loginRequired(handler: Handler): Handler {
  return async (ctx) => {
    const user = await ctx.deps.sessions.load(cookies(ctx.req).get(COOKIE_NAME));
    if (user === undefined) return json(401, UNAUTHORIZED);
    return handler({ ...ctx, user });
  };
}

async function credentials(ctx: Ctx): Promise<[string, string] | undefined> {
  const text = await readBody(ctx.req);
  let body: unknown;
  try {
    body = JSON.parse(text ?? "");
  } catch {
    return undefined;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  const { username, password } = body as Record<string, unknown>;
  return typeof username === "string" && typeof password === "string" ? [username, password] : undefined;
}

function sessionCookie(value: string, maxAgeS: number): string {
  return `${COOKIE_NAME}=${value}; Max-Age=${maxAgeS}; Path=/; HttpOnly; SameSite=Lax`;
}

/** JSON {"username", "password"} -> 200 with a session cookie; 401 on bad credentials; 400 if malformed. */
export async function login(ctx: Ctx): Promise<Reply> {
  const creds = await credentials(ctx);
  if (creds === undefined) return json(400, { error: 'expected JSON {"username": ..., "password": ...}' });
  const user = await findUser(ctx.deps.pool, creds[0]);
  // Always run one scrypt, so unknown users and wrong passwords take the same time.
  const ok = await verifyPassword(creds[1], user ? String(user.password_hash) : DUMMY_HASH);
  if (user === undefined || !ok) return json(401, { error: "invalid credentials" });
  const { sessions } = ctx.deps;
  const cookie = await sessions.create({ user_id: Number(user.id), username: String(user.username),
    role: String(user.role) });
  return json(200, { username: user.username, role: user.role },
    { "set-cookie": sessionCookie(cookie, sessions.ttlS) });
}

/** End the session in Redis and clear the cookie. */
export const logout = loginRequired(async (ctx) => {
  await ctx.deps.sessions.end(cookies(ctx.req).get(COOKIE_NAME));
  return json(200, { status: "signed out" }, { "set-cookie": sessionCookie("", 0) });
});
