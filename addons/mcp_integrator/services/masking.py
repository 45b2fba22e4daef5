"""Mask secrets before data reaches a log line, an audit row or an error message.

Plain Python. :func:`mask` walks nested dicts/lists and replaces the values of secret-looking
keys; :func:`mask_text` rewrites secrets embedded in free text (``Authorization: Bearer ...``,
``password=...``, ``redis://user:pass@host``, well-known token shapes). Callers that know the
actual secret values (for example a credential they just used) pass them as ``secrets`` so
that those exact strings are masked wherever they appear.
"""

import re

MASK = "***"
MAX_DEPTH = 32

# Key names are compared after lower-casing and turning '-', ' ' and '.' into '_'.
_SENSITIVE_EXACT = frozenset(
    {"auth", "pass", "pwd", "pin", "bearer", "cookie", "set_cookie", "jwt", "otp", "dsn"}
)
_SENSITIVE_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "api_key",
    "apikey",
    "authorization",
    "private_key",
    "credential",
    "signature_key",
    "session_key",
)
# 'token' as a word of the key (access_token, token, x_auth_token) but not 'max_tokens'.
_TOKEN_WORD = re.compile(r"(^|_)(token|auth_token|access_key)($|_)")

# Every repetition is bounded and a key starts at a word start: the text is often a customer's,
# and an unbounded [\w.-]* made masking quadratic (minutes for a 50 KB word).
_KEY_PATTERN = (
    r"(?<![\w.-])[\w.-]{0,64}?(?:password|passwd|passphrase|secret|token(?!s)|api[_-]?key|apikey"
    r"|authorization|private[_-]?key|access[_-]?key)[\w.-]{0,64}"
)
# key=value, key: value, "key": "value" (also JSON escaped inside a string) in free text. An
# auth scheme before a bare value stays inside the match so that 'Authorization: Bearer abc'
# loses the whole credential.
_KEY_VALUE = re.compile(
    r"(?P<key>" + _KEY_PATTERN + r")(?P<sep>\\?[\"']?\s*[:=]\s*)"
    r"(?:(?P<quote>\\?[\"'])(?P<quoted>.{0,4096}?)(?P=quote)"
    r"|(?P<bare>(?:(?:bearer|basic|token|digest)\s+)?[^\s\"'&,;}\]\\]+))",
    re.IGNORECASE,
)
# A credential after an auth scheme; the value must contain a digit or punctuation so that
# prose such as "basic authentication" is left alone.
_AUTH_SCHEME = re.compile(
    r"\b(?P<scheme>bearer|basic|digest)\s+"
    r"(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(
    r"(?P<prefix>\b[a-z][a-z0-9+.-]{0,32}://[^\s:/@]{0,256}):(?P<value>[^\s@/]{1,4096})@",
    re.IGNORECASE,
)
_TOKEN_SHAPES = re.compile(
    r"\b(?:"
    r"eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}"  # JWT
    r"|sk-[A-Za-z0-9_-]{16,}"  # OpenAI / Anthropic style keys
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|EAA[A-Za-z0-9]{30,}"  # Meta (WhatsApp/Instagram/Messenger) access tokens
    r")"
)


def is_sensitive_key(key):
    """Whether a mapping key names a secret (``password``, ``client_secret``, ``X-Api-Key``...)."""
    if not isinstance(key, str):
        return False
    name = re.sub(r"[-\s.]+", "_", key.strip().lower())
    if name in _SENSITIVE_EXACT or _TOKEN_WORD.search(name):
        return True
    return any(part in name for part in _SENSITIVE_PARTS)


def mask_text(text, secrets=()):
    """Return ``text`` with embedded secrets replaced by ``***``."""
    if not isinstance(text, str) or not text:
        return text
    # Longest first, so that a secret containing another one is masked whole.
    for secret in sorted({s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m['prefix']}:{MASK}@", text)
    text = _KEY_VALUE.sub(_mask_key_value, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} {MASK}", text)
    return _TOKEN_SHAPES.sub(MASK, text)


def _mask_key_value(match):
    if match["quote"]:
        return f"{match['key']}{match['sep']}{match['quote']}{MASK}{match['quote']}"
    return f"{match['key']}{match['sep']}{MASK}"


def mask(data, secrets=()):
    """Return a masked copy of ``data`` (dicts, lists, tuples, strings, scalars).

    Values under secret-looking keys become ``***`` (``None`` and empty values stay as they
    are, so the reader can tell a secret was not set); strings anywhere are passed through
    :func:`mask_text`. Tuples and sets come back as lists, nesting deeper than ``MAX_DEPTH``
    is cut.
    """
    secrets = tuple(secrets)
    return _mask(data, secrets, 0)


def _mask(data, secrets, depth):
    if depth > MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(data, dict):
        return {
            key: (
                MASK
                if is_sensitive_key(key) and value not in (None, "", [], {})
                else _mask(value, secrets, depth + 1)
            )
            for key, value in data.items()
        }
    if isinstance(data, (list, tuple, set, frozenset)):
        return [_mask(item, secrets, depth + 1) for item in data]
    if isinstance(data, str):
        return mask_text(data, secrets)
    if isinstance(data, (bytes, bytearray)):
        return f"<{len(data)} bytes>"
    return data
