"""From mcp.server values to a client ServerSpec: credentials as headers or environment."""

import base64

import pytest
from conftest import load_services


@pytest.fixture(scope="module")
def config():
    load_services("mcp_connectors")
    from mcp_connectors_services import server_config

    return server_config


@pytest.fixture(scope="module")
def client():
    from mcp_connectors_services import mcp_client

    return mcp_client


def test_bearer_and_oauth_tokens_become_an_authorization_header(config):
    spec = config.build_spec(
        "streamable_http",
        url="https://mcp.example.com/mcp",
        credential=("bearer", {"token": "t0k3n"}),
    )
    assert dict(spec.headers) == {"Authorization": "Bearer t0k3n"}
    assert "t0k3n" not in repr(spec)
    oauth = config.build_spec(
        "sse", url="https://x.example/sse", credential=("oauth2", {"access_token": "acc3ss"})
    )
    assert dict(oauth.headers) == {"Authorization": "Bearer acc3ss"}


def test_api_key_goes_bare_under_the_configured_header(config):
    spec = config.build_spec(
        "streamable_http",
        url="http://127.0.0.1:9/mcp",
        credential=("api_key", {"api_key": "k3y"}),
        auth_header="X-API-Key",
    )
    assert dict(spec.headers) == {"X-API-Key": "k3y"}


def test_basic_credential_is_encoded(config):
    spec = config.build_spec(
        "streamable_http",
        url="http://127.0.0.1:9/mcp",
        credential=("basic", {"username": "ana", "password": "pw"}),
    )
    assert dict(spec.headers)["Authorization"] == "Basic " + base64.b64encode(b"ana:pw").decode()


def test_stdio_command_is_split_never_shelled_and_secret_goes_to_env(config):
    spec = config.build_spec(
        "stdio",
        command="npx -y '@acme/mcp server' --flag=\"a b\"",
        credential=("bearer", {"token": "s3cret"}),
        credential_env="ACME_TOKEN",
    )
    assert spec.command == ("npx", "-y", "@acme/mcp server", "--flag=a b")
    assert dict(spec.env) == {"ACME_TOKEN": "s3cret"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transport": "stdio", "command": ""}, "needs a command"),
        ({"transport": "stdio", "command": "npx 'unclosed"}, "cannot be split"),
        (
            {"transport": "stdio", "command": "srv", "credential": ("bearer", {"token": "t"})},
            "environment variable",
        ),
        (
            {
                "transport": "stdio",
                "command": "srv",
                "credential": ("bearer", {"token": "t"}),
                "credential_env": "1BAD",
            },
            "environment variable",
        ),
        (
            {
                "transport": "streamable_http",
                "url": "http://h/mcp",
                "credential": ("bearer", {"token": None}),
            },
            "no secret",
        ),
        (
            {
                "transport": "streamable_http",
                "url": "http://h/mcp",
                "credential": ("basic", {"username": "a", "password": None}),
            },
            "user name and a password",
        ),
        (
            {
                "transport": "streamable_http",
                "url": "http://h/mcp",
                "credential": ("api_key", {"api_key": "k"}),
                "auth_header": "Bad Header:",
            },
            "not a valid HTTP header",
        ),
        ({"transport": "streamable_http", "url": "ftp://h/mcp"}, "http:// or https://"),
    ],
)
def test_bad_configuration_gets_a_clear_error(config, client, kwargs, message):
    with pytest.raises(client.McpConfigError, match=message):
        config.build_spec(**kwargs)
