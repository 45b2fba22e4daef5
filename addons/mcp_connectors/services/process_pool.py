"""Long-lived clients shared by the threads of one process (plain Python, no Odoo).

The built-in MCP servers keep one client per server and process (a Qdrant store, the MongoDB
tools) instead of opening one per call. The caller names the configuration it wants with each
request; when it differs from the one an entry was built for (a new URL, a rotated key), the
entry is closed and built again, so a configuration change reaches every process on its next
call without any signal between processes.

After a fork the parent's entries are forgotten, never closed: their sockets, threads and file
locks belong to the parent.
"""

import logging
import os
import threading

_logger = logging.getLogger(__name__)


class ProcessPool:
    """One resource per key, built by the caller's ``create`` for the caller's ``config``."""

    def __init__(self):
        # Reentrant: a ``create`` may take another resource of the pool (a store its embedder).
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._entries = {}  # key -> (config, resource, close)

    def get(self, key, config, create, close=None):
        """The resource under ``key`` built for ``config``.

        ``create()`` builds it when there is none, or when the one there was built for another
        configuration; that one is first closed with ``close(resource)``. ``config`` must
        support ``==``.
        """
        with self._lock:
            self._check_fork()
            entry = self._entries.get(key)
            if entry is not None and entry[0] == config:
                return entry[1]
            # Closed before the new one opens: a local Qdrant directory takes one client only.
            # Built under the lock, so two threads never open the same resource twice.
            if entry is not None:
                del self._entries[key]
                self._close(key, entry)
            resource = create()
            self._entries[key] = (config, resource, close)
            return resource

    def discard(self, key):
        """Close and forget the resource under ``key`` (e.g. its server was deleted)."""
        with self._lock:
            self._check_fork()
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._close(key, entry)

    def close_all(self):
        with self._lock:
            self._check_fork()
            entries, self._entries = self._entries, {}
            for key, entry in entries.items():
                self._close(key, entry)

    def __contains__(self, key):
        with self._lock:
            self._check_fork()
            return key in self._entries

    def _check_fork(self):
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._entries = {}

    @staticmethod
    def _close(key, entry):
        _config, resource, close = entry
        if close is None:
            return
        try:
            close(resource)
        except Exception:  # a resource that fails to close must not block its successor
            _logger.warning("Closing the pooled client %r failed", key, exc_info=True)


_SHARED = ProcessPool()


def shared_pool():
    """The pool of this process's built-in servers (Qdrant stores, MongoDB tools, embedders)."""
    return _SHARED
