"""The other Redis topologies the settings accept, each against a real redis-server process:
a unix socket, and Sentinel in front of the local Redis."""

import shutil
import socket
import subprocess
import time

import pytest

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(not REDIS_SERVER, reason="redis-server is not installed")


@pytest.fixture(scope="module")
def cache_service(services):
    from mcp_integrator_services import cache

    return cache


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, what):
    for _ in range(200):
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not come up")


@pytest.fixture
def start_server(tmp_path):
    processes = []

    def start(*args):
        process = subprocess.Popen(
            [REDIS_SERVER, *args],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def test_unix_socket(start_server, tmp_path, cache_service, namespace):
    sock = tmp_path / "redis.sock"
    start_server("--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no")
    wait_until(sock.exists, "redis on a unix socket")
    settings = cache_service.CacheSettings(url=f"unix://{sock}?db=2", namespace=namespace)
    cache = cache_service.Cache(settings)
    wait_until(lambda: _pings(cache, cache_service), "redis on a unix socket")
    key = cache.key(1, "rules", "rule", 1, "details")
    assert cache.get_or_compute(key, lambda: "via socket") == "via socket"
    assert cache.get(key) == (True, "via socket")
    cache.close()


def test_sentinel_finds_the_master(start_server, tmp_path, cache_service, namespace, redis_url):
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 6379 1\n"
        "sentinel down-after-milliseconds mymaster 5000\n"
    )
    start_server(str(conf), "--sentinel")
    settings = cache_service.CacheSettings(
        url=f"sentinel://127.0.0.1:{port}/mymaster/0", namespace=namespace
    )
    cache = cache_service.Cache(settings)
    wait_until(lambda: _pings(cache, cache_service), "sentinel")
    key = cache.key(1, "rules", "rule", 1, "details")
    cache.set(key, {"via": "sentinel"})
    # the value sits in the master Sentinel named: the local Redis the other tests use
    direct = cache_service.Cache(cache_service.CacheSettings(url=redis_url, namespace=namespace))
    assert direct.get(key) == (True, {"via": "sentinel"})
    cache.close()
    direct.close()


def test_sentinel_that_knows_no_such_master_is_a_clear_error(
    start_server, tmp_path, cache_service, namespace
):
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\n")
    start_server(str(conf), "--sentinel")
    cache = cache_service.Cache(
        cache_service.CacheSettings(url=f"sentinel://127.0.0.1:{port}/nosuch", namespace=namespace)
    )
    wait_until(lambda: _sentinel_answers(port), "sentinel")
    with pytest.raises(cache_service.CacheUnavailable, match="nosuch"):
        cache.ping()
    key = cache.key(1, "rules", "rule", 1, "details")
    assert cache.get_or_compute(key, lambda: "served anyway") == "served anyway"
    cache.close()


def _pings(cache, cache_service):
    try:
        cache.ping()
    except cache_service.CacheUnavailable:
        return False
    return True


def _sentinel_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
