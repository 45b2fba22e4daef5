"""OAuth 2.0 refresh: timing rule, RFC 6749 refresh_token grant against a real local server."""

import importlib
import importlib.util
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

SERVER_PATH = (
    Path(__file__).resolve().parent.parent
    / "addons"
    / "mcp_integrator"
    / "tests"
    / "oauth_token_server.py"
)


@pytest.fixture(scope="module")
def oauth(services):
    return importlib.import_module(f"{services.__name__}.oauth")


@pytest.fixture(scope="module")
def token_server_module():
    # Loaded by path: the addon's tests package imports Odoo, this helper does not.
    spec = importlib.util.spec_from_file_location("mcp_oauth_token_server", SERVER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server(token_server_module):
    with token_server_module.TokenServer() as running:
        yield running


NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("expires_at", "margin", "expected"),
    [
        (NOW + timedelta(hours=1), 60, False),
        (NOW + timedelta(seconds=61), 60, False),
        (NOW + timedelta(seconds=60), 60, True),
        (NOW + timedelta(seconds=10), 60, True),
        (NOW - timedelta(seconds=1), 0, True),
        (NOW + timedelta(seconds=1), 0, False),
        (None, 60, False),
    ],
)
def test_needs_refresh(oauth, expires_at, margin, expected):
    assert oauth.needs_refresh(expires_at, NOW, margin) is expected


def test_needs_refresh_mixes_naive_utc_and_aware(oauth):
    naive_expiry = (NOW + timedelta(seconds=30)).replace(tzinfo=None)
    assert oauth.needs_refresh(naive_expiry, NOW, 60)
    sao_paulo_now = NOW.astimezone(timezone(timedelta(hours=-3)))
    assert not oauth.needs_refresh(naive_expiry + timedelta(hours=1), sao_paulo_now, 60)


def test_expiry_from(oauth):
    assert oauth.expiry_from(3600, NOW) == datetime(2026, 3, 2, 13, 0)
    assert oauth.expiry_from(None, NOW) is None


def test_refresh_with_basic_client_auth_rotates_the_token(oauth, server):
    result = oauth.refresh_token_grant(server.url, "refresh-0", "client-1", "client-secret-1")
    assert result == {"access_token": "access-1", "refresh_token": "refresh-1", "expires_in": 3600}
    request = server.requests[-1]
    assert request["authorization"].startswith("Basic ")
    assert "client_secret" not in request["form"]
    assert request["form"]["grant_type"] == "refresh_token"


def test_refresh_with_client_credentials_in_body(oauth, server):
    result = oauth.refresh_token_grant(
        server.url, "refresh-0", "client-1", "client-secret-1", scope="read", client_auth="body"
    )
    assert result["access_token"] == "access-1"
    form = server.requests[-1]["form"]
    assert form["client_id"] == "client-1"
    assert form["scope"] == "read"
    assert server.requests[-1]["authorization"] is None


def test_public_client_names_itself_in_the_body(oauth, token_server_module):
    with token_server_module.TokenServer(client_secret=None) as server:
        result = oauth.refresh_token_grant(server.url, "refresh-0", "client-1")
    assert result["access_token"] == "access-1"
    assert server.requests[-1]["authorization"] is None
    assert server.requests[-1]["form"]["client_id"] == "client-1"


def test_provider_that_does_not_rotate(oauth, token_server_module):
    with token_server_module.TokenServer(rotate=False, expires_in=900) as server:
        result = oauth.refresh_token_grant(server.url, "refresh-0", "client-1", "client-secret-1")
    assert result["refresh_token"] is None
    assert result["expires_in"] == 900


def test_reused_refresh_token_is_rejected_without_leaking_it(oauth, server):
    oauth.refresh_token_grant(server.url, "refresh-0", "client-1", "client-secret-1")
    with pytest.raises(oauth.OAuthError) as caught:
        oauth.refresh_token_grant(server.url, "refresh-0", "client-1", "client-secret-1")
    error = caught.value
    assert error.error == "invalid_grant"
    assert error.status == 400
    # The provider echoed the token in its description: it is scrubbed from our message.
    assert "refresh-0" not in str(error)
    assert "client-secret-1" not in str(error)
    assert "127.0.0.1" in str(error)
    assert server.refresh_count == 1


