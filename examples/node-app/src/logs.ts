/**
 * JSON logs: one object per line (time, level, message, and request fields when present), written to
 * stdout and appended to $APP_LOG_DIR/app.log once openLogFile() has succeeded.
 */
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";

export type Fields = Record<string, unknown>;
type Level = "info" | "warning" | "error";

let logFd: number | undefined;
let fileBroken = false;

/**
 * Create `dir` if missing and open `dir/app.log` for appending. Throws an Error naming the directory
 * when either fails: the app must not run with a log it cannot write.
 */
export function openLogFile(dir: string): string {
  const path = join(dir, "app.log");
  try {
    mkdirSync(dir, { recursive: true });
    logFd = openSync(path, "a", 0o640);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`log directory ${dir} (${resolve(dir)}) cannot be created or written: ${reason}`);
  }
  return resolve(path);
}

export function closeLogFile(): void {
  if (logFd !== undefined) closeSync(logFd);
  logFd = undefined;
}

function write(level: Level, message: string, fields: Fields): void {
  const line = JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }) + "\n";
  // process.stdout is synchronous for files and pipes on Linux, so no line is lost at exit.
  process.stdout.write(line);
  if (logFd === undefined || fileBroken) return;
  try {
    writeSync(logFd, line);
  } catch (err) {
    // A full disk must not take requests down with it; say so once, on stdout.
    fileBroken = true;
    process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level: "error",
      message: `writing app.log failed, logging to stdout only: ${String(err)}` }) + "\n");
  }
}

export const log = {
  info: (message: string, fields: Fields = {}) => write("info", message, fields),
  warning: (message: string, fields: Fields = {}) => write("warning", message, fields),
  error: (message: string, fields: Fields = {}) => write("error", message, fields),
};

/** One line for an error: driver messages can span lines, a log field or a reason should not. */
export function describe(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.split(/\s+/).join(" ").trim();
}
