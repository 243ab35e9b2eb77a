"""Password hashing with the standard library's scrypt (no extra dependency).

Stored form: ``scrypt$N$r$p$<salt hex>$<hash hex>`` so parameters can be raised later
without invalidating existing hashes.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """Hash a password with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches the stored hash; False for a wrong password or a malformed hash."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


# Verified against when the user does not exist, so a login takes as long either way
# and response time does not reveal which usernames exist.
DUMMY_HASH = hash_password(secrets.token_hex(16))
