"""The agent loop: one agent, or a crew of agents, answering one request with an LLM and tools.

Plain Python, no Odoo. The caller passes in everything that touches the suite:

- ``call_tool(name, arguments)``: runs a tenant's tool (the Odoo side passes the integrator's
  ``call_tool``, which caches read-only results and enforces each tool's timeout); whatever it
  raises becomes a tool error the model reads.
- ``llm``: a :class:`LitellmChat` (litellm's ``completion()`` with OpenAI-style tool calling,
  imported on first use with its local cost map, never with ``litellm.cache``).
- ``answer_cache`` (optional): ``get(key)`` / ``set(key, value)`` over the suite's own cache.
  Only exact, deterministic requests are looked up (:func:`answer_cache_key`).

Every run is bounded by :class:`Limits` (LLM calls, tokens, wall time, the remaining cost
budget, tool errors, delegation depth). A limit, a loop (the same tool called twice with the
same arguments, or a delegation back to an agent already working on the request), a permanent
LLM error or the agent's own decision end the run with a handoff and its reason, never an
exception. Only a provider failure worth retrying (429, 5xx, timeout, connection) raises
:class:`LLMRetryableError`, for the job layer to retry with backoff and then hand off.
"""

import email.utils
import hashlib
import json
import logging
import os
import re
import time
import unicodedata
from dataclasses import asdict, dataclass, field, replace

ANSWER = "answer"
HANDOFF = "handoff"

# Handoff reasons (the run records the code and a sentence saying what happened).
STEP_LIMIT = "step_limit"
TOKEN_LIMIT = "token_limit"
TIME_LIMIT = "time_limit"
BUDGET_SPENT = "budget_spent"
REPEATED_TOOL_CALL = "repeated_tool_call"
DELEGATION_LOOP = "delegation_loop"
TOOL_ERRORS = "tool_errors"
LLM_ERROR = "llm_error"
#: only in ``LLMRetryableError.partial``: what the job records once its retries are spent
LLM_UNAVAILABLE = "llm_unavailable"
EMPTY_ANSWER = "empty_answer"
AGENT_DECISION = "agent_decision"

SEQUENTIAL = "sequential"
HIERARCHICAL = "hierarchical"

#: Synthetic tools the engine adds; tenant tools with these names are renamed for the model.
DELEGATE_TOOL = "delegate"
HANDOFF_TOOL = "handoff_to_human"

#: OpenAI function names: letters, digits, ``_`` and ``-``, at most 64 (MCP names may hold ``.``).
_FUNCTION_NAME_INVALID = re.compile(r"[^A-Za-z0-9_-]")
#: Status codes worth a retry later: timeout, conflict, rate limit, and every 5xx.
_RETRYABLE_STATUS = {408, 409, 429}


class LLMError(Exception):
    """The LLM call failed. The message never holds the API key."""

    def __init__(self, message, *, status=None):
        super().__init__(message)
        self.status = status


class LLMRetryableError(LLMError):
    """A provider failure that may pass: 429, 5xx, timeout, connection refused or reset.

    ``retry_after`` is the provider's ``Retry-After`` in seconds when it sent one. ``partial``
    is the :class:`RunResult` of the run so far (steps, tokens and cost already spent), set by
    :func:`run_crew` so that the job layer can record what the failed attempt cost.
    """

    def __init__(self, message, *, status=None, retry_after=None, timed_out=False):
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.timed_out = timed_out
        self.partial = None


class LLMPermanentError(LLMError):
    """A failure retrying will not fix (bad key, unknown model, request too large, bad reply)."""


@dataclass(frozen=True)
class Agent:
    """One agent of a crew.

    ``tools`` are MCP tool descriptors (``name``, ``description``, ``input_schema`` or
    ``inputSchema``). ``max_steps`` bounds this agent's LLM calls within one run (the run's own
    bound still applies). ``delegates_to`` names the agents it may hand a task to.
    """

    name: str
    role: str
    model: str
    goal: str = ""
    instructions: str = ""
    temperature: float = 0.0
    tools: tuple = ()
    max_steps: int | None = None
    delegates_to: tuple = ()

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise ValueError("an agent needs a name")
        if not self.model or not isinstance(self.model, str):
            raise ValueError(f"agent {self.name} has no LLM model")
        if not 0 <= self.temperature <= 2:
            raise ValueError(f"agent {self.name}: the temperature must be between 0 and 2")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"agent {self.name}: the step limit must be at least 1")
        object.__setattr__(self, "tools", tuple(self.tools))
        object.__setattr__(self, "delegates_to", tuple(self.delegates_to))


