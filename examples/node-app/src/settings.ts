/** Configuration from the environment, validated once at startup into a frozen object. */

export class ConfigError extends Error {}

/** Everything the server reads from its environment (see docs/app-contract.md). */
export interface Settings {
  readonly port: number;
  /** HOST: the address to listen on; 127.0.0.1 (only nginx reaches the app) unless a platform needs more. */
  readonly host: string;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly secretKey: string;
  readonly release: string;
  readonly gitSha: string;
  readonly faultErrorRate: number;
  readonly faultReadiness: boolean;
  readonly allowSlow: boolean;
  readonly logDir: string;
  readonly sessionTtlS: number;
}

type Env = Record<string, string | undefined>;

function required(env: Env, name: string): string {
  const value = (env[name] ?? "").trim();
  if (!value) throw new ConfigError(`environment variable ${name} is required (see docs/app-contract.md)`);
  return value;
}

function url(env: Env, name: string, schemes: string[], example: string): string {
  const value = required(env, name);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${name}: not a URL, expected e.g. ${example}`);
  }
  if (!schemes.includes(parsed.protocol) || !parsed.hostname) {
    const starts = schemes.map((scheme) => scheme + "//").join(" or ");
    throw new ConfigError(`${name}: expected a URL starting ${starts}, e.g. ${example}`);
  }
  return value;
}

function port(env: Env, name: string): number {
  const raw = required(env, name);
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 1 || value > 65535) {
    throw new ConfigError(`${name}='${raw}': expected a TCP port (1-65535)`);
  }
  return value;
}

function fraction(env: Env, name: string): number {
  const raw = (env[name] ?? "").trim() || "0";
  const value = Number(raw);
  if (!/^[0-9.eE+-]+$/.test(raw) || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new ConfigError(`${name}='${raw}': expected a number between 0 and 1`);
  }
  return value;
}

function flag(env: Env, name: string): boolean {
  const raw = (env[name] ?? "").trim();
  if (!["", "0", "1"].includes(raw)) {
    throw new ConfigError(`${name}='${raw}': expected 1 (on) or 0 / unset (off)`);
  }
  return raw === "1";
}

const DATABASE_EXAMPLE = "postgresql://USER:PASSWORD@127.0.0.1:5432/DB";

/** DATABASE_URL alone, for commands that need only the database (the create-user CLI). */
export function databaseUrlFromEnv(env: Env = process.env): string {
  return url(env, "DATABASE_URL", ["postgresql:", "postgres:"], DATABASE_EXAMPLE);
}

/** Read and check the environment; throws ConfigError naming the first bad variable. */
export function settingsFromEnv(env: Env = process.env): Settings {
  return Object.freeze({
    port: port(env, "PORT"),
    host: (env.HOST ?? "").trim() || "127.0.0.1",
    databaseUrl: databaseUrlFromEnv(env),
    redisUrl: url(env, "REDIS_URL", ["redis:", "rediss:"], "redis://:PASSWORD@127.0.0.1:6379/0"),
    secretKey: required(env, "SECRET_KEY"),
    release: env.RELEASE_ID || "dev",
    gitSha: env.GIT_SHA || "unknown",
    faultErrorRate: fraction(env, "APP_FAULT_ERROR_RATE"),
    faultReadiness: flag(env, "APP_FAULT_READINESS"),
    allowSlow: flag(env, "APP_ALLOW_SLOW"),
    logDir: (env.APP_LOG_DIR ?? "").trim() || "logs",
    sessionTtlS: 8 * 3600,
  });
}
