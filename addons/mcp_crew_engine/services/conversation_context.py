"""A conversation's context in Redis: its turns, a rolling summary of the older ones, and the
intermediate tool results of its runs (plain Python, no Odoo).

Everything goes through the integrator's cache helper (a ``Cache`` passed in by the caller), under
the tenant's own keys ``<namespace>:account_<id>:crew:conversation:<reference>:<action>``, so two
tenants never see each other's conversations even when their references are equal.

Each conversation is one capped list, its log, in the session TTL class (the expiry slides on every
read and write). The log holds the turns in arrival order and, now and then, a summary entry that
folds every turn up to a given message id into a text. Summary and boundary are written together in
one entry, so the context read back is always consistent: the last summary plus the turns after its
boundary, even when two workers trim at once (the last summary wins). A set of the message ids seen
deduplicates appends atomically: a message delivered twice is stored once.

The cache fails open: when Redis is down, reads return an empty context flagged ``degraded``,
writes are skipped with a warning, and nothing raises into the caller.
"""

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

_logger = logging.getLogger(__name__)

MODULE = "crew"
RESOURCE_TYPE = "conversation"
#: Seconds between two warnings of an account's skipped writes: a Redis outage skips them all,
#: and one line a minute (with the count) says as much as one per turn.
SKIP_WARNING_INTERVAL = 60.0
# (id of the cache, account id) -> (monotonic time of the next warning, writes skipped since)
_skip_warnings = {}
_skip_warnings_lock = threading.Lock()
_clock = time.monotonic
LOG_ACTION = "log"
SEEN_ACTION = "seen"
ROLES = ("user", "assistant", "system")
ELLIPSIS = "…"


@dataclass(frozen=True)
class Turn:
    """One message of the conversation. ``at`` is an ISO-8601 UTC timestamp."""

    message_id: str
    role: str
    content: str
    at: str

    def as_message(self):
        """The turn as an OpenAI-style chat message."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class ConversationContext:
    """What a run knows of the conversation so far.

    ``degraded`` is true when Redis could not answer: the context is empty for that reason, not
    because the conversation is new. ``omitted`` counts the turns after the summary that did not
    fit in the requested number or budget.
    """

    summary: str
    turns: tuple
    degraded: bool = False
    omitted: int = 0

    def as_messages(self):
        """The summary (as a system message) followed by the turns, ready for a chat model."""
        messages = [turn.as_message() for turn in self.turns]
        if self.summary:
            messages.insert(
                0, {"role": "system", "content": f"Earlier in this conversation:\n{self.summary}"}
            )
        return messages


class Appended(str, Enum):
    """What :meth:`Conversation.append` did with the turn."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"  # Redis unavailable: nothing written


