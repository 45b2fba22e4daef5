"""Redis connection URLs the suite accepts, and the client each one gives.

- ``redis://host[:port][/db]`` and ``rediss://...`` (TLS)
- ``unix:///path/to/redis.sock[?db=N]``
- ``sentinel://host:port[,host:port...]/<service name>[/db]`` (also ``redis+sentinel://``)

A password never sits in the URL: it comes from a credential, so the URL can be shown, logged and
audited as it is. A username may appear (Redis ACL users).
"""

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

SCHEMES = ("redis", "rediss", "unix", "sentinel", "redis+sentinel")
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379


class CacheConfigError(ValueError):
    """A cache setting that cannot work, with a message an administrator can act on."""


@dataclass(frozen=True)
class RedisTarget:
    scheme: str
    hosts: tuple = ()
    path: str = ""
    db: int = 0
    username: str = ""
    service_name: str = ""

    @property
    def sentinel(self):
        return self.scheme in ("sentinel", "redis+sentinel")


def _parse_db(text, url):
    if text in ("", None):
        return 0
    if not text.isdigit():
        raise CacheConfigError(f"Redis database must be a number in {url!r}, got {text!r}")
    return int(text)


def _parse_hosts(netloc, default_port, url):
    hosts = []
    for item in netloc.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep:
            host, port = item.strip(), ""
        host = host.strip("[]")
        if not host:
            raise CacheConfigError(f"Redis URL {url!r} names no host")
        if port and not port.isdigit():
            raise CacheConfigError(f"Redis port must be a number in {url!r}, got {port!r}")
        hosts.append((host, int(port) if port else default_port))
    return tuple(hosts)


def parse(url):
    """Check a Redis URL and describe its target; raise CacheConfigError with the reason."""
    url = (url or "").strip()
    if not url:
        raise CacheConfigError("Redis URL is empty")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise CacheConfigError(
            f"Redis URL {redact(url)!r} must start with one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    if parts.password is not None:
        raise CacheConfigError(
            "Redis URL must not contain a password: choose a credential for it in Settings"
        )
    username = parts.username or ""
    netloc = parts.netloc.rpartition("@")[2]
    query = parse_qs(parts.query)
    if scheme == "unix":
        if not parts.path:
            raise CacheConfigError(f"Redis URL {url!r} names no socket path")
        return RedisTarget(
            scheme, path=parts.path, db=_parse_db(query.get("db", [""])[0], url), username=username
        )
    if scheme in ("sentinel", "redis+sentinel"):
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            raise CacheConfigError(
                f"Sentinel URL {url!r} must name the master service: sentinel://host:26379/mymaster"
            )
        db = _parse_db(segments[1] if len(segments) > 1 else "", url)
        hosts = _parse_hosts(netloc, DEFAULT_SENTINEL_PORT, url)
        return RedisTarget(scheme, hosts, db=db, username=username, service_name=segments[0])
    hosts = _parse_hosts(netloc, DEFAULT_PORT, url)
    if len(hosts) != 1:
        raise CacheConfigError(f"Redis URL {url!r} must name exactly one host")
    return RedisTarget(scheme, hosts, db=_parse_db(parts.path.strip("/"), url), username=username)


def redact(url):
    """The URL without anything that could be a secret (user info and query)."""
    parts = urlsplit(url or "")
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


def connect(target, password=None, timeout=0.25):
    """A redis-py client for ``target``; short timeouts keep a dead Redis from slowing requests."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    from redis.sentinel import Sentinel

    options = {
        "db": target.db,
        "username": target.username or None,
        "password": password or None,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        # redis-py retries a refused connection for seconds by default; a cache must fail at once
        # and let the circuit decide when to try again
        "retry": Retry(NoBackoff(), 0),
    }
    if target.scheme == "unix":
        return redis.Redis(unix_socket_path=target.path, **options)
    if target.sentinel:
        sentinel = Sentinel(
            list(target.hosts),
            socket_timeout=timeout,
            sentinel_kwargs={
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                "retry": options["retry"],
            },
        )
        return sentinel.master_for(target.service_name, **options)
    (host, port) = target.hosts[0]
    return redis.Redis(host=host, port=port, ssl=target.scheme == "rediss", **options)
