"""Server-side session revocation: the nonces of sessions ended by a logout, kept on disk.

A session cookie names the user, a random nonce and a fingerprint of the user's password
hash (see :mod:`web.auth`). Logging out puts the nonce here until the cookie would have expired
anyway; a new password changes the fingerprint. Either way a copied cookie stops working, across
restarts too. The file is written atomically, mode 0600.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RevokedSessions:
    """Nonce -> expiry (epoch seconds) of revoked sessions; ``path`` None keeps them in memory."""

    path: Path | None
    _revoked: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, path: Path | None) -> RevokedSessions:
        store = cls(path)
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                data = {}
            now = time.time()
            store._revoked = {str(k): float(v) for k, v in data.items() if float(v) > now}
        return store

    def revoke(self, nonce: str, expires_at: float) -> None:
        with self._lock:
            now = time.time()
            self._revoked = {k: v for k, v in self._revoked.items() if v > now}
            self._revoked[nonce] = expires_at
            if self.path is not None:
                self._write()

    def __contains__(self, nonce: object) -> bool:
        with self._lock:
            return nonce in self._revoked

    def _write(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as stream:
            json.dump(self._revoked, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, self.path)
