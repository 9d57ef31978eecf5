"""Password hashes for the status page: scrypt (RFC 7914) through hashlib, nothing else stored.

A hash is written ``scrypt$N$R$P$SALT$KEY`` (salt and key in base64); a user entry in
``LNM_WEB_USERS`` is ``NAME:HASH``. Only hashes live in settings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import cache

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
KEY_BYTES = 32
SALT_BYTES = 16
_MAXMEM = 64 * 1024**2


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=KEY_BYTES
    )


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The ``scrypt$N$R$P$SALT$KEY`` hash of ``password`` (a fresh random salt by default)."""
    if not password:
        raise ValueError("the password is empty")
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    key = _derive(password, salt, N, R, P)
    encode = base64.b64encode
    return f"{SCHEME}${N}${R}${P}${encode(salt).decode()}${encode(key).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; False for a wrong password or a bad hash."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return False
    try:
        n, r, p = (int(v) for v in parts[1:4])
        salt, key = base64.b64decode(parts[4]), base64.b64decode(parts[5])
    except ValueError:
        return False
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * r * n > _MAXMEM:
        return False
    return hmac.compare_digest(_derive(password, salt, n, r, p), key)


@dataclass(frozen=True)
class WebUsers:
    """The users who may log in, by name, with their password hashes."""

    hashes: dict[str, str]

    @classmethod
    def parse(cls, entries: list[str]) -> WebUsers:
        """From settings' ``NAME:HASH`` entries (validated when settings load)."""
        pairs = (entry.partition(":") for entry in entries)
        return cls({name: encoded for name, _, encoded in pairs})

    def check(self, name: str, password: str) -> bool:
        """True when ``name`` exists and ``password`` is its password.

        An unknown name costs one scrypt too, so the answer time does not tell names apart.
        """
        encoded = self.hashes.get(name)
        if encoded is None:
            verify_password(password, _dummy_hash())
            return False
        return verify_password(password, encoded)

    def __contains__(self, name: object) -> bool:
        return name in self.hashes


@cache
def _dummy_hash() -> str:
    return hash_password("not a password", salt=b"\0" * SALT_BYTES)
