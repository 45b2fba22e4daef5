"""Retry policy of call_tool: bounded attempts, exponential backoff with jitter, error classes."""

import pytest


@pytest.fixture(scope="module")
def tool_calls(services):
    from mcp_integrator_services import tool_calls

    return tool_calls


class Flaky:
    """Fails with the given exceptions, in order, then returns 'done'."""

    def __init__(self, *failures):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def test_transient_failures_are_retried_with_growing_delays(tool_calls):
    sleeps = []
    func = Flaky(tool_calls.TransientToolError("503"), TimeoutError("read timed out"))
    policy = tool_calls.RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=5, jitter=0)
    result, attempts = tool_calls.call_with_retry(func, policy, sleep=sleeps.append)
    assert (result, attempts, func.calls) == ("done", 3, 3)
    assert sleeps == [pytest.approx(0.1), pytest.approx(0.2)]


def test_attempts_are_bounded(tool_calls):
    sleeps = []
    func = Flaky(*[ConnectionResetError("reset")] * 10)
    policy = tool_calls.RetryPolicy(max_attempts=4, base_delay=0.01, jitter=0.5)
    with pytest.raises(tool_calls.TransientToolError) as caught:
        tool_calls.call_with_retry(func, policy, sleep=sleeps.append)
    assert func.calls == 4
    assert caught.value.attempts == 4
    assert len(sleeps) == 3
    assert "ConnectionResetError: reset" in str(caught.value)
    assert isinstance(caught.value.__cause__, ConnectionResetError)


@pytest.mark.parametrize(
    "error",
    [
        "permanent",
        "not_found",
        "refused",
        "bug",
    ],
)
def test_permanent_failures_are_not_retried(tool_calls, error):
    failure = {
        "permanent": tool_calls.PermanentToolError("400 bad request"),
        "not_found": tool_calls.ToolNotFound("no such tool"),
        "refused": tool_calls.ToolRefused("not allowed"),
        "bug": KeyError("price"),
    }[error]
    sleeps = []
    func = Flaky(failure)
    with pytest.raises(tool_calls.PermanentToolError) as caught:
        tool_calls.call_with_retry(func, sleep=sleeps.append)
    assert func.calls == 1
    assert sleeps == []
    assert caught.value.attempts == 1


def test_timeouts_and_connection_errors_count_as_transient(tool_calls):
    for exc in (TimeoutError("slow"), ConnectionRefusedError("refused"), BrokenPipeError()):
        assert isinstance(tool_calls.classify(exc), tool_calls.TransientToolError)
    assert isinstance(tool_calls.classify(ValueError("bad")), tool_calls.PermanentToolError)
    error = tool_calls.PermanentToolError("x")
    assert tool_calls.classify(error) is error


def test_backoff_is_capped_and_jittered(tool_calls):
    policy = tool_calls.RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=2.0, jitter=0.5)
    assert policy.delay(1, rand=lambda: 0.0) == pytest.approx(0.25)
    assert policy.delay(1, rand=lambda: 1.0) == pytest.approx(0.5)
    assert policy.delay(8, rand=lambda: 1.0) == pytest.approx(2.0)
    assert policy.delay(8, rand=lambda: 0.0) == pytest.approx(1.0)
    delays = {policy.delay(2) for _ in range(20)}
    assert len(delays) > 1
    assert all(0.5 <= d <= 1.0 for d in delays)


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"base_delay": -1}, {"jitter": 1.5}],
)
def test_policy_rejects_nonsense(tool_calls, options):
    with pytest.raises(ValueError):
        tool_calls.RetryPolicy(**options)


def test_cache_resource_keeps_tools_apart(tool_calls, services):
    from mcp_integrator_services import keys

    def resource(tool, arguments):
        return tool_calls.cache_resource(tool, tool_calls.arguments_json(arguments))

    resource_type, resource_id = resource("get_product", {"id": 1})
    assert resource_type == "get_product"
    # names that are not key identifiers are normalised, the exact name stays in the hashed id
    upper = resource("getProduct", {"id": 1})
    lower = resource("getproduct", {"id": 1})
    assert upper[0] == lower[0] == "getproduct"
    assert keys.resource_part(upper[1]) != keys.resource_part(lower[1])
    assert resource("products/search", {})[0] == "products_search"
    # argument order does not matter, values do
    assert resource("t", {"a": 1, "b": 2})[1] == resource("t", {"b": 2, "a": 1})[1]
    assert keys.resource_part(resource_id) != keys.resource_part(
        resource("get_product", {"id": 2})[1]
    )
    # a tool name ending like JSON cannot pass for other arguments: the JSON text has no newline
    assert resource('t\n{"a":1}', {})[1] != resource("t", {"a": 1})[1]


def test_arguments_json_is_canonical_and_strict(tool_calls):
    assert tool_calls.arguments_json({"b": "ç", "a": [1, 2]}) == '{"a":[1,2],"b":"ç"}'
    assert "\n" not in tool_calls.arguments_json({"text": "two\nlines"})
    with pytest.raises(TypeError):
        tool_calls.arguments_json({"when": object()})
