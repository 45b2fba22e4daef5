"""Secrets never reach a log line, an audit row or an error message."""

import json

import pytest


@pytest.fixture(scope="module")
def masking(services):
    from mcp_integrator_services import masking

    return masking


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "db_password",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "X-Api-Key",
        "apikey",
        "Authorization",
        "private_key",
        "hmac_secret",
        "cookie",
    ],
)
def test_secret_keys_are_recognised(masking, key):
    assert masking.is_sensitive_key(key)


@pytest.mark.parametrize(
    "key", ["name", "max_tokens", "tokens_in", "query", "account_id", "tool", "limit", 3, None]
)
def test_ordinary_keys_are_not(masking, key):
    assert not masking.is_sensitive_key(key)


def test_nested_structures_are_masked_and_the_input_left_alone(masking):
    data = {
        "query": "shoes",
        "auth": {"username": "bob", "password": "hunter2"},
        "headers": [{"Authorization": "Bearer abc.def.ghi"}, {"Accept": "application/json"}],
        "options": ({"client_secret": "s3"}, {"api_key": None}),
        "max_tokens": 200,
    }
    original = json.dumps(data, sort_keys=True)
    masked = masking.mask(data)
    assert masked == {
        "query": "shoes",
        "auth": "***",
        "headers": [{"Authorization": "***"}, {"Accept": "application/json"}],
        "options": [{"client_secret": "***"}, {"api_key": None}],
        "max_tokens": 200,
    }
    assert json.dumps(data, sort_keys=True) == original
    assert "hunter2" not in json.dumps(masked)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.SflKxwRJSM", "eyJhbGciOi"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("401 Unauthorized (sent Bearer abc12345xyz)", "abc12345xyz"),
        ("GET /v1/items?access_token=tok-123&limit=5", "tok-123"),
        ('{"password": "with spaces inside", "user": "bob"}', "with spaces"),
        ('{\\"client_secret\\": \\"escaped one\\"}', "escaped one"),
        ("api_key=sk-abcdefghijklmnopqrstuvwx", "sk-abcdefghijklmnopqrstuvwx"),
        ("leaked sk-abcdefghijklmnopqrstuvwx in text", "sk-abcdefghijklmnopqrstuvwx"),
        ("redis://:s3cret@127.0.0.1:6379/0 refused", "s3cret"),
        ("rediss://default:pa55@cache.example.com", "pa55"),
        ("X-Api-Key: k3y-value", "k3y-value"),
        ("github says ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
    ],
)
def test_secrets_inside_text_are_masked(masking, text, secret):
    masked = masking.mask_text(text)
    assert secret not in masked
    assert "***" in masked


@pytest.mark.parametrize(
    "text",
    [
        "use basic authentication please",
        "http://host:8080/path@foo",
        "max_tokens=100 tokens_in=3",
        "Tool get_product failed: 404 not found",
    ],
)
def test_ordinary_text_is_kept(masking, text):
    assert masking.mask_text(text) == text


def test_known_secret_values_are_masked_anywhere(masking):
    text = "login failed for pw hunter2 (hunter2x) and hunter"
    masked = masking.mask_text(text, secrets=["hunter", "hunter2", "", None])
    assert "hunter" not in masked
    assert masking.mask({"note": "pw=x hunter2"}, secrets=["hunter2"]) == {"note": "pw=x ***"}


def test_masked_copy_of_odd_values(masking):
    assert masking.mask(b"\x00\x01") == "<2 bytes>"
    assert masking.mask(None) is None
    assert masking.mask(3.5) == 3.5
    deep = current = {}
    for _ in range(masking.MAX_DEPTH + 5):
        current["next"] = {}
        current = current["next"]
    flat = json.dumps(masking.mask(deep))
    assert "[nested too deep]" in flat


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("x" * 200_000, False),
        ("a." * 100_000, False),
        ("password='" * 20_000, True),
        ("s://u:" * 30_000, False),
        ("bearer " * 30_000, False),
        ("x" * 100_000 + " password=hunter2", True),
    ],
)
def test_adversarial_text_is_masked_in_linear_time(masking, text, masked):
    """Customer text reaches error messages and audit rows; a quadratic pattern would stall
    a worker for minutes on these inputs, so this test would not finish."""
    result = masking.mask_text(text)
    if masked:
        assert "***" in result and "hunter2" not in result
    else:
        assert result == text
