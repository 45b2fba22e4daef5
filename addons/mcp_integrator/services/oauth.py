# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""OAuth 2.0 token renewal (RFC 6749 section 6), plain Python.

Error messages never contain token or secret values: only the endpoint host, the HTTP status and
the standard ``error`` code / description of the provider, scrubbed of anything we sent.
"""

from datetime import timedelta, timezone
from urllib.parse import urlsplit

import requests

DEFAULT_TIMEOUT = 10.0
DEFAULT_MARGIN_SECONDS = 60
CLIENT_AUTH_METHODS = ("basic", "body")
_LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}
_MAX_DESCRIPTION = 200
# RFC 6749 errors after which no retry can succeed: the owner must authorize the app again.
REAUTHORIZE_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


class OAuthError(Exception):
    """A token renewal failed; the message is safe to show and log.

    :ivar error: the RFC 6749 error code (``invalid_grant``...) or a local code
        (``network``, ``bad_response``, ``bad_request``)
    :ivar status: the HTTP status of the token endpoint, when it answered
    """

    def __init__(self, message, error="bad_response", status=None):
        super().__init__(message)
        self.error = error
        self.status = status


def needs_refresh(expires_at, now, margin_seconds=DEFAULT_MARGIN_SECONDS):
    """Whether an access token expiring at ``expires_at`` must be renewed at ``now``.

    Renewal happens ``margin_seconds`` before expiry, so a token handed out is still valid for
    the request that uses it. ``expires_at=None`` means the provider gave no lifetime: the token is
    kept until it is rejected or renewed by hand. Naive datetimes are taken as UTC.
    """
    if expires_at is None:
        return False
    return _as_utc(now) + timedelta(seconds=margin_seconds) >= _as_utc(expires_at)


def expiry_from(expires_in, now):
    """Absolute expiry (naive UTC, as Odoo stores it) of a token valid ``expires_in`` seconds."""
    if expires_in is None:
        return None
    return (_as_utc(now) + timedelta(seconds=expires_in)).replace(tzinfo=None)


def check_token_url(token_url):
    """Raise :class:`OAuthError` unless ``token_url`` is HTTPS (plain HTTP only on loopback).

    RFC 6749 section 3.2 requires TLS on the token endpoint: the refresh token and the client
    secret travel in the request.
    """
    parts = urlsplit(token_url or "")
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return
    raise OAuthError(
        "The token URL must be an https:// URL (plain http:// only on the local machine).",
        error="bad_request",
    )


def refresh_token_grant(
    token_url,
    refresh_token,
    client_id=None,
    client_secret=None,
    scope=None,
    client_auth="basic",
    timeout=DEFAULT_TIMEOUT,
    session=None,
):
    """Exchange ``refresh_token`` for a new access token at ``token_url``.

    :param client_auth: ``basic`` (HTTP Basic, RFC 6749 section 2.3.1) or ``body`` (client
        credentials as form fields, which some providers require)
    :param session: optional ``requests.Session`` (connection reuse)
    :return: ``dict(access_token, refresh_token, expires_in)``; ``refresh_token`` is ``None``
        when the provider did not rotate it (keep the old one), ``expires_in`` is ``None`` when
        the provider gave no lifetime
    :raise OAuthError: with a message that never contains a token or secret value
    """
    check_token_url(token_url)
    if not refresh_token:
        raise OAuthError("There is no refresh token to renew the access token.", "bad_request")
    if client_auth not in CLIENT_AUTH_METHODS:
        raise OAuthError(f"Unknown client authentication method {client_auth!r}.", "bad_request")
    secrets = [value for value in (refresh_token, client_secret) if value]
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope:
        data["scope"] = scope
    auth = None
    if client_secret and client_auth == "basic":
        auth = (client_id or "", client_secret)
    else:
        # Body credentials, or a public client (no secret) naming itself (RFC 6749 3.2.1).
        if client_id:
            data["client_id"] = client_id
        if client_secret:
            data["client_secret"] = client_secret
    host = urlsplit(token_url).hostname
    post = (session or requests).post
    try:
        # No redirects: a redirected POST would hand the refresh token to another endpoint.
        response = post(
            token_url,
            data=data,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise OAuthError(
            f"The token endpoint {host} did not answer within {timeout:g} s.", "network"
        ) from None
    except requests.RequestException as exc:
        reason = _scrub(f"{type(exc).__name__}: {exc}", secrets)
        raise OAuthError(
            f"The token endpoint {host} could not be reached ({reason}).", "network"
        ) from None
    return _parse_token_response(response, host, secrets)


def _parse_token_response(response, host, secrets):
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise OAuthError(
            f"The token endpoint {host} answered HTTP {response.status_code} "
            "without a JSON object.",
            status=response.status_code,
        )
    if response.status_code != 200 or "error" in payload:
        code = _scrub(str(payload.get("error") or "unknown_error"), secrets)
        description = _scrub(str(payload.get("error_description") or ""), secrets)
        message = (
            f"The token endpoint {host} refused the renewal (HTTP {response.status_code}: {code}"
        )
        message += f", {description})." if description else ")."
        raise OAuthError(message, error=code, status=response.status_code)
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise OAuthError(
            f"The token endpoint {host} answered without an access token.",
            status=response.status_code,
        )
    new_refresh_token = payload.get("refresh_token") or None
    if new_refresh_token is not None and not isinstance(new_refresh_token, str):
        raise OAuthError(
            f"The token endpoint {host} answered with an invalid refresh token.",
            status=response.status_code,
        )
    expires_in = payload.get("expires_in")
    if expires_in is not None:
        try:
            expires_in = int(expires_in)
        except (TypeError, ValueError):
            raise OAuthError(
                f"The token endpoint {host} answered with an invalid expires_in.",
                status=response.status_code,
            ) from None
        if expires_in < 0:
            raise OAuthError(
                f"The token endpoint {host} answered with a negative expires_in.",
                status=response.status_code,
            )
    return {
        "access_token": access_token,
        "refresh_token": new_refresh_token,
        "expires_in": expires_in,
    }


def _scrub(text, secrets):
    """Drop any secret we sent from ``text`` (providers sometimes echo input) and bound its size."""
    for secret in secrets:
        text = text.replace(secret, "***")
    if len(text) > _MAX_DESCRIPTION:
        text = text[:_MAX_DESCRIPTION] + "..."
    return text


def _as_utc(value):
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
