"""Encryption at rest for stored secret access keys (Fernet: AES-128-CBC + HMAC).

The key comes from BEDROCK_USAGE_SECRET_KEY or, when that is unset, from a key file in
BEDROCK_USAGE_HOME created with mode 0600. Keep the key file out of backups that leave
the machine, or set the variable from a secret manager. With the state store on
PostgreSQL (BEDROCK_USAGE_STATE_URL) the variable is required: no key file is used.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from .. import settings
from .store import StateStore


class SecretKeyError(RuntimeError):
    """The encryption key is missing, malformed, or not the one secrets were stored with."""


def _fernet() -> Fernet:
    return Fernet(_key())


def _key() -> bytes:
    configured = settings.secret_key()
    if configured:
        key = configured.encode()
        source = "BEDROCK_USAGE_SECRET_KEY"
    elif settings.state_url():
        # A key file lives on one machine; the shared store's other processes would
        # never find it (or would each make their own).
        raise SecretKeyError(
            "BEDROCK_USAGE_STATE_URL puts the state store on a shared database, so the key "
            "must come from the environment too: set BEDROCK_USAGE_SECRET_KEY from your "
            "secret manager (the same value in every service and run)."
        )
    else:
        key = _key_file_key()
        source = str(settings.key_file_path())
    try:
        Fernet(key)
    except ValueError:
        raise SecretKeyError(
            f"The encryption key in {source} is not a valid Fernet key (32 url-safe base64 "
            'bytes). Generate one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        ) from None
    return key


def _key_file_key() -> bytes:
    path: Path = settings.key_file_path()
    if path.exists():
        return path.read_bytes().strip()
    if StateStore().has_secrets():
        # A new key could never decrypt what the old one encrypted.
        raise SecretKeyError(
            f"The encryption key file {path} is missing, but the state store holds secrets "
            "encrypted with it. Restore the file (or set BEDROCK_USAGE_SECRET_KEY to the key), "
            "or, if the key is lost, disconnect and reconnect each connection that stores a key."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two processes creating the key at once must not end up with two keys.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key


def derive(label: str) -> bytes:
    """32 bytes derived one-way from the encryption key, stable for this home (the demo
    uses it for its emulator's fake access keys, so they are not public constants)."""
    return hmac.new(_key(), label.encode(), hashlib.sha256).digest()


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretKeyError(
            "A stored secret cannot be decrypted with the current key: BEDROCK_USAGE_SECRET_KEY "
            "or the key file changed since it was stored. Restore the original key, or rotate "
            "the connection's access key (bedrock-usage rotate NAME)."
        ) from None
