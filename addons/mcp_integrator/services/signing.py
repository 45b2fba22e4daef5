# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""HMAC-SHA256 webhook signatures, Chatwoot's scheme (plain Python, no Odoo import).

Chatwoot (account webhooks since v4.11.2, agent bots and API inboxes since v4.13.0) sends
``X-Chatwoot-Timestamp: <unix s>`` and ``X-Chatwoot-Signature: sha256=<hex>``, the hex being
HMAC-SHA256(secret, ``"<timestamp>." + raw body``). The Chatwoot bridge verifies it and the
channel connectors sign their own callbacks the same way. The signature covers the exact bytes
received: re-serialised JSON never verifies.
"""

import hashlib
import hmac
import re

SIGNATURE_WINDOW = 300  # seconds, both directions

_SIGNATURE_PREFIX = "sha256="
_SIGNATURE_HEX = re.compile(r"[0-9a-fA-F]{64}")
# Unix seconds as Chatwoot writes them: ASCII digits only (int() would also take "+1", "1_0",
# " 1 " or non-ASCII digits, which the sender never signs).
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class SignatureError(Exception):
    """The request is not signed as expected; ``reason`` is short, safe English text."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _as_bytes(value):
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _raw_bytes(body):
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("the body to sign must be the raw request bytes")
    return bytes(body)


def sign(secret, timestamp, body):
    """``"sha256=" + hex(HMAC_SHA256(secret, f"{timestamp}." + body))``.

    ``secret`` is str (UTF-8) or bytes, ``timestamp`` int or str, ``body`` the raw bytes.
    """
    message = f"{timestamp}.".encode() + _raw_bytes(body)
    digest = hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()
    return _SIGNATURE_PREFIX + digest


def _timestamp_text(timestamp):
    """The timestamp as signed: the header text, or the decimal digits of an int."""
    if timestamp is None or timestamp == "":
        raise SignatureError("missing timestamp")
    if isinstance(timestamp, int) and not isinstance(timestamp, bool) and timestamp >= 0:
        return str(timestamp)
    if isinstance(timestamp, str) and _TIMESTAMP.fullmatch(timestamp):
        return timestamp
    raise SignatureError("timestamp is not an integer")


def verify(secrets, body, timestamp, signature, now, window=SIGNATURE_WINDOW):
    """Raise :class:`SignatureError` unless ``signature`` signs ``body`` at ``timestamp``.

    ``secrets``: the secrets configured for the endpoint (str or bytes); any one may match, as a
    tenant can have an agent-bot, an API-inbox and an account-webhook secret. Empty ones do not
    count: anyone can compute an HMAC with an empty key. ``timestamp`` and ``signature`` are the
    header values; ``now`` is the current Unix time; the timestamp must be within ``window``
    seconds of it in either direction.
    """
    if isinstance(secrets, str | bytes):
        # One secret string would otherwise be taken as one secret per character.
        raise TypeError("secrets must be an iterable of secrets, not one secret")
    keys = [_as_bytes(secret) for secret in secrets or () if secret]
    if not keys:
        raise SignatureError("no signing secret configured")
    if not signature:
        raise SignatureError("missing signature")
    signed_at = _timestamp_text(timestamp)
    if abs(now - int(signed_at)) > window:
        raise SignatureError("stale timestamp")
    given = signature if isinstance(signature, str) else ""
    if not (
        given.startswith(_SIGNATURE_PREFIX)
        and _SIGNATURE_HEX.fullmatch(given[len(_SIGNATURE_PREFIX) :])
    ):
        raise SignatureError("malformed signature")
    given = given.lower()
    body = _raw_bytes(body)
    # Every secret is compared, without stopping at the first match, so that the time taken
    # does not tell which secret signed.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(sign(key, signed_at, body), given)
    if not matched:
        raise SignatureError("signature mismatch")
