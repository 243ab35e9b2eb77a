/** Deadlines for calls to PostgreSQL and Redis, so a hung dependency fails a request instead of hanging it. */

export class DeadlineError extends Error {}

/**
 * `promise`, or a DeadlineError "WHAT: no answer within Ns" after `ms`. The call itself is not
 * cancelled: node-redis, for one, only times out commands still waiting to be written, not replies.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(`${what}: no answer within ${ms / 1000}s`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
