"""Audit rows written off the call path: queued by the caller, inserted in batches by one thread.

Plain Python: the Odoo model hands over a ``write_batch(rows)`` function (one multi-row INSERT
on a cursor of its own) and puts each row here. A tool call then pays for an append to a queue
instead of a database round trip and commit (about 1 ms, the size of the warm remote call it
describes).

What can be lost, and why that is acceptable for an audit trail: the rows of the last flush
interval (0.2 s) when the process is killed outright (SIGKILL, OOM killer); a normal exit
flushes. When the database refuses a batch, it is kept and tried again with the next one, up to
``max_queue`` rows; beyond that the oldest rows are dropped with an error in the log.
"""

import atexit
import logging
import os
import threading
from collections import deque

_logger = logging.getLogger(__name__)


class AuditWriter:
    """A queue of rows and the daemon thread that writes them, one per process and database.

    Created lazily: a forked worker gets its own thread on its first ``put``.
    """

    def __init__(self, write_batch, interval=0.2, max_batch=500, max_queue=20000):
        self.write_batch = write_batch
        self.interval = interval
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._start_afresh()

    def _start_afresh(self):
        """New queue, locks and no thread: at creation, and in a forked child, whose copy of a
        lock may be held by a thread that does not exist there."""
        self._thread = None
        self._rows = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._writing = False
        self._dropped = 0

    def put(self, row):
        """Queue ``row`` for the next batch (a dict of column values)."""
        with self._lock:
            self._ensure_thread()
            self._rows.append(row)
            overflow = len(self._rows) - self.max_queue
            for _ in range(max(overflow, 0)):
                self._rows.popleft()
                self._dropped += 1
            if len(self._rows) >= self.max_batch:
                self._wake.set()

    def flush(self, timeout=10.0):
        """Write every queued row now; True when the queue is empty within ``timeout``."""
        with self._lock:
            if self._rows or self._writing:
                self._ensure_thread()
            self._wake.set()
            return self._idle.wait_for(lambda: not self._rows and not self._writing, timeout)

    @property
    def pending(self):
        return len(self._rows)

    def _ensure_thread(self):
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name="mcp-audit-writer", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._write_pending()

    def _write_pending(self):
        while True:
            with self._lock:
                if self._dropped:
                    _logger.error("Audit queue full: dropped the %d oldest rows", self._dropped)
                    self._dropped = 0
                if not self._rows:
                    self._idle.notify_all()
                    return
                batch = [self._rows.popleft() for _ in range(min(len(self._rows), self.max_batch))]
                self._writing = True
            try:
                self.write_batch(batch)
            except Exception:  # the database refused: keep the rows for the next round
                _logger.exception("Could not write %d audit rows; will try again", len(batch))
                with self._lock:
                    self._rows.extendleft(reversed(batch))
                    self._writing = False
                    self._idle.notify_all()
                return
            with self._lock:
                self._writing = False


_WRITERS = {}
_WRITERS_LOCK = threading.Lock()


def writer_for(name, write_batch):
    """The process's writer named ``name`` (a database name), created on first use."""
    with _WRITERS_LOCK:
        writer = _WRITERS.get(name)
        if writer is None:
            writer = _WRITERS[name] = AuditWriter(write_batch)
        return writer


def flush_all(timeout=10.0):
    """Write what every writer of this process holds (at exit); True when all are empty."""
    return all(writer.flush(timeout) for writer in list(_WRITERS.values()))


def _after_fork_in_child():
    # rows queued by the parent before the fork are the parent's to write; the locks may be
    # held by a parent thread that does not exist here
    global _WRITERS_LOCK
    _WRITERS_LOCK = threading.Lock()
    for writer in _WRITERS.values():
        writer._start_afresh()


atexit.register(flush_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
