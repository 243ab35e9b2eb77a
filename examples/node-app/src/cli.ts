/**
 * Command line for operators:
 *
 *     APP_USER_PASSWORD=... node dist/cli.js create-user --username alice --role member
 *
 * create-user is idempotent: it creates the user, or updates role and password if it exists.
 * DATABASE_URL names the database. Exit 0 done, 1 the database refused, 2 bad input.
 */
import { parseArgs } from "node:util";
import pg from "pg";

import { upsertUser } from "./db.js";
import { hashPassword } from "./passwords.js";
import { ConfigError, databaseUrlFromEnv } from "./settings.js";

export const ROLES = ["admin", "member", "viewer"];
const USAGE = "usage: node dist/cli.js create-user --username NAME --role admin|member|viewer\n" +
  "       (the password is read from APP_USER_PASSWORD, never from arguments)";

class UsageError extends Error {}

interface CreateUser { username: string; role: string; password: string; databaseUrl: string }

/** Parse and check argv and the environment; throws UsageError or ConfigError with the reason. */
export function parse(argv: string[], env: Record<string, string | undefined>): CreateUser {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true,
      options: { username: { type: "string" }, role: { type: "string" } } });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { positionals, values } = parsed;
  if (positionals.length !== 1 || positionals[0] !== "create-user") {
    throw new UsageError(`unknown command '${positionals.join(" ")}': expected create-user`);
  }
  const username = (values.username ?? "").trim();
  if (!username || username.length > 150 || /[\s\p{Cc}]/u.test(username)) {
    throw new UsageError("--username: expected 1-150 characters, no spaces or control characters");
  }
  const role = values.role ?? "";
  if (!ROLES.includes(role)) throw new UsageError(`--role '${role}': expected one of ${ROLES.join(", ")}`);
  const password = env.APP_USER_PASSWORD ?? "";
  if (!password) throw new UsageError("APP_USER_PASSWORD is not set (the password is read from it, never from arguments)");
  return { username, role, password, databaseUrl: databaseUrlFromEnv(env) };
}

async function createUser(args: CreateUser): Promise<boolean> {
  const client = new pg.Client({ connectionString: args.databaseUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await upsertUser(client, args.username, args.role, await hashPassword(args.password));
  } finally {
    await client.end();
  }
}

async function main(): Promise<number> {
  let args: CreateUser;
  try {
    args = parse(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n${USAGE}\n`);
    return 2;
  }
  try {
    const created = await createUser(args);
    process.stdout.write(`${created ? "created" : "updated"} user ${args.username} (${args.role})\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`create-user failed: ${(err as Error).message}\n`);
    return 1;
  }
}

process.exitCode = await main();