def test_wrong_client_secret(oauth, server):
    with pytest.raises(oauth.OAuthError) as caught:
        oauth.refresh_token_grant(server.url, "refresh-0", "client-1", "wrong-secret")
    assert caught.value.error == "invalid_client"
    assert caught.value.status == 401
    assert "wrong-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, b"<html>not json</html>", "bad_response"),
        (502, b"Bad gateway", "bad_response"),
        (200, {"token_type": "Bearer"}, "bad_response"),
        (200, {"access_token": "a", "expires_in": "soon"}, "bad_response"),
        (200, {"access_token": "a", "expires_in": -5}, "bad_response"),
        (200, {"access_token": "a", "refresh_token": 42}, "bad_response"),
        (200, [1, 2], "bad_response"),
        (400, {"error": "invalid_scope"}, "invalid_scope"),
    ],
)
def test_malformed_answers_are_clear_errors(oauth, server, status, body, error):
    server.response_override = (status, body)
    with pytest.raises(oauth.OAuthError) as caught:
        oauth.refresh_token_grant(server.url, "refresh-0", "client-1", "client-secret-1")
    assert caught.value.error == error
    assert "refresh-0" not in str(caught.value)


def test_timeout_is_bounded(oauth, token_server_module):
    # the server answers a valid token after 2 s: only the timeout turns that into an error
    with (
        token_server_module.TokenServer(delay=2.0) as server,
        pytest.raises(oauth.OAuthError) as caught,
    ):
        oauth.refresh_token_grant(
            server.url, "refresh-0", "client-1", "client-secret-1", timeout=0.3
        )
    assert caught.value.error == "network"
    assert "0.3 s" in str(caught.value)


def test_unreachable_endpoint(oauth):
    # Port 9 (discard) on loopback is closed here: connection refused, quickly.
    with pytest.raises(oauth.OAuthError) as caught:
        oauth.refresh_token_grant("http://127.0.0.1:9/token", "refresh-secret-xyz", "c", "s")
    assert caught.value.error == "network"
    assert "refresh-secret-xyz" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://auth.example.com/token",
        "ftp://127.0.0.1/token",
        "",
        None,
        "https:///token",
        "token",
    ],
)
def test_token_url_must_be_https(oauth, url):
    with pytest.raises(oauth.OAuthError) as caught:
        oauth.refresh_token_grant(url, "refresh-0", "client-1", "client-secret-1")
    assert caught.value.error == "bad_request"


def test_missing_refresh_token(oauth, server):
    with pytest.raises(oauth.OAuthError) as caught:
        oauth.refresh_token_grant(server.url, "", "client-1", "client-secret-1")
    assert caught.value.error == "bad_request"
    assert server.requests == []


def test_redirects_are_not_followed(oauth, server, token_server_module):
    # the redirect leads to a server that would answer a valid token: following it would pass
    with token_server_module.TokenServer() as elsewhere:
        server.response_override = (307, {}, {"Location": elsewhere.url})
        with pytest.raises(oauth.OAuthError) as caught:
            oauth.refresh_token_grant(server.url, "refresh-0", "client-1", "client-secret-1")
        assert elsewhere.requests == []
    assert caught.value.status == 307


def test_session_is_used(oauth, server):
    class RecordingSession(requests.Session):
        """A real session that notes what it sends."""

        def __init__(self):
            super().__init__()
            self.sent = []

        def send(self, request, **kwargs):
            self.sent.append(request.url)
            return super().send(request, **kwargs)

    with RecordingSession() as session:
        result = oauth.refresh_token_grant(
            server.url, "refresh-0", "client-1", "client-secret-1", session=session
        )
    assert result["access_token"] == "access-1"
    assert session.sent == [server.url]
