"""Encryption at rest for platform credentials (access tokens, API keys, webhook secrets).

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) rather than anything hand-rolled.
`CLAWBACK_ENCRYPTION_KEY` holds one key or several, comma-separated, newest first: MultiFernet
encrypts with the first and decrypts with any, so keys rotate without downtime. A value that is
not a Fernet key (the development default, a passphrase) is stretched with SHA-256 into one.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.errors import ConfigError


def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode())
    except ValueError:
        # Not a urlsafe-base64 32-byte key: derive one so a passphrase still works.
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


class Vault:
    """Encrypts and decrypts small secrets with the configured key ring."""

    def __init__(self, keys: str) -> None:
        ring = [k.strip() for k in keys.split(",") if k.strip()]
        if not ring:
            raise ConfigError("CLAWBACK_ENCRYPTION_KEY is empty")
        self._multi = MultiFernet([_fernet(k) for k in ring])

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError("A stored credential cannot be decrypted with CLAWBACK_ENCRYPTION_KEY") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt under the newest key (for a key-rotation sweep)."""
        return self._multi.rotate(token.encode()).decode()
