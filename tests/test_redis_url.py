"""The Redis URL forms the settings accept, and the clear errors for the others."""

import pytest


@pytest.fixture(scope="module")
def redis_url(services):
    from mcp_integrator_services import redis_url

    return redis_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", {"scheme": "redis", "hosts": (("127.0.0.1", 6379),), "db": 0}),
        ("redis://cache.example", {"hosts": (("cache.example", 6379),), "db": 0}),
        ("rediss://app@cache.example:6380/2", {"scheme": "rediss", "username": "app", "db": 2}),
        ("redis://[::1]:6379/1", {"hosts": (("::1", 6379),), "db": 1}),
        ("unix:///run/redis/redis.sock?db=3", {"path": "/run/redis/redis.sock", "db": 3}),
        (
            "sentinel://s1:26379,s2/mymaster/4",
            {"hosts": (("s1", 26379), ("s2", 26379)), "service_name": "mymaster", "db": 4},
        ),
        ("redis+sentinel://s1/mymaster", {"service_name": "mymaster", "db": 0}),
    ],
)
def test_accepted_forms(redis_url, url, expected):
    target = redis_url.parse(url)
    for name, value in expected.items():
        assert getattr(target, name) == value


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("http://127.0.0.1:6379", "must start with"),
        ("127.0.0.1:6379", "must start with"),
        ("redis://:hunter2@127.0.0.1:6379/0", "must not contain a password"),
        ("redis://user:hunter2@127.0.0.1/0", "must not contain a password"),
        ("redis://127.0.0.1:port/0", "port must be a number"),
        ("redis://127.0.0.1:6379/zero", "database must be a number"),
        ("redis://a,b/0", "exactly one host"),
        ("unix://", "no socket path"),
        ("sentinel://s1:26379", "master service"),
    ],
)
def test_refused_forms_say_why(redis_url, url, reason):
    with pytest.raises(redis_url.CacheConfigError, match=reason) as error:
        redis_url.parse(url)
    assert "hunter2" not in str(error.value)


def test_redact_drops_user_info_and_query(redis_url):
    assert redis_url.redact("redis://u:p@host:1/0?x=y") == "redis://host:1/0"
