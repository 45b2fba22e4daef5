"""MCP client keys of Odoo's ``/mcp`` (generation, verification) and their rate limiter, the
shared one on the real Redis and the in-process fallback."""

import pytest
from conftest import load_services

load_services("mcp_connectors")
from mcp_connectors_services import client_keys as keys
from mcp_connectors_services import rate_limit


@pytest.fixture
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    yield client
    client.close()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# --- keys -----------------------------------------------------------------------------------
def test_a_new_key_verifies_and_is_stored_only_as_a_salted_hash():
    new = keys.generate()
    assert new.key.startswith(f"odoo_mcp_{new.prefix}_")
    assert keys.prefix_of(new.key) == new.prefix
    assert keys.verify(new.key, new.stored)
    scheme, salt, digest = new.stored.split("$")
    assert scheme == "sha256" and len(salt) == 32 and len(digest) == 64
    secret = new.key.rsplit("_", 1)[-1]
    assert secret not in new.stored and new.key not in new.stored


def test_the_same_key_hashes_differently_each_time():
    new = keys.generate()
    again = keys.hash_key(new.key)
    assert again != new.stored
    assert keys.verify(new.key, again)


def test_keys_are_unique():
    generated = [keys.generate() for _ in range(50)]
    assert len({new.key for new in generated}) == 50
    assert len({new.prefix for new in generated}) == 50


def test_a_key_does_not_verify_against_another_keys_hash():
    first, second = keys.generate(), keys.generate()
    assert not keys.verify(first.key, second.stored)
    # the secret under another prefix: the prefix is part of what is hashed
    moved = f"odoo_mcp_{second.prefix}_{first.key.rsplit('_', 1)[-1]}"
    assert not keys.verify(moved, first.stored)


@pytest.mark.parametrize(
    "stored",
    ["", "md5$00$00", "sha256$zz$00", "sha256$00", "plain-text-key", None],
)
def test_a_malformed_stored_value_never_verifies(stored):
    new = keys.generate()
    assert not keys.verify(new.key, stored)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "odoo_mcp_",
        "odoo_mcp_0123456789ab_short",
        "odoo_mcp_0123456789AB_" + "a" * 43,  # upper-case prefix
        "odoo_mcp_0123456789ab_" + "a" * 44,
        "x" + "odoo_mcp_0123456789ab_" + "a" * 43,
        "odoo_mcp_0123456789ab_" + "a" * 42 + "!",
        None,
        42,
    ],
)
def test_prefix_of_accepts_only_the_key_shape(token):
    assert keys.prefix_of(token) is None


def test_prefix_of_a_well_formed_token():
    assert keys.prefix_of("odoo_mcp_0123456789ab_" + "a" * 43) == "0123456789ab"


def test_verify_refuses_non_text():
    new = keys.generate()
    assert not keys.verify(None, new.stored)
    assert not keys.verify(new.key.encode(), new.stored)


# --- rate limit through Redis ---------------------------------------------------------------
def test_shared_limit_lets_a_burst_through_then_says_how_long_to_wait(redis_client, namespace):
    limiter = rate_limit.RateLimiter()
    key = f"{namespace}:client:1"
    assert [limiter.shared_hit(redis_client, key, 3) for _ in range(3)] == [0, 0, 0]
    wait = limiter.shared_hit(redis_client, key, 3)
    # one request per 20 s after the burst: the fourth waits up to 20 s, never more
    assert 0 < wait <= 20
    assert limiter.shared_hit(redis_client, key, 3) > 0, "a refused request is not counted"
    assert 0 < redis_client.pttl(key) <= 60_000, "the state expires when the bucket is full"


def test_shared_limit_is_per_key_and_shared_by_limiters(redis_client, namespace):
    first, second = rate_limit.RateLimiter(), rate_limit.RateLimiter()  # two workers
    key = f"{namespace}:client:2"
    assert first.shared_hit(redis_client, key, 2) == 0
    assert second.shared_hit(redis_client, key, 2) == 0
    assert first.shared_hit(redis_client, key, 2) > 0
    assert second.shared_hit(redis_client, f"{namespace}:client:3", 2) == 0


def test_shared_limit_raises_when_redis_is_down():
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # nothing listens on port 1; no retries, the caller has its own circuit
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(redis.ConnectionError):
        rate_limit.RateLimiter().shared_hit(dead, "any", 5)


# --- in-process fallback --------------------------------------------------------------------
def test_local_limit_refills_one_request_per_interval():
    clock = FakeClock()
    limiter = rate_limit.RateLimiter(clock=clock)
    assert [limiter.local_hit("k", 2) for _ in range(2)] == [0, 0]
    assert limiter.local_hit("k", 2) == pytest.approx(30)
    clock.now += 29
    assert limiter.local_hit("k", 2) == pytest.approx(1)
    clock.now += 1
    assert limiter.local_hit("k", 2) == 0
    assert limiter.local_hit("k", 2) == pytest.approx(30)
    assert limiter.local_hit("other", 2) == 0


def test_local_limit_forgets_idle_clients_when_full(monkeypatch):
    monkeypatch.setattr(rate_limit, "MAX_LOCAL_CLIENTS", 3)
    clock = FakeClock()
    limiter = rate_limit.RateLimiter(clock=clock)
    for key in ("a", "b", "c"):
        limiter.local_hit(key, 1)
    clock.now += 61
    assert limiter.local_hit("d", 1) == 0
    assert set(limiter._local) == {"d"}


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, None, "5"])
def test_a_limit_must_be_a_positive_integer(limit):
    with pytest.raises(ValueError, match="positive integer"):
        rate_limit.RateLimiter().local_hit("k", limit)


def test_the_period_must_be_positive():
    with pytest.raises(ValueError, match="period"):
        rate_limit.RateLimiter(period=0)
