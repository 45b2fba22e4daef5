"""From an ``mcp.server`` record's plain values to a :class:`~.mcp_client.ServerSpec`.

Plain Python: the model hands over field values and the credential's secret values; this module
decides the HTTP headers or stdio environment that carry the secret, and splits the admin's
command line into arguments (never run through a shell).
"""

import base64
import re
import shlex

from .mcp_client import McpConfigError, ServerSpec

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def split_command(command):
    """The argv of a stdio server's command line, split as a POSIX shell would split it."""
    try:
        argv = shlex.split(command or "")
    except ValueError as exc:
        raise McpConfigError(f"The command line cannot be split into arguments: {exc}.") from None
    if not argv:
        raise McpConfigError("A stdio MCP server needs a command.")
    return tuple(argv)


def credential_secret(kind, secrets):
    """``(scheme, value)`` of a credential for the Authorization header, or ``(None, value)``
    for a bare API key. ``secrets`` is what ``mcp.credential._get_secret_values`` returns."""
    if kind == "basic":
        if not secrets.get("username") or not secrets.get("password"):
            raise McpConfigError("The Basic credential needs a user name and a password.")
        pair = f"{secrets['username']}:{secrets['password']}".encode()
        return "Basic", base64.b64encode(pair).decode()
    value = secrets.get("token") or secrets.get("access_token") or secrets.get("api_key")
    if not value:
        raise McpConfigError("The credential has no secret set.")
    return (None if kind == "api_key" else "Bearer"), value


def build_spec(
    transport,
    url="",
    command="",
    timeout=30.0,
    credential=None,
    auth_header="Authorization",
    credential_env="",
):
    """The ServerSpec of a remote server.

    ``credential`` is ``None`` or ``(kind, secrets)``. HTTP servers get it as a header (an API
    key as it is, under ``auth_header``; other kinds as ``Authorization: Bearer|Basic``); stdio
    servers get it in the environment variable ``credential_env``.
    """
    headers, env = {}, {}
    if credential is not None:
        scheme, value = credential_secret(*credential)
        if transport == "stdio":
            if not credential_env or not ENV_NAME.match(credential_env):
                raise McpConfigError(
                    "A stdio server with a credential needs the name of the environment "
                    "variable that receives it."
                )
            env[credential_env] = value
        else:
            header = auth_header or "Authorization"
            if not HEADER_NAME.match(header):
                raise McpConfigError(f"{header!r} is not a valid HTTP header name.")
            headers[header] = value if scheme is None else f"{scheme} {value}"
    if transport == "stdio":
        return ServerSpec(
            transport="stdio", command=split_command(command), env=env, timeout=timeout
        )
    return ServerSpec(transport=transport, url=url or "", headers=headers, timeout=timeout)
