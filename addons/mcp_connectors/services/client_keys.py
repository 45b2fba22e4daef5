"""Keys of the MCP clients of Odoo's ``/mcp`` endpoint: generation, lookup prefix, verification.

Plain Python, no Odoo import. A key reads ``odoo_mcp_<prefix>_<secret>``:

- ``prefix``, 12 random hex digits, is public: it is stored in clear, shown in the list of keys
  and used to find the key's record with one indexed lookup. It is not part of the secret, so
  showing it gives nothing away (Odoo's own API keys index on the first characters of the key
  itself).
- ``secret``, 32 random bytes (URL-safe base64), is the credential. Only an HMAC-SHA256 of the
  whole key under a random per-key salt is stored (``sha256$<salt>$<digest>``), and a
  candidate is compared with :func:`hmac.compare_digest`.

Why not a slow password hash (Odoo's API keys use PBKDF2, 6000 rounds): slow hashing protects
guessable secrets; a 256-bit random secret cannot be guessed, and the check runs on every
request, so it has to cost microseconds. The salt still makes two stores of the same key differ
and rules out precomputed tables.
"""

import hashlib
import hmac
import re
import secrets
from typing import NamedTuple

KEY_TAG = "odoo_mcp"
PREFIX_HEX_DIGITS = 12
SECRET_BYTES = 32
SALT_BYTES = 16
HASH_SCHEME = "sha256"
# token_urlsafe(32) gives 43 characters of [A-Za-z0-9_-]
_KEY = re.compile(rf"{KEY_TAG}_(?P<prefix>[0-9a-f]{{{PREFIX_HEX_DIGITS}}})_[A-Za-z0-9_-]{{43}}")


class NewKey(NamedTuple):
    """A freshly generated key: ``key`` is shown once, ``prefix`` and ``stored`` are kept."""

    key: str
    prefix: str
    stored: str


def generate():
    """A new random key with its public prefix and the value to store."""
    prefix = secrets.token_hex(PREFIX_HEX_DIGITS // 2)
    key = f"{KEY_TAG}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewKey(key, prefix, hash_key(key))


def prefix_of(token):
    """The public prefix of ``token`` when it has the shape of a key, else None."""
    match = _KEY.fullmatch(token) if isinstance(token, str) else None
    return match.group("prefix") if match else None


def hash_key(key, salt=None):
    """The value to store for ``key``: ``sha256$<salt hex>$<HMAC-SHA256(salt, key) hex>``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hmac.new(salt, key.encode(), hashlib.sha256).hexdigest()
    return f"{HASH_SCHEME}${salt.hex()}${digest}"


def verify(token, stored):
    """Whether ``token`` is the key ``stored`` was made from (constant-time comparison)."""
    if not isinstance(token, str) or not isinstance(stored, str):
        return False
    scheme, _, rest = stored.partition("$")
    salt_hex, _, digest = rest.partition("$")
    if scheme != HASH_SCHEME or not digest:
        return False
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    expected = hmac.new(salt, token.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest)
