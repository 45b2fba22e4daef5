"""From a built-in ``mcp.server``'s plain values to its backend settings (plain Python).

The record keeps addresses without secrets, so that they can be shown, audited and logged; the
secret comes from the server's credential and is joined to the address here, at connect time.
"""

from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .mongo_tools import MongoConfigError, MongoSettings, redact_uri


def check_qdrant_url(url):
    """``url`` if it is a Qdrant server address without credentials, else ValueError."""
    try:
        parts = urlsplit(url or "")
        host, _port = parts.hostname, parts.port  # a bad port raises ValueError
    except ValueError:
        raise ValueError(f"{url!r} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("The Qdrant URL must be an http:// or https:// address.")
    if parts.username or parts.password:
        raise ValueError("The Qdrant URL must not hold credentials: use the API key credential.")
    return url


def mongo_settings(uri, database, timeout, username=None, password=None):
    """The :class:`MongoSettings` of a server: ``uri`` (without password) joined to the
    credential's ``username``/``password``; ``timeout`` in seconds bounds every wait.

    Raises :class:`MongoConfigError` (its message never holds the password).
    """
    uri = uri or ""
    if not isinstance(uri, str) or redact_uri(uri) != uri:
        raise MongoConfigError(
            "The MongoDB URI must not hold a password or secret: put it in the credential."
        )
    if password:
        uri = _with_password(uri, username, password)
    return MongoSettings(uri=uri, database=database or "", timeout_ms=round(timeout * 1000))


def _with_password(uri, username, password):
    parts = urlsplit(uri)
    userinfo, _at, hosts = parts.netloc.rpartition("@")
    user = username or unquote(userinfo)
    if not user:
        raise MongoConfigError(
            "The MongoDB URI needs a user name (mongodb://user@host) for the credential's "
            "password, or use a Basic credential with both."
        )
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{hosts}"
    return urlunsplit(parts._replace(netloc=netloc))
