"""The secrets of webhook URLs (path tokens, Meta's verify token) never reach the access log."""

import logging

import pytest


@pytest.fixture(scope="module")
def access_log(services):
    from mcp_integrator_services import access_log

    return access_log


class Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture()
def logged(access_log):
    """``(log, lines)``: a request-line logger with the filter, and what it printed."""
    logger = logging.getLogger("test-access-log")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = Captured()
    logger.addHandler(handler)
    access_log.hide_path_tokens("/chatwoot/webhook/", logger_name=logger.name)
    access_log.hide_path_tokens("/mcp/channel/", logger_name=logger.name)
    yield logger, handler.lines
    logger.removeHandler(handler)


def request_line(target):
    # werkzeug's format: the client, the time, the quoted request line, status, size
    return ('%s - - [%s] "%s" %s -', ("127.0.0.1", "28/Nov/2026 02:55:48", target, 200))


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        (
            "POST /chatwoot/webhook/Zq3x-secret_TOKEN_42 HTTP/1.1",
            "POST /chatwoot/webhook/*** HTTP/1.1",
        ),
        ("POST /mcp/channel/mAPCW4Tzr186L_-sw6k0bTg HTTP/1.1", "POST /mcp/channel/*** HTTP/1.1"),
        (
            "GET /mcp/channel/tok?hub.verify_token=s3cret&hub.challenge=1 HTTP/1.1",
            "GET /mcp/channel/*** HTTP/1.1",
        ),
        ("GET /mcp/channel/oauth/tok?code=abc&state=xyz HTTP/1.1", "GET /mcp/channel/*** HTTP/1.1"),
    ],
)
def test_registered_paths_are_masked_up_to_the_end_of_the_target(logged, target, shown):
    logger, lines = logged
    message, args = request_line(target)
    logger.info(message, *args)
    [line] = lines
    assert f'"{shown}" 200' in line
    for secret in ("secret_TOKEN", "mAPCW4", "s3cret", "code=abc", "state=xyz"):
        assert secret not in line


def test_other_lines_pass_unchanged(logged):
    logger, lines = logged
    message, args = request_line("GET /web/health HTTP/1.1")
    logger.info(message, *args)
    logger.warning("a %s with %d args", "line", 2)
    assert lines[0].endswith('"GET /web/health HTTP/1.1" 200 -')
    assert lines[1] == "a line with 2 args"


def test_registering_twice_adds_one_filter(access_log, logged):
    logger, _lines = logged
    access_log.hide_path_tokens("/mcp/channel/", logger_name=logger.name)
    assert len([f for f in logger.filters if isinstance(f, access_log.SecretPathFilter)]) == 1
