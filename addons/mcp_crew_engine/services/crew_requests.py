"""The crew engine's request handling around routing and the agent loop (plain Python, no Odoo).

- :func:`checked_request`: what of a customer's message is kept and answered, and why not.
- :func:`dedupe_key`: one key per (tenant, channel, conversation, message), so a request
  delivered twice makes one run.
- :class:`AnswerCache` and :class:`RoutingCache`: the agent loop's answer cache and the
  router's decision cache over the integrator's ``Cache`` (tenant-prefixed keys, fail open).
"""

import hashlib
import json

from .routing import RoutingDecision, RoutingRequest

MODULE = "crew"
#: Requests longer than this are kept cut (the router reads the head anyway).
MAX_STORED_CHARS = 20_000
ROUTING_RESOURCE = "routing"
ANSWER_RESOURCE = "answer"


def checked_request(raw):
    """``(text to store, problem)``: ``problem`` is empty when the message can be answered.

    ``raw`` may be text or bytes. Binary data is described, never stored; a huge text is cut
    to :data:`MAX_STORED_CHARS` and the problem says so only when it cannot be answered.
    """
    readable = RoutingRequest(text=raw).readable()
    is_bytes = isinstance(raw, (bytes, bytearray, memoryview))
    if readable.binary:
        unit = "bytes" if is_bytes else "characters"
        return f"[binary data, {readable.length} {unit}]", readable.problem
    text = bytes(raw).decode("utf-8") if is_bytes else raw if isinstance(raw, str) else ""
    if len(text) > MAX_STORED_CHARS:
        text = f"{text[:MAX_STORED_CHARS]}… [{len(text) - MAX_STORED_CHARS} more characters]"
    return text, readable.problem


def dedupe_key(account_id, channel, conversation, message_id):
    """The key two deliveries of the same customer message share, or None.

    Only a message with an id inside a conversation can be recognised: an internal request
    without them is a new request each time.
    """
    if conversation in (None, "") or message_id in (None, ""):
        return None
    parts = json.dumps([account_id, channel or "", str(conversation), str(message_id)])
    return hashlib.sha256(parts.encode()).hexdigest()


class AnswerCache:
    """``get(key)`` / ``set(key, value)`` for the agent loop's exact-request answer cache.

    Keys are :func:`agent_loop.answer_cache_key` digests, stored per tenant under the crew
    module (a crew or agent change drops them all). A Redis outage is a miss.
    """

    def __init__(self, cache, account_id, ttl_class="transient"):
        self.cache = cache
        self.account_id = account_id
        self.ttl_class = ttl_class

    def _key(self, digest):
        return self.cache.key(self.account_id, MODULE, ANSWER_RESOURCE, digest[:40], "reply")

    def get(self, digest):
        hit, value = self.cache.get(self._key(digest), self.ttl_class)
        return value if hit else None

    def set(self, digest, value):
        self.cache.set(self._key(digest), value, self.ttl_class)


class RoutingCache:
    """The router's decisions per normal form of a message (``Router.cache_id``), transient."""

    def __init__(self, cache, account_id):
        self.cache = cache
        self.account_id = account_id

    def route(self, router, request):
        """``(decision, cached)``; without a cache (None) the router decides every time."""
        if self.cache is None:
            return router.route(request), False
        key = self.cache.key(
            self.account_id, MODULE, ROUTING_RESOURCE, router.cache_id(request), "decision"
        )
        computed = []

        def decide():
            computed.append(True)
            return router.route(request).as_dict()

        value = self.cache.get_or_compute(key, decide, "transient")
        return RoutingDecision.from_dict(value), not computed


class LlmCrewClassifier:
    """The router's LLM classifier: one short completion choosing a crew code, or none.

    Asked only when rules and similarity are unsure (and its decision is cached with the
    others). Counts what it spends, for the run's totals and the tenant's budget.
    """

    def __init__(self, llm, model, timeout=10.0):
        self.llm = llm
        self.model = model
        self.timeout = timeout
        self.replies = []

    def __call__(self, text, candidates):
        teams = "\n".join(
            f"- {candidate['code']}: {candidate['purpose']}" for candidate in candidates
        )
        messages = [
            {
                "role": "system",
                "content": "You route customer messages to the team that should answer. "
                f"Teams:\n{teams}\nReply with the team's code only, or none if no team fits.",
            },
            {"role": "user", "content": text},
        ]
        reply = self.llm.complete(
            self.model, messages, [], temperature=0, timeout=self.timeout, max_tokens=20
        )
        self.replies.append(reply)
        code = (reply.content or "").strip().strip("\"'`.").lower()
        return None if code in ("", "none") else code

    def spent(self):
        """Run totals of the classifier's calls (nothing when it was not asked)."""
        if not self.replies:
            return {}
        return {
            "llm_calls": len(self.replies),
            "tokens_in": sum(reply.tokens_in for reply in self.replies),
            "tokens_out": sum(reply.tokens_out for reply in self.replies),
            "cost": sum(reply.cost for reply in self.replies),
        }
