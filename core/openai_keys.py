"""A workspace's own OpenAI key, kept in Redis encrypted (Fernet).

The key that decrypts lives only in the environment (OPENAI_KEY_ENCRYPTION_KEY, one or
more Fernet keys separated by commas: the first encrypts, any decrypts, so it can be
rotated). Someone with a copy of Redis alone reads no key; the deployment itself can, as
it must to call OpenAI. Without the setting, workspaces use the deployment's key.
"""

from __future__ import annotations

import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core import keys
from core.store import Store

FIELD = "openai_key"


class OpenAIKeyError(ValueError):
    """A key we won't store, or can't read back; the message says which."""


def _fernet(secret: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(part.strip().encode()) for part in secret.split(",") if part.strip()])
    except (ValueError, TypeError) as exc:
        raise OpenAIKeyError(
            "OPENAI_KEY_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64 bytes), e.g. from "
            '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
        ) from exc


def check(key: str) -> str:
    key = key.strip()
    if not key.startswith("sk-") or len(key) < 20 or len(key) > 400 or any(c.isspace() for c in key):
        raise OpenAIKeyError("That doesn't look like an OpenAI API key (they start with `sk-`).")
    return key


def fingerprint(key: str) -> str:
    """What may be shown or logged of a key: never the key."""
    return f"sk-…{key[-4:]} ({hashlib.sha256(key.encode()).hexdigest()[:8]})"


async def save(store: Store, team: str, key: str, *, secret: str) -> str:
    """Encrypt and keep `key` for `team`; its fingerprint."""
    key = check(key)
    token = _fernet(secret).encrypt(key.encode()).decode()
    await store.redis.hset(keys.workspace(store.prefix, team).settings, FIELD, token)
    return fingerprint(key)


async def clear(store: Store, team: str) -> bool:
    return bool(await store.redis.hdel(keys.workspace(store.prefix, team).settings, FIELD))


async def load(store: Store, team: str, *, secret: str) -> str | None:
    """The workspace's key, or None when it has none (or none can be read: logged by the
    caller, and the deployment's key is used)."""
    if not secret:
        return None
    token = await store.redis.hget(keys.workspace(store.prefix, team).settings, FIELD)
    if not token:
        return None
    try:
        return _fernet(secret).decrypt(token).decode()
    except InvalidToken as exc:
        raise OpenAIKeyError(
            "The workspace's OpenAI key can't be decrypted with OPENAI_KEY_ENCRYPTION_KEY."
        ) from exc
