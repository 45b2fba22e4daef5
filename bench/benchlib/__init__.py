"""What the benchmark scripts share: how figures and targets are printed.

Not a benchmark itself: ``make bench`` runs ``bench/*.py`` only, and this package sits below.
"""


def emit(name, value):
    """One figure, as ``name=value`` on a line of its own."""
    print(f"{name}={value}", flush=True)


def report_targets(targets, last_name, last_value):
    """Print each target as ``met`` or ``missed``, then the headline figure as the last line.

    Returns the script's exit code: 1 when a target is missed.
    """
    for name, met in targets.items():
        emit(name, "met" if met else "missed")
    emit(last_name, last_value)
    return 0 if all(targets.values()) else 1


def drop_redis_keys(url, prefix):
    """Remove a run's keys: every key of ``url``'s Redis starting with ``prefix``."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()