@dataclass(frozen=True)
class Limits:
    """Bounds of one run, over all its agents. A step is one LLM call (cached or not)."""

    max_steps: int = 10
    #: prompt plus completion tokens
    max_tokens: int = 40_000
    max_seconds: float = 90.0
    #: what the tenant may still spend today (the currency of litellm's cost map); None: no cap
    budget: float | None = None
    #: malformed or failed tool calls answered back to the model before the run hands off
    max_tool_errors: int = 3
    max_delegation_depth: int = 2
    #: one LLM call; cut shorter when the run's wall time is nearly spent
    llm_timeout: float = 30.0
    max_output_tokens: int = 1024
    #: characters of one tool result the model reads
    tool_result_chars: int = 6000
    #: characters of tool arguments and results kept in the recorded steps
    record_chars: int = 1000

    def __post_init__(self):
        for name in ("max_steps", "max_tokens", "max_output_tokens", "tool_result_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_seconds <= 0 or self.llm_timeout <= 0:
            raise ValueError("time limits must be positive numbers of seconds")
        if self.max_tool_errors < 0 or self.max_delegation_depth < 0 or self.record_chars < 0:
            raise ValueError("error, depth and record bounds must not be negative")


@dataclass
class LLMReply:
    """One chat completion, normalised: what the loop needs, and what it costs."""

    content: str | None
    #: ``[{"id", "name", "arguments"}]``; arguments as the raw text the model sent
    tool_calls: list
    finish_reason: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    #: the provider reported no usage, the counts are litellm's offline estimate
    tokens_estimated: bool = False
    cost: float = 0.0
    #: False when the model is in neither litellm's cost map nor the given prices
    cost_known: bool = True
    duration: float = 0.0
    cached: bool = False

    def cache_value(self):
        """What the answer cache keeps: the reply, not what it cost."""
        return {
            "content": self.content,
            "tool_calls": self.tool_calls,
            "finish_reason": self.finish_reason,
        }

    @classmethod
    def from_cache(cls, value):
        return cls(
            content=value.get("content"),
            tool_calls=list(value.get("tool_calls") or []),
            finish_reason=value.get("finish_reason"),
            cached=True,
        )


def _litellm():
    # Without this, importing litellm downloads its cost map from GitHub.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    # litellm logs every call at INFO on its own logger: the run records them instead
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    return litellm


class LitellmChat:
    """Chat completions through ``litellm.completion()``, one attempt per call.

    ``num_retries=0`` and ``max_retries=0`` are always sent: litellm's OpenAI client otherwise
    retries a 429 or 5xx twice by itself, hidden from the step count, the wall time and the
    job's backoff. ``prices`` maps a model to ``{"input_cost_per_token", "output_cost_per_token"}``
    for models missing from litellm's cost map (local or self-hosted models).
    """

    def __init__(self, api_base=None, api_key=None, prices=None, options=None):
        self.api_base = api_base
        self.prices = dict(prices or {})
        #: further ``completion()`` arguments (``drop_params``, provider settings)
        self.options = dict(options or {})
        self._api_key = api_key

    def __repr__(self):
        return f"LitellmChat(api_base={self.api_base!r})"

    def complete(self, model, messages, tools, *, temperature, timeout, max_tokens):
        """One completion; raises :class:`LLMRetryableError` or :class:`LLMPermanentError`."""
        litellm = _litellm()
        arguments = {
            **self.options,
            "model": model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "timeout": timeout,
            "num_retries": 0,
            "max_retries": 0,
            # ignored unless someone sets litellm.cache globally: answers are cached by us only
            "cache": {"no-cache": True, "no-store": True},
            "api_base": self.api_base,
            "api_key": self._api_key,
        }
        if tools:
            arguments["tools"] = tools
        started = time.monotonic()
        try:
            response = litellm.completion(**arguments)
        except Exception as exc:  # noqa: BLE001 - classified: the caller sees LLMError only
            raise self._error(model, exc) from None
        duration = time.monotonic() - started
        return self._reply(litellm, model, messages, tools, response, duration)

    def _without_key(self, text):
        return text.replace(self._api_key, "***") if self._api_key else text

    def _error(self, model, exc):
        import openai  # installed with litellm, whose exceptions derive from its classes

        status = getattr(exc, "status_code", None)
        message = f"{model}: {type(exc).__name__}: {self._without_key(str(exc))[:300]}"
        timed_out = isinstance(exc, openai.APITimeoutError)
        if (
            timed_out
            or isinstance(exc, openai.APIConnectionError)
            or status in _RETRYABLE_STATUS
            or (isinstance(status, int) and status >= 500)
        ):
            return LLMRetryableError(
                message,
                status=status,
                retry_after=_retry_after(getattr(exc, "response", None)),
                timed_out=timed_out,
            )
        return LLMPermanentError(message, status=status)

    def _reply(self, litellm, model, messages, tools, response, duration):
        if not response.choices:
            raise LLMPermanentError(f"{model}: the provider returned no choice")
        message = response.choices[0].message
        content = message.content if isinstance(message.content, str) else None
        calls = [
            {
                "id": call.id or "",
                "name": (call.function.name or "") if call.function else "",
                "arguments": (call.function.arguments or "") if call.function else "",
            }
            for call in message.tool_calls or []
        ]
        usage = getattr(response, "usage", None)
        tokens_in = (getattr(usage, "prompt_tokens", 0) or 0) if usage else 0
        tokens_out = (getattr(usage, "completion_tokens", 0) or 0) if usage else 0
        # litellm turns a missing usage into zeros; a real request is never free, so count.
        estimated = False
        if tokens_in <= 0:
            tokens_in = litellm.token_counter(model=model, messages=messages, tools=tools or None)
            estimated = True
        if tokens_out <= 0 and (content or calls):
            produced = (content or "") + "".join(call["name"] + call["arguments"] for call in calls)
            tokens_out = litellm.token_counter(model=model, text=produced)
            estimated = True
        cost, cost_known = self._cost(litellm, model, tokens_in, tokens_out)
        return LLMReply(
            content=content,
            tool_calls=calls,
            finish_reason=response.choices[0].finish_reason,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            tokens_estimated=estimated,
            cost=cost,
            cost_known=cost_known,
            duration=duration,
        )

    def _cost(self, litellm, model, tokens_in, tokens_out):
        try:
            prompt_cost, completion_cost = litellm.cost_per_token(
                model=model,
                prompt_tokens=tokens_in,
                completion_tokens=tokens_out,
                custom_cost_per_token=self.prices.get(model),
            )
        except Exception:  # noqa: BLE001 - ModelNotMappedError and kin: the cost is unknown
            return 0.0, False
        return prompt_cost + completion_cost, True


def _retry_after(response):
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), else None."""
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def canonical_json(value):
    """Equal data, equal text: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def wording_form(text):
    """A customer's message as answer cache keys compare it: case, accents, spacing and the
    punctuation that ends it vary between customers asking the same thing; nothing else is
    folded (a comma inside can change the meaning: "não, quero trocar")."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(char for char in folded if not unicodedata.combining(char))
    return " ".join(folded.split()).rstrip("?!.…¿¡ ")


def answer_cache_key(model, temperature, messages, tools, data_versions, options=None):
    """Key of a stored LLM reply, or None when the request must not be answered from a cache.

    Only a deterministic request is cacheable: temperature 0 and a known ``data_versions``
    token (the versions of the tenant data the answer may depend on, so a change to that data
    changes the key). Equal model, messages (the users' ones in their :func:`wording_form`),
    tools (in their order), ``options`` (other request parameters such as ``max_tokens``) and
    token give equal keys; anything else differs. No similarity of any kind: "paid invoices"
    and "unpaid invoices" never share an answer.
    """
    if temperature != 0 or data_versions is None:
        return None
    compared = [
        {**message, "content": wording_form(message["content"])}
        if message.get("role") == "user" and isinstance(message.get("content"), str)
        else message
        for message in messages
    ]
    request = {
        "model": model,
        "messages": compared,
        "tools": tools or [],
        "options": options or {},
        "data_versions": data_versions,
    }
    return hashlib.sha256(canonical_json(request).encode()).hexdigest()


def openai_tools(descriptors, reserved=()):
    """MCP tool descriptors as OpenAI function tools.

    Returns ``(tools, names)``: ``names`` maps each function name the model sees to the tool's
    real name. Names OpenAI refuses (``.`` and other characters, over 64 long) or taken by a
    ``reserved`` synthetic tool get a valid, unique stand-in.
    """
    tools, names = [], {}
    taken = set(reserved)
    for descriptor in descriptors:
        name = descriptor.get("name")
        if not name or not isinstance(name, str):
            raise ValueError(f"a tool descriptor has no name: {descriptor!r:.200}")
        schema = descriptor.get("input_schema") or descriptor.get("inputSchema") or {}
        if not isinstance(schema, dict):
            raise TypeError(f"tool {name}: the input schema is not an object")
        function_name = _FUNCTION_NAME_INVALID.sub("_", name)[:64]
        number = 1
        while function_name in taken:
            number += 1
            suffix = f"_{number}"
            function_name = _FUNCTION_NAME_INVALID.sub("_", name)[: 64 - len(suffix)] + suffix
        taken.add(function_name)
        names[function_name] = name
        tools.append(_function(function_name, descriptor.get("description") or "", schema))
    return tools, names


def _function(name, description, schema):
    parameters = {"type": "object", "properties": {}, **schema}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _handoff_function():
    return _function(
        HANDOFF_TOOL,
        "Hand the conversation to a human colleague: when the customer asks for a person, or "
        "when you cannot help with the tools you have.",
        {
            "properties": {"reason": {"type": "string", "description": "Why, in one sentence."}},
            "required": ["reason"],
        },
    )


def _delegate_function(agents):
    return _function(
        DELEGATE_TOOL,
        "Give a task to one of your colleagues and get their answer back.",
        {
            "properties": {
                "agent": {"type": "string", "enum": list(agents)},
                "task": {"type": "string", "description": "What they should find out or do."},
            },
            "required": ["agent", "task"],
        },
    )


def system_prompt(agent, profile=None, colleagues=()):
    """The agent's system prompt: its role, then the tenant's behaviour profile.

    ``profile`` is the tenant's ``_behaviour_profile()`` (tone, language, hours, services,
    business rules). Short on purpose: it is resent with every LLM call of the run.
    """
    lines = [f"You are {agent.role}."]
    if agent.goal:
        lines.append(f"Your goal: {agent.goal}")
    if agent.instructions:
        lines.append(agent.instructions.strip())
    if colleagues:
        team = "; ".join(f"{colleague.name} ({colleague.role})" for colleague in colleagues)
        lines.append(f"You can delegate tasks to: {team}.")
    if profile:
        lines.extend(_profile_lines(profile))
    lines.append(
        "Use the tools to look up facts; never invent prices, stock, orders or policies. "
        "If you cannot help, hand the conversation to a human."
    )
    return "\n".join(lines)


def _profile_lines(profile):
    lines = []
    if profile.get("name"):
        lines.append(f"You answer on behalf of {profile['name']}.")
    if profile.get("language"):
        lines.append(f"Always answer in the language {profile['language']}.")
    tone = ", ".join(part for part in (profile.get("tone"), profile.get("personality")) if part)
    if tone:
        lines.append(f"Tone: {tone}.")
    hours = profile.get("hours") or {}
    # a tenant without opening hours set up is not "closed every day"
    has_hours = any(hours.values())
    if has_hours:
        days = "; ".join(
            f"{day} {', '.join(intervals) if intervals else 'closed'}"
            for day, intervals in hours.items()
        )
        zone = f" ({profile['tz']})" if profile.get("tz") else ""
        lines.append(f"Opening hours{zone}: {days}.")
    holidays = profile.get("holidays") or []
    if holidays:
        closed = ", ".join(
            f"{day['date']} {day.get('name') or ''}".strip() for day in holidays[:12]
        )
        lines.append(f"Closed on: {closed}.")
    if has_hours and "open_now" in profile:
        lines.append("The business is open now." if profile["open_now"] else "It is closed now.")
    if profile.get("services"):
        lines.append(f"Services offered: {', '.join(profile['services'])}.")
    if profile.get("business_rules"):
        lines.append(f"Business rules:\n{profile['business_rules'].strip()}")
    if profile.get("faq"):
        pairs = "\n".join(f"Q: {question}\nA: {answer}" for question, answer in profile["faq"])
        lines.append(f"Frequently asked questions:\n{pairs}")
    if profile.get("conversation_summary"):
        lines.append(f"Earlier in this conversation:\n{profile['conversation_summary']}")
    return lines


@dataclass
class RunResult:
    """How a run ended and what it cost. ``steps`` are JSON-serialisable dicts, in order."""

    outcome: str
    answer: str = ""
    handoff_reason: str = ""
    detail: str = ""
    steps: list = field(default_factory=list)
    llm_calls: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_estimated: bool = False
    cost: float = 0.0
    cost_known: bool = True
    duration: float = 0.0
    llm_duration: float = 0.0
    tool_duration: float = 0.0
    notes: list = field(default_factory=list)

    def to_dict(self):
        return asdict(self)


class _Stop(Exception):
    """Ends the run with a handoff, from however deep in the delegation chain."""

    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Toolbox:
    schemas: list
    #: function name the model sees -> the tenant tool's name
    names: dict
    can_delegate: bool
    #: length of the schemas as JSON, for the prompt size estimate
    chars: int


def run_crew(
    agents,
    request,
    *,
    call_tool,
    llm,
    process=SEQUENTIAL,
    history=(),
    profile=None,
    limits=None,
    answer_cache=None,
    data_versions=None,
    clock=time.monotonic,
):
    """Answer ``request`` (the customer's message) with ``agents``; return a :class:`RunResult`.

    ``sequential``: each agent in turn, the later ones reading the earlier ones' results; the
    last one answers. ``hierarchical``: the first agent manages, delegating to the others
    (all of them unless its ``delegates_to`` says otherwise) and combining their answers.
    ``history`` is the conversation so far (``{"role": "user"|"assistant", "content"}``).
    Raises :class:`LLMRetryableError` (with ``partial`` set) for provider failures worth a
    retry, ValueError for bad arguments; every other end is a result.
    """
    agents = list(agents)
    if not agents:
        raise ValueError("a crew needs at least one agent")
    if process not in (SEQUENTIAL, HIERARCHICAL):
        raise ValueError(f"unknown crew process {process!r}")
    if not isinstance(request, str) or not request.strip():
        raise ValueError("the request must be non-empty text")
    if process == HIERARCHICAL and len(agents) > 1 and not agents[0].delegates_to:
        agents[0] = replace(agents[0], delegates_to=tuple(agent.name for agent in agents[1:]))
    run = _CrewRun(
        agents,
        call_tool=call_tool,
        llm=llm,
        profile=profile,
        limits=limits or Limits(),
        answer_cache=answer_cache,
        data_versions=data_versions,
        clock=clock,
    )
    team = agents if process == SEQUENTIAL else agents[:1]
    return run.run(team, request, _checked_history(history))


def _checked_history(history):
    messages = []
    for message in history:
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant") or not isinstance(message.get("content"), str):
            raise ValueError("history messages need a role (user or assistant) and text content")
        messages.append({"role": role, "content": message["content"]})
    return messages


class _CrewRun:
    """The state of one run: counters shared by every agent, the steps, the limits."""

    def __init__(
        self, agents, *, call_tool, llm, profile, limits, answer_cache, data_versions, clock
    ):
        self.agents = {agent.name: agent for agent in agents}
        if len(self.agents) != len(agents):
            raise ValueError("two agents of the crew share a name")
        self.call_tool = call_tool
        self.llm = llm
        self.profile = profile
        self.limits = limits
        self.answer_cache = answer_cache
        self.data_versions = data_versions
        self.clock = clock
        self.started = clock()
        self.result = RunResult(outcome=HANDOFF)
        self.tool_errors = 0
        self._toolboxes = {}

    # -- the run ------------------------------------------------------------------------------

    def run(self, team, request, history):
        try:
            answer = self._run_team(team, request, history)
        except _Stop as stop:
            self.result.outcome = HANDOFF
            self.result.handoff_reason = stop.reason
            self.result.detail = stop.detail
        except LLMRetryableError as exc:
            self.result.handoff_reason = LLM_UNAVAILABLE
            self.result.detail = str(exc)
            exc.partial = self._finish()
            raise
        else:
            self.result.outcome = ANSWER
            self.result.answer = answer
        return self._finish()

    def _finish(self):
        result = self.result
        result.duration = self.clock() - self.started
        if result.tokens_estimated:
            self._note("the provider reported no token usage for some calls: tokens estimated")
        budget = self.limits.budget
        if budget is not None and result.cost >= budget:
            self._note(f"the remaining budget {budget:g} is spent ({result.cost:.6f})")
        return result

    def _note(self, text):
        if text not in self.result.notes:
            self.result.notes.append(text)

    def _run_team(self, team, request, history):
        answer, earlier = "", []
        for agent in team:
            messages = [
                {"role": "system", "content": self._system(agent)},
                *history,
                {"role": "user", "content": request},
            ]
            if earlier:
                notes = "\n".join(f"- {name}: {text}" for name, text in earlier)
                messages.append(
                    {"role": "user", "content": f"Results of your colleagues so far:\n{notes}"}
                )
            answer = self._run_agent(agent, messages, (agent.name,))
            earlier.append((agent.name, answer))
        return answer

    def _system(self, agent):
        colleagues = [self.agents[name] for name in agent.delegates_to if name in self.agents]
        return system_prompt(agent, self.profile, colleagues)

    def _run_agent(self, agent, messages, chain):
        """The loop of one agent: LLM call, tool calls, until it answers or the run stops."""
        toolbox = self._toolbox(agent, depth=len(chain) - 1)
        seen_calls = set()
        agent_steps = 0
        while True:
            self._check_limits(agent, agent_steps, _prompt_chars(messages) + toolbox.chars)
            reply = self._complete(agent, messages, toolbox.schemas)
            agent_steps += 1
            if not reply.tool_calls:
                text = (reply.content or "").strip()
                if not text:
                    raise _Stop(EMPTY_ANSWER, f"{agent.name}: the model answered nothing")
                return text
            # the results of these calls can only be read by another LLM call: none left, stop
            self._check_limits(agent, agent_steps)
            call_ids = [f"call_{agent_steps}_{index}" for index in range(len(reply.tool_calls))]
            messages.append(_assistant_message(reply, call_ids))
            for call, call_id in zip(reply.tool_calls, call_ids, strict=True):
                content = self._tool_call(agent, toolbox, call, chain, seen_calls)
                messages.append({"role": "tool", "tool_call_id": call_id, "content": content})

    def _toolbox(self, agent, depth):
        key = (agent.name, depth)
        if key not in self._toolboxes:
            delegates = [name for name in agent.delegates_to if name in self.agents]
            can_delegate = bool(delegates) and depth < self.limits.max_delegation_depth
            schemas, names = openai_tools(agent.tools, reserved=(DELEGATE_TOOL, HANDOFF_TOOL))
            if can_delegate:
                schemas.append(_delegate_function(delegates))
            schemas.append(_handoff_function())
            chars = len(canonical_json(schemas))
            self._toolboxes[key] = _Toolbox(schemas, names, can_delegate, chars)
        return self._toolboxes[key]

    # -- limits -------------------------------------------------------------------------------

    def remaining_seconds(self):
        return self.limits.max_seconds - (self.clock() - self.started)

    def _check_limits(self, agent, agent_steps, prompt_chars=0):
        limits, result = self.limits, self.result
        if result.llm_calls + result.cache_hits >= limits.max_steps:
            raise _Stop(STEP_LIMIT, f"the run made its {limits.max_steps} LLM calls")
        if agent.max_steps is not None and agent_steps >= agent.max_steps:
            raise _Stop(STEP_LIMIT, f"{agent.name} made its {agent.max_steps} LLM calls")
        if self.remaining_seconds() <= 0:
            raise _Stop(TIME_LIMIT, f"the run took its {limits.max_seconds:g} s")
        if limits.budget is not None and result.cost >= limits.budget:
            raise _Stop(
                BUDGET_SPENT, f"spent {result.cost:.6f} of the remaining budget {limits.budget:g}"
            )
        used = result.tokens_in + result.tokens_out
        # about four characters a token: a huge prompt stops before it is paid for
        upcoming = prompt_chars // 4
        if used + upcoming >= limits.max_tokens:
            raise _Stop(
                TOKEN_LIMIT,
                f"{used} tokens used, about {upcoming} more needed, limit {limits.max_tokens}",
            )

    # -- LLM calls ----------------------------------------------------------------------------

    def _complete(self, agent, messages, schemas):
        limits = self.limits
        key = None
        if self.answer_cache is not None:
            options = {"max_tokens": limits.max_output_tokens}
            key = answer_cache_key(
                agent.model, agent.temperature, messages, schemas, self.data_versions, options
            )
        stored = self._cache_get(key) if key else None
        if stored:
            reply = LLMReply.from_cache(stored)
            self.result.cache_hits += 1
            self._record_llm(agent, reply)
            return reply
        timeout = min(limits.llm_timeout, self.remaining_seconds())
        try:
            reply = self.llm.complete(
                agent.model,
                messages,
                schemas,
                temperature=agent.temperature,
                timeout=timeout,
                max_tokens=limits.max_output_tokens,
            )
        except LLMRetryableError as exc:
            if exc.timed_out and timeout < limits.llm_timeout:
                raise _Stop(TIME_LIMIT, f"the run took its {limits.max_seconds:g} s") from None
            self._record_failure(agent, exc)
            raise
        except LLMPermanentError as exc:
            self._record_failure(agent, exc)
            raise _Stop(LLM_ERROR, str(exc)) from None
        self._account(reply)
        self._record_llm(agent, reply)
        if key:
            self._cache_set(key, reply.cache_value())
        return reply

    def _cache_get(self, key):
        try:
            return self.answer_cache.get(key)
        except Exception as exc:  # noqa: BLE001 - a cache outage costs an LLM call, not the run
            self._note(f"answer cache unavailable: {type(exc).__name__}")
            return None

    def _cache_set(self, key, value):
        try:
            self.answer_cache.set(key, value)
        except Exception as exc:  # noqa: BLE001 - as in _cache_get
            self._note(f"answer cache unavailable: {type(exc).__name__}")

    def _account(self, reply):
        result = self.result
        result.llm_calls += 1
        result.tokens_in += reply.tokens_in
        result.tokens_out += reply.tokens_out
        result.tokens_estimated = result.tokens_estimated or reply.tokens_estimated
        result.cost += reply.cost
        result.llm_duration += reply.duration
        if not reply.cost_known:
            result.cost_known = False
            self._note("cost unknown: a model is in neither litellm's cost map nor the prices")

    def _record_llm(self, agent, reply):
        self.result.steps.append(
            {
                "kind": "llm",
                "agent": agent.name,
                "model": agent.model,
                "cached": reply.cached,
                "finish_reason": reply.finish_reason,
                "tool_calls": [call["name"] for call in reply.tool_calls],
                "tokens_in": reply.tokens_in,
                "tokens_out": reply.tokens_out,
                "tokens_estimated": reply.tokens_estimated,
                "cost": reply.cost,
                "duration": reply.duration,
            }
        )

    def _record_failure(self, agent, exc):
        self.result.steps.append(
            {
                "kind": "llm",
                "agent": agent.name,
                "model": agent.model,
                "error": str(exc),
                "status": exc.status,
            }
        )

    # -- tool calls ---------------------------------------------------------------------------

    def _tool_call(self, agent, toolbox, call, chain, seen_calls):
        """Run one tool call of the model; return the text the model reads back."""
        name, raw = call["name"], call["arguments"]
        is_synthetic = name == HANDOFF_TOOL or (name == DELEGATE_TOOL and toolbox.can_delegate)
        if name not in toolbox.names and not is_synthetic:
            known = ", ".join(schema["function"]["name"] for schema in toolbox.schemas)
            return self._tool_error(agent, name, raw, f"unknown tool {name!r}; tools: {known}")
        arguments = _parsed_arguments(raw)
        if arguments is None:
            return self._tool_error(agent, name, raw, "the arguments are not a JSON object")
        if name == HANDOFF_TOOL:
            reason = str(arguments.get("reason") or "no reason given")
            raise _Stop(AGENT_DECISION, f"{agent.name}: {reason[:300]}")
        signature = (name, canonical_json(arguments))
        if signature in seen_calls:
            raise _Stop(
                REPEATED_TOOL_CALL, f"{agent.name} called {name} again with the same arguments"
            )
        if name == DELEGATE_TOOL:
            answer = self._delegate(agent, arguments, chain)
            if answer is not None:
                seen_calls.add(signature)
                return answer
            return self._tool_error(agent, name, raw, "delegate needs a listed agent and a task")
        text, failure = self._run_tool(agent, toolbox.names[name], arguments)
        if failure:
            # not remembered: the model may try a failed call again, within the error bound
            return self._tool_error(agent, name, raw, text, recorded=True)
        seen_calls.add(signature)
        return text

    def _run_tool(self, agent, tool, arguments):
        """Call the tenant's tool; return ``(text for the model, failed)``, the step recorded."""
        started = self.clock()
        try:
            result = self.call_tool(tool, arguments)
        except Exception as exc:  # noqa: BLE001 - a failed tool is news for the model
            text, failed = f"{type(exc).__name__}: {str(exc)[:300]}", True
        else:
            text, failed = _result_text(result), _is_error_result(result)
        duration = self.clock() - started
        self.result.tool_duration += duration
        record = self.limits.record_chars
        self.result.steps.append(
            {
                "kind": "tool",
                "agent": agent.name,
                "tool": tool,
                "arguments": _truncated(canonical_json(arguments), record),
                "result": _truncated(text, record),
                "error": failed,
                "duration": duration,
            }
        )
        return _truncated(text, self.limits.tool_result_chars), failed

    def _tool_error(self, agent, name, raw, message, recorded=False):
        """Answer a bad or failed tool call back to the model, a bounded number of times."""
        self.tool_errors += 1
        if not recorded:
            self.result.steps.append(
                {
                    "kind": "tool",
                    "agent": agent.name,
                    "tool": name,
                    "arguments": _truncated(str(raw), self.limits.record_chars),
                    "result": message,
                    "error": True,
                    "duration": 0.0,
                }
            )
        if self.tool_errors > self.limits.max_tool_errors:
            raise _Stop(TOOL_ERRORS, f"{self.tool_errors} failed tool calls; last: {message}")
        return f"ERROR: {message}"

    def _delegate(self, agent, arguments, chain):
        """Run a colleague on the task; its answer, or None when the call names no colleague."""
        target, task = arguments.get("agent"), arguments.get("task")
        if target not in agent.delegates_to or target not in self.agents:
            return None
        if not isinstance(task, str) or not task.strip():
            return None
        if target in chain:
            path = " -> ".join((*chain, target))
            raise _Stop(DELEGATION_LOOP, f"delegation back to an agent at work: {path}")
        self.result.steps.append(
            {
                "kind": "delegation",
                "agent": agent.name,
                "to": target,
                "task": _truncated(task, self.limits.record_chars),
            }
        )
        worker = self.agents[target]
        messages = [
            {"role": "system", "content": self._system(worker)},
            {"role": "user", "content": task},
        ]
        return self._run_agent(worker, messages, (*chain, target))


def _assistant_message(reply, call_ids):
    # Ids are ours (per step and position), so an identical exchange gives identical messages
    # and the next request's cache key does not depend on the provider's random ids.
    return {
        "role": "assistant",
        "content": reply.content,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for call, call_id in zip(reply.tool_calls, call_ids, strict=True)
        ],
    }


def _prompt_chars(messages):
    chars = 0
    for message in messages:
        chars += len(message.get("content") or "")
        for call in message.get("tool_calls") or ():
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"] or "")
    return chars


def _parsed_arguments(raw):
    """The tool call's arguments as a dict, or None when they are not a JSON object."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}  # some providers send "" for a tool without parameters
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    return arguments if isinstance(arguments, dict) else None


def _is_error_result(result):
    return isinstance(result, dict) and result.get("isError") is True


def _result_text(result):
    """What the model reads of a tool result: an MCP result's text parts, else its JSON."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict) and isinstance(result.get("content"), list):
        texts = [
            item["text"]
            for item in result["content"]
            if isinstance(item, dict) and item.get("type") == "text" and "text" in item
        ]
        if texts:
            return "\n".join(texts)
        if result.get("structuredContent") is not None:
            return canonical_json(result["structuredContent"])
    return json.dumps(result, sort_keys=True, ensure_ascii=False, default=str)


def _truncated(text, limit):
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"
