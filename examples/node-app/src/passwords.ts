/**
 * Password hashing with node:crypto's scrypt (no native module, no extra dependency).
 *
 * Stored form: `scrypt$N$r$p$<salt hex>$<hash hex>`, the same as the Python sample's app/passwords.py,
 * so parameters can be raised later without invalidating existing hashes.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

const N = 2 ** 14;
const R = 8;
const P = 1;
const KEY_LEN = 64;

function derive(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem above 128*N*r so stored hashes with somewhat larger parameters still verify.
    scrypt(password, salt, KEY_LEN, { ...options, maxmem: 256 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key));
  });
}

/** Hash a password with a fresh random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const digest = await derive(password, salt, { N, r: R, p: P });
  return `scrypt$${N}$${R}$${P}$${salt.toString("hex")}$${digest.toString("hex")}`;
}

/** True if `password` matches the stored hash; false for a wrong password or a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, expected, ...rest] = stored.split("$");
  if (scheme !== "scrypt" || rest.length > 0 || !/^[0-9a-f]+$/.test(expected ?? "")) return false;
  try {
    const digest = await derive(password, Buffer.from(salt, "hex"), { N: Number(n), r: Number(r), p: Number(p) });
    const want = Buffer.from(expected, "hex");
    return want.length === digest.length && timingSafeEqual(digest, want);
  } catch {
    return false;
  }
}

// Verified against when the user does not exist, so a login takes as long either way
// and response time does not reveal which usernames exist.
export const DUMMY_HASH = await hashPassword(randomBytes(16).toString("hex"));