def shortened(text, limit):
    """``text`` with collapsed whitespace, cut to ``limit`` characters (an ellipsis ends a cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + ELLIPSIS


class TruncatingSummariser:
    """The default summariser, deterministic and offline: the previous summary followed by one
    shortened line per folded turn, keeping the most recent ``max_chars`` characters.

    Any callable ``(previous_summary, turns) -> str`` can replace it (an LLM, later)."""

    def __init__(self, max_chars=1500, line_chars=160):
        if line_chars < 2 or max_chars < line_chars:
            raise ValueError("max_chars must be at least line_chars, and line_chars at least 2")
        self.max_chars = max_chars
        self.line_chars = line_chars

    def __call__(self, previous_summary, turns):
        lines = [previous_summary] if previous_summary else []
        lines += [f"{turn.role}: {shortened(turn.content, self.line_chars)}" for turn in turns]
        text = "\n".join(lines)
        if len(text) <= self.max_chars:
            return text
        return ELLIPSIS + text[-(self.max_chars - 1) :]


def _utc_timestamp(at):
    """ISO-8601 UTC text of ``at`` (aware, or naive meaning UTC; default now)."""
    if at is None:
        at = datetime.now(timezone.utc)
    elif at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).isoformat(timespec="seconds")


def _replay(entries):
    """``(summary, live turns)`` from the stored log: the last summary and the turns after it."""
    summary, boundary, summary_index = "", None, -1
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("kind") == "summary":
            summary, boundary, summary_index = entry.get("text", ""), entry.get("through"), index
    turns = []
    for index, entry in enumerate(entries):
        if not (isinstance(entry, dict) and entry.get("kind") == "turn"):
            continue
        if index < summary_index and entry.get("id") == boundary:
            turns = []  # everything up to the boundary is in the summary
            continue
        turns.append(
            Turn(
                str(entry.get("id", "")),
                entry.get("role", "user"),
                entry.get("content", ""),
                entry.get("at", ""),
            )
        )
    # A boundary no longer in the log was capped away with every turn before it, so the turns
    # left are all after it; turns appended after the summary entry are always live.
    return summary, turns


class ConversationStore:
    """Conversation contexts of every tenant, stored through one ``Cache``.

    :param cache: the integrator's ``Cache`` (fails open; its session TTL class is used)
    :param summariser: ``(previous_summary, turns) -> str``, called when the live turns outgrow
        ``max_turns`` or ``max_size``; they are folded until half of each limit is left
    :param max_turns: live turns kept verbatim before the oldest are folded into the summary
    :param max_size: live size (in ``measure`` units) kept verbatim before folding
    :param max_turn_chars: longer contents are cut when appended (a huge message stays bounded)
    :param measure: size of a text, characters by default; a token counter makes budgets tokens
    """

    def __init__(
        self,
        cache,
        *,
        summariser: Callable[[str, Sequence[Turn]], str] | None = None,
        max_turns: int = 20,
        max_size: int = 6000,
        max_turn_chars: int = 4000,
        measure: Callable[[str], int] = len,
    ):
        if max_turns < 2 or max_size < 2 or max_turn_chars < 2:
            raise ValueError("max_turns, max_size and max_turn_chars must be at least 2")
        self.cache = cache
        self.summariser = summariser or TruncatingSummariser()
        self.max_turns = max_turns
        self.max_size = max_size
        self.max_turn_chars = max_turn_chars
        self.measure = measure
        # Room for the turns kept at the last fold, its summary entry and the turns appended
        # until the next fold: a live turn is never capped away while folding works.
        self.log_limit = 3 * max_turns + 2

    def conversation(self, account_id, reference):
        """The conversation ``reference`` (a channel's conversation id) of tenant ``account_id``."""
        if isinstance(reference, bool) or not isinstance(reference, (str, int)) or reference == "":
            raise ValueError(f"invalid conversation reference {reference!r}")
        return Conversation(self, account_id, reference)


class Conversation:
    """One tenant's conversation: append turns, read the context, cache tool results, clear."""

    def __init__(self, store, account_id, reference):
        self.store = store
        self.cache = store.cache
        self.account_id = account_id
        self.reference = reference
        self.log_key = self._key(LOG_ACTION)
        self.seen_key = self._key(SEEN_ACTION)

    def _key(self, action):
        return self.cache.key(self.account_id, MODULE, RESOURCE_TYPE, self.reference, action)

    def _redis_up(self):
        # The cache's circuit is open right after a call it failed or skipped (that call then
        # returned its empty fallback). It is shared by the process's threads, so another
        # thread's call may flip it in between: the flag errs rarely, and never raises.
        return self.cache.status()["up"]

    def _warn_skipped(self, what):
        key = (id(self.cache), self.account_id)
        now = _clock()
        with _skip_warnings_lock:
            due, skipped = _skip_warnings.get(key, (0.0, 0))
            if now < due:
                _skip_warnings[key] = (due, skipped + 1)
                return
            _skip_warnings[key] = (now + SKIP_WARNING_INTERVAL, 0)
        _logger.warning(
            "Conversation context of account %s not updated (Redis unavailable): %s skipped%s",
            self.account_id,
            what,
            f" ({skipped} more since the last warning)" if skipped else "",
        )

    # turns -----------------------------------------------------------------------------------
    def append(self, role, content, *, message_id=None, at=None):
        """Store one turn; the same ``message_id`` appended twice is stored once.

        ``at`` is when the message was sent (aware, or naive UTC; default now). A turn without a
        message id gets a fresh one (it can then not be recognised if appended again).
        Returns an :class:`Appended`; never raises because Redis is down.
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise TypeError(f"a turn's content must be text, not {type(content).__name__}")
        message_id = str(message_id) if message_id is not None else f"~{uuid.uuid4().hex}"
        if len(content) > self.store.max_turn_chars:
            content = content[: self.store.max_turn_chars - 1] + ELLIPSIS
        entry = {
            "kind": "turn",
            "id": message_id,
            "role": role,
            "content": content,
            "at": _utc_timestamp(at),
        }
        is_new = self.cache.set_add(self.seen_key, message_id)
        if is_new is None:
            self._warn_skipped(f"{role} turn")
            return Appended.SKIPPED
        if not is_new:
            return Appended.DUPLICATE
        self.cache.list_append(self.log_key, entry, self.store.log_limit)
        if not self._redis_up():
            # Release the id so a retry can store the turn (a no-op while Redis stays down).
            self.cache.set_remove(self.seen_key, message_id)
            self._warn_skipped(f"{role} turn")
            return Appended.SKIPPED
        self._fold_old_turns()
        return Appended.STORED

    def _fold_old_turns(self):
        """Fold the oldest live turns into the summary once the live ones outgrow the limits."""
        store = self.store
        summary, turns = _replay(self.cache.list_items(self.log_key))
        sizes = [store.measure(turn.content) for turn in turns]
        if len(turns) <= store.max_turns and sum(sizes) <= store.max_size:
            return
        kept, kept_size = 0, 0
        # Keep the newest turns up to half of each limit (at least the last one), so that a fold
        # is not needed again at the very next append.
        for size in reversed(sizes):
            if kept and (kept >= store.max_turns // 2 or kept_size + size > store.max_size // 2):
                break
            kept += 1
            kept_size += size
        folded = turns[: len(turns) - kept]
        if not folded:
            return
        try:
            new_summary = store.summariser(summary, folded)
        # an LLM summariser may fail in any way: the turns then stay verbatim until the next fold
        except Exception as exc:  # noqa: BLE001
            _logger.warning(
                "Conversation summary of account %s failed (%s); turns kept verbatim",
                self.account_id,
                type(exc).__name__,
            )
            return
        entry = {
            "kind": "summary",
            "text": str(new_summary),
            "through": folded[-1].message_id,
            "at": _utc_timestamp(None),
        }
        self.cache.list_append(self.log_key, entry, store.log_limit)

    def context(self, last=None, budget=None):
        """The summary and the newest turns: at most ``last`` of them, within ``budget``
        (in the store's ``measure`` units). The turns are contiguous and oldest first."""
        entries = self.cache.list_items(self.log_key)
        if not entries and not self._redis_up():
            return ConversationContext("", (), degraded=True)
        summary, turns = _replay(entries)
        chosen, used = [], 0
        for turn in reversed(turns):
            if last is not None and len(chosen) >= last:
                break
            size = self.store.measure(turn.content)
            if budget is not None and used + size > budget:
                break
            chosen.append(turn)
            used += size
        chosen.reverse()
        return ConversationContext(summary, tuple(chosen), omitted=len(turns) - len(chosen))

    # tool results ----------------------------------------------------------------------------
    def tool_result(self, tool, arguments_text, call, ttl_class="transient"):
        """``(result, cached)``: the result of ``tool`` for these arguments in this conversation,
        or ``call()`` kept for the next identical call.

        ``arguments_text`` is the integrator's ``tool_calls.arguments_json(arguments)`` (canonical
        JSON), so equal arguments in any key order share a result. ``call`` may return the cache
        helper's ``Uncached(result)`` for a result that must not be kept (a tool error). The
        transient class by default: the data behind a tool (stock, prices) moves within a session.
        """
        digest = hashlib.sha256(f"{tool}\n{arguments_text}".encode()).hexdigest()
        computed = []

        def compute():
            computed.append(True)
            return call()

        result = self.cache.get_or_compute(self._key(f"tool.{digest[:40]}"), compute, ttl_class)
        return result, not computed

    # reset -----------------------------------------------------------------------------------
    def clear(self):
        """Forget the conversation: its turns, summary, seen message ids and tool results."""
        self.cache.delete(self.log_key)
        self.cache.delete(self.seen_key)
        # The tool results are stamped with this conversation's generation: one bump drops all.
        self.cache.invalidate(self.account_id, MODULE, RESOURCE_TYPE, self.reference)
        if not self._redis_up():
            self._warn_skipped("clear")
