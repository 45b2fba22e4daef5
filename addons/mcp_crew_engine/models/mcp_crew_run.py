# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import hashlib
import logging
import time

import psycopg2

from odoo import api, fields, models
from odoo.exceptions import UserError

from odoo.addons.mcp_integrator.models.mcp_integrator import job_attempt
from odoo.addons.mcp_integrator.services import cache as cache_service
from odoo.addons.mcp_integrator.services import tool_calls
from odoo.addons.queue_job.exception import RetryableJobError

from ..services import agent_loop, crew_requests
from ..services.conversation_context import ConversationStore

_logger = logging.getLogger(__name__)

#: Tries of a run's job when the LLM provider fails (429, 5xx, timeouts); the last hands off.
LLM_ATTEMPTS = 4
#: Tries of a delivery job (the receiving side, e.g. Chatwoot, being down).
DELIVERY_ATTEMPTS = 10
#: The context key the tenant travels in, from the enqueuing call to the job.
TENANT_CONTEXT = "mcp_tenant_id"
FINAL_STATES = ("answered", "handoff")
#: The code of a tenant's crew for messages people answer: routing there hands off.
HANDOFF_CREW = "handoff"
#: Ends of a crew run where the answers without an LLM (hours, FAQ, rules, products) are tried
#: before a person takes over.
LLM_FAILURES = (agent_loop.LLM_UNAVAILABLE, agent_loop.LLM_ERROR, agent_loop.BUDGET_SPENT)

HANDOFF_REASONS = [
    ("bad_request", "Message cannot be answered"),
    ("tenant_inactive", "Tenant inactive"),
    ("routing", "No crew for it"),
    ("handoff_crew", "Taken by the handoff crew"),
    ("out_of_hours", "Outside opening hours"),
    ("no_agent", "Crew without agents"),
    ("no_llm", "No LLM: answered what it could"),
    ("engine_error", "Engine error"),
    (agent_loop.STEP_LIMIT, "Step limit"),
    (agent_loop.TOKEN_LIMIT, "Token limit"),
    (agent_loop.TIME_LIMIT, "Time limit"),
    (agent_loop.BUDGET_SPENT, "Daily budget spent"),
    (agent_loop.REPEATED_TOOL_CALL, "Repeated tool call"),
    (agent_loop.DELEGATION_LOOP, "Delegation loop"),
    (agent_loop.TOOL_ERRORS, "Too many tool errors"),
    (agent_loop.LLM_ERROR, "LLM error"),
    (agent_loop.LLM_UNAVAILABLE, "LLM unavailable"),
    (agent_loop.EMPTY_ANSWER, "Empty answer"),
    (agent_loop.AGENT_DECISION, "Agent's decision"),
]


class McpCrewRun(models.Model):
    """One request answered (or handed off) by a crew: what was asked, where it was routed,
    every step, the outcome and what it cost. Recorded before its job runs, so a request is
    never lost, and unique per (tenant, conversation, message) so it is never answered twice."""

    _name = "mcp.crew.run"
    _description = "AI Crew Run"
    _order = "id desc"
    _check_company_auto = True
    _rec_name = "display_name"

    tenant_id = fields.Many2one(
        "mcp.tenant", required=True, index=True, ondelete="cascade", readonly=True
    )
    # the tenant's at the time of the request, computed before the insert (no second query)
    company_id = fields.Many2one(
        "res.company",
        compute="_compute_company_id",
        store=True,
        precompute=True,
        index=True,
        readonly=True,
    )
    request = fields.Text(readonly=True, help="The customer's message (huge ones are cut).")
    request_problem = fields.Char(readonly=True, help="Why the message cannot be answered.")
    channel = fields.Char(readonly=True, index=True)
    conversation_ref = fields.Char(string="Conversation", readonly=True, index=True)
    message_ref = fields.Char(string="Message", readonly=True)
    dedupe_key = fields.Char(readonly=True, copy=False)
    reply_to = fields.Selection(
        [("record", "Chatter of the requesting record")],
        string="Deliver To",
        readonly=True,
        help="Where the answer goes once the run ends; empty: the caller reads the run.",
    )
    origin_model = fields.Char(readonly=True)
    origin_id = fields.Integer(readonly=True)
    crew_id = fields.Many2one("mcp.crew", readonly=True, index=True, ondelete="set null")
    routing_stage = fields.Selection(
        [("rules", "Rules"), ("similarity", "Similarity"), ("llm", "LLM classifier")],
        readonly=True,
    )
    routing_reason = fields.Char(readonly=True)
    routing_score = fields.Float(readonly=True, digits=(6, 3))
    routing_unsure = fields.Boolean(readonly=True)
    routing_cached = fields.Boolean(readonly=True)
    state = fields.Selection(
        [
            ("queued", "Queued"),
            ("answered", "Answered"),
            ("handoff", "Handed off"),
        ],
        default="queued",
        required=True,
        readonly=True,
        index=True,
    )
    answer = fields.Text(readonly=True)
    answer_source = fields.Selection(
        [
            ("llm", "Agents (LLM)"),
            ("hours", "Opening hours"),
            ("faq", "FAQ"),
            ("rules", "Business rules"),
            ("products", "Product search"),
            ("handoff", "Handoff message"),
        ],
        readonly=True,
    )
    handoff_reason = fields.Selection(HANDOFF_REASONS, readonly=True, index=True)
    handoff_detail = fields.Char(readonly=True)
    steps = fields.Json(readonly=True, help="Every LLM call, tool call and delegation, in order.")
    transcript = fields.Html(compute="_compute_transcript", sanitize=False)
    notes = fields.Text(readonly=True)
    llm_calls = fields.Integer(string="LLM Calls", readonly=True)
    cache_hits = fields.Integer(readonly=True, help="LLM calls answered by the answer cache.")
    tokens_in = fields.Integer(readonly=True)
    tokens_out = fields.Integer(readonly=True)
    tokens_estimated = fields.Boolean(
        readonly=True, help="The provider reported no usage for some calls: tokens estimated."
    )
    cost = fields.Float(readonly=True, digits=(16, 6), help="In litellm's cost map currency (USD).")
    cost_known = fields.Boolean(default=True, readonly=True)
    duration = fields.Float(readonly=True, digits=(12, 3), help="Seconds the run took.")
    llm_duration = fields.Float(
        string="LLM Duration", readonly=True, digits=(12, 3), help="Seconds waiting for the LLM."
    )
    tool_duration = fields.Float(readonly=True, digits=(12, 3), help="Seconds in tool calls.")
    started_at = fields.Datetime(readonly=True)
    ended_at = fields.Datetime(readonly=True)
    attempts = fields.Integer(readonly=True, help="Tries of the job (LLM provider failures).")
    job_uuid = fields.Char(string="Job UUID", readonly=True, copy=False, index=True)
    job_id = fields.Many2one("queue.job", compute="_compute_job_id")
    delivery_state = fields.Selection(
        [("pending", "Pending"), ("done", "Delivered"), ("failed", "Failed")],
        readonly=True,
    )
    delivery_error = fields.Char(readonly=True)

    _dedupe_key_per_tenant_uniq = models.Constraint(
        "UNIQUE(tenant_id, dedupe_key)", "This message was already received."
    )

    @api.depends("tenant_id")
    def _compute_company_id(self):
        for run in self:
            run.company_id = run.tenant_id.company_id

    @api.depends("tenant_id", "crew_id", "create_date")
    def _compute_display_name(self):
        for run in self:
            what = run.crew_id.name or run.env._("Unrouted")
            run.display_name = f"#{run.id or '?'} {run.tenant_id.name or ''} · {what}"

    @api.depends("steps", "state", "request")
    def _compute_transcript(self):
        qweb = self.env["ir.qweb"]
        for run in self:
            run.transcript = qweb._render(
                "mcp_crew_engine.run_transcript", {"run": run, "steps": run.steps or []}
            )

    def _compute_job_id(self):
        jobs = self.env["queue.job"].sudo().search([("uuid", "in", self.mapped("job_uuid"))])
        by_uuid = {job.uuid: job for job in jobs}
        for run in self:
            run.job_id = by_uuid.get(run.job_uuid, False)

    def _job_prepare_context_before_enqueue_keys(self):
        return (*super()._job_prepare_context_before_enqueue_keys(), TENANT_CONTEXT)

    # recording and enqueueing -----------------------------------------------------------------
    @api.model
    def _record_request(self, tenant, text, channel, conversation, message_id, **extra):
        """``(run, created)``: a new run for the request, or the one already recorded for the
        same message of the same conversation (``created`` False)."""
        stored, problem = crew_requests.checked_request(text)
        key = crew_requests.dedupe_key(tenant.account_id, channel, conversation, message_id)
        if key:
            existing = self.search([("tenant_id", "=", tenant.id), ("dedupe_key", "=", key)])
            if existing:
                return existing, False
        values = {
            "tenant_id": tenant.id,
            "request": stored,
            "request_problem": problem or False,
            "channel": channel or False,
            "conversation_ref": str(conversation) if conversation not in (None, "") else False,
            "message_ref": str(message_id) if message_id not in (None, "") else False,
            "dedupe_key": key,
            **extra,
        }
        if not key:
            return self.create(values), True
        try:
            with self.env.cr.savepoint():
                return self.create(values), True
        except psycopg2.IntegrityError:
            # a concurrent transaction is recording the same message: it runs it
            _logger.info("Request already being recorded for tenant %s", tenant.id)
            return self.browse(), False

    def _enqueue(self):
        self.ensure_one()
        job = (
            # a job's creation tracks no field: nothing to compute for its chatter
            self.with_context(**{TENANT_CONTEXT: self.tenant_id.id}, tracking_disable=True)
            .with_delay(
                max_retries=LLM_ATTEMPTS,
                identity_key=f"mcp.crew.run:{self.id}",
                description=self.env._("Answer request #%(run)s", run=self.id),
            )
            ._perform()
        )
        self.job_uuid = job.uuid

    # the job -----------------------------------------------------------------------------------
    def _perform(self):
        """Job: answer the request, or decide a handoff; then queue the delivery."""
        self.ensure_one()
        if self.state in FINAL_STATES:
            return self.env._("Run %(run)s had already ended.", run=self.id)
        expected = self.env.context.get(TENANT_CONTEXT)
        if expected and expected != self.tenant_id.id:
            raise UserError(self.env._("This job was queued for another tenant."))
        run = self.sudo().with_company(self.tenant_id.company_id)
        # written with the outcome: the job's transaction shows nothing to others before its end
        attempt = run._job_attempt()
        started_at, started = fields.Datetime.now(), time.monotonic()
        conversation = run._conversation()
        try:
            with self.env.cr.savepoint():
                values = run._answer(attempt, conversation)
        except (RetryableJobError, psycopg2.Error):
            raise
        except Exception as exc:
            # a bug or a broken configuration: a person answers, and the run says why
            _logger.exception("Crew run %s failed", run.id)
            values = run._handoff_values("engine_error", f"{type(exc).__name__}: {exc}"[:500])
        values.setdefault("duration", time.monotonic() - started)
        values.update(started_at=started_at, ended_at=fields.Datetime.now(), attempts=attempt)
        run.write(values)
        if conversation and run.answer:  # kept for the next message of the conversation
            conversation.append("assistant", run.answer, message_id=f"answer-{run.id}")
        run._enqueue_delivery()
        return run.state

    def _job_attempt(self):
        """This try of the run's job (1 for the first), or the last one outside a job."""
        return job_attempt(self.env, LLM_ATTEMPTS)

    @staticmethod
    def _handoff_values(reason, detail, **extra):
        return {"state": "handoff", "handoff_reason": reason, "handoff_detail": detail, **extra}

    def _answer(self, attempt, conversation):
        """The values that end the run: routing, then the crew, or an answer without an LLM."""
        tenant = self.tenant_id
        config = tenant._crew_config()
        if not config.active:
            return self._handoff_values("tenant_inactive", "the tenant is archived")
        if self.request_problem:
            return self._handoff_values("bad_request", self.request_problem)
        if self.handoff_reason:  # decided by the caller (e.g. out of hours)
            return self._handoff_values(self.handoff_reason, self.handoff_detail or "")
        budget = tenant._llm_remaining_budget(config)
        chat = classifier = None
        if config.llm_model and budget != 0:
            chat = config.llm_chat()
            classifier = crew_requests.LlmCrewClassifier(chat, config.llm_model)
        if self.crew_id:
            values, plan = self._pinned_crew(config)
        else:
            decision, cached = tenant._routing_cache().route(
                tenant._crew_router(config, classifier),
                tenant._routing_request(config, self.request, self.channel),
            )
            plan = config.crews.get(decision.crew)
            values = {
                "crew_id": plan.crew_id if plan else False,
                "routing_stage": decision.stage,
                "routing_reason": decision.reason[:500],
                "routing_score": decision.score,
                "routing_unsure": decision.unsure,
                "routing_cached": cached,
                **(classifier.spent() if classifier else {}),
            }
        context = conversation.context() if conversation else None
        if conversation:
            conversation.append("user", self.request, message_id=self._turn_id())
        if not plan:
            why = ("routing", values["routing_reason"])
        elif plan.code == HANDOFF_CREW:
            return {**values, **self._handoff_values("handoff_crew", values["routing_reason"])}
        elif budget == 0:
            why = (agent_loop.BUDGET_SPENT, "the tenant's daily LLM budget is spent")
        elif not config.llm_model and not plan.agents_have_models:
            why = ("no_llm", "no LLM model is configured")
        elif not plan.agents:
            why = ("no_agent", f"crew {plan.code} has no active agent")
        else:
            run = (config, plan, budget, conversation, context, attempt)
            values.update(self._run_crew(*run, chat or config.llm_chat(), values))
            return values
        values.update(self._answer_without_llm(config, *why))
        return values

    def _pinned_crew(self, config):
        """The crew the caller chose (a Chatwoot inbox served by one crew), without routing;
        no plan when it is archived or not the tenant's."""
        plan = next((p for p in config.crews.values() if p.crew_id == self.crew_id.id), None)
        reason = f"the caller chose crew {self.crew_id.code}"
        values = {
            "crew_id": plan.crew_id if plan else False,
            "routing_stage": "rules",
            "routing_reason": reason if plan else f"{reason}, which is not active",
            "routing_score": 1.0 if plan else 0.0,
        }
        return values, plan

    def _turn_id(self):
        return self.message_ref or f"run-{self.id}"

    def _conversation(self):
        """The conversation's context in Redis, or None (no reference, or no cache set up)."""
        cache = self.tenant_id._crew_cache()
        if cache is None or not self.conversation_ref:
            return None
        store = ConversationStore(cache)
        return store.conversation(self.tenant_id.account_id, self.conversation_ref)

    def _answer_without_llm(self, config, reason, detail):
        """Hours, FAQ, rules or products when they answer the message; else a handoff."""
        tenant = self.tenant_id
        answer = tenant._fallback_answerer(config).answer(
            self.request, product_search=tenant._fallback_product_search()
        )
        values = {"answer": answer.text, "answer_source": answer.source.value}
        if answer.handoff:
            return {**values, **self._handoff_values(reason, f"{detail}; {answer.reason}"[:500])}
        return {**values, "state": "answered", "notes": f"{detail}; {answer.reason}"}

    def _run_crew(self, config, plan, budget, conversation, context, attempt, chat, routing_values):
        history = []
        profile = config.run_profile(self.tenant_id._open_now(config))
        if context is not None:
            turn_id = self._turn_id()
            history = [
                turn.as_message()
                for turn in context.turns
                if turn.message_id != turn_id and turn.role != "system"
            ]
            if context.summary:
                profile["conversation_summary"] = context.summary
        cache = self.tenant_id._crew_cache()
        if budget is not None:
            budget = max(0.0, budget - self._spent(routing_values))
        try:
            result = agent_loop.run_crew(
                plan.agents,
                self.request,
                call_tool=self._tool_caller(plan, conversation),
                llm=chat,
                process=plan.process,
                history=history,
                profile=profile,
                limits=plan.run_limits(budget),
                answer_cache=crew_requests.AnswerCache(cache, config.account_id) if cache else None,
                data_versions=_data_versions(profile, plan),
            )
        except agent_loop.LLMRetryableError as exc:
            if attempt < LLM_ATTEMPTS:
                seconds = int(exc.retry_after) + 1 if exc.retry_after else None
                raise RetryableJobError(str(exc), seconds=seconds) from None
            result = exc.partial
        notes = list(result.notes)
        if context is not None and context.degraded:
            notes.insert(0, "conversation context unavailable (cache down): earlier turns unread")
        values = {
            "steps": result.steps,
            "notes": "\n".join(notes) or False,
            "llm_calls": routing_values.get("llm_calls", 0) + result.llm_calls,
            "cache_hits": result.cache_hits,
            "tokens_in": routing_values.get("tokens_in", 0) + result.tokens_in,
            "tokens_out": routing_values.get("tokens_out", 0) + result.tokens_out,
            "tokens_estimated": result.tokens_estimated,
            "cost": self._spent(routing_values) + result.cost,
            "cost_known": result.cost_known,
            "llm_duration": result.llm_duration,
            "tool_duration": result.tool_duration,
        }
        if result.outcome == agent_loop.ANSWER:
            return {**values, "state": "answered", "answer": result.answer, "answer_source": "llm"}
        if result.handoff_reason in LLM_FAILURES:
            # the model is out of reach or out of budget, not the question beyond the crew
            fallback = self._answer_without_llm(config, result.handoff_reason, result.detail)
            notes = "\n".join(filter(None, (fallback.pop("notes", None), values["notes"])))
            return {**values, **fallback, "notes": notes or False}
        return {**values, **self._handoff_values(result.handoff_reason, result.detail[:500])}

    @staticmethod
    def _spent(routing_values):
        return routing_values.get("cost", 0.0)

    def _tool_caller(self, plan, conversation):
        """``call_tool(name, arguments)`` for the agent loop: through the integrator (its
        access checks, cache and audit); results of cacheable tools also kept for the
        conversation, so a follow-up question reads the same figures."""
        tenant = self.tenant_id
        integrator = self.env["mcp.integrator"]

        def call(name, arguments):
            if conversation is None or name not in plan.reusable_tools:
                return integrator.call_tool(tenant, name, arguments)

            def compute():
                result = integrator.call_tool(tenant, name, arguments)
                if tool_calls.is_error_result(result):
                    return cache_service.Uncached(result)
                return result

            result, _cached = conversation.tool_result(
                name, tool_calls.arguments_json(arguments), compute
            )
            return result

        return call

    # delivery -----------------------------------------------------------------------------------
    def _enqueue_delivery(self):
        self.ensure_one()
        if not self.reply_to:
            return
        self.delivery_state = "pending"
        self.with_context(**{TENANT_CONTEXT: self.tenant_id.id}).with_delay(
            max_retries=DELIVERY_ATTEMPTS,
            identity_key=f"mcp.crew.run.deliver:{self.id}",
            description=self.env._("Deliver the answer of request #%(run)s", run=self.id),
        )._deliver()

    def _deliver(self):
        """Job: hand the answer (or the handoff) to ``_mcp_deliver_<reply_to>``.

        The hook of the addon that owns the channel (the Chatwoot bridge: ``chatwoot``) posts
        it; it raises ``RetryableJobError`` while the other side is down.
        """
        self.ensure_one()
        if self.delivery_state == "done":
            return self.env._("Already delivered.")
        deliver = getattr(self, f"_mcp_deliver_{self.reply_to}", None)
        if deliver is None:
            _logger.warning("Run %s: no delivery for %r", self.id, self.reply_to)
            self.write({"delivery_state": "failed", "delivery_error": f"no {self.reply_to}"})
            return self.delivery_error
        deliver()
        self.write({"delivery_state": "done", "delivery_error": False})
        return self.env._("Delivered.")

    def _mcp_deliver_record(self):
        """An internal request's answer, as a note in the chatter of the record that asked."""
        record = self.env[self.origin_model].browse(self.origin_id).exists()
        if not record or not hasattr(record, "message_post"):
            raise UserError(
                self.env._(
                    "The record %(model)s,%(id)s that asked has no chatter (or is gone).",
                    model=self.origin_model,
                    id=self.origin_id,
                )
            )
        body = self.answer or self.env._(
            "A person will take over: %(reason)s", reason=self.handoff_detail or ""
        )
        record.sudo().message_post(body=body, subtype_xmlid="mail.mt_note")

    # caches -------------------------------------------------------------------------------------
    @api.model
    def _forget_decisions(self, tenants):
        """After a crew or agent change: routing decisions and stored answers may be wrong
        (the routing fingerprint and the data versions change too; this frees them)."""
        integrator = self.env["mcp.integrator"]
        for resource_type in (crew_requests.ROUTING_RESOURCE, crew_requests.ANSWER_RESOURCE):
            integrator.invalidate(tenants, module=crew_requests.MODULE, resource_type=resource_type)
        self.env.registry.clear_cache()  # the tenants' kept crew configuration

    # actions ------------------------------------------------------------------------------------
    def action_open_job(self):
        self.ensure_one()
        if not self.job_id:
            raise UserError(self.env._("This run has no job (it ran at once)."))
        return {
            "type": "ir.actions.act_window",
            "res_model": "queue.job",
            "res_id": self.job_id.id,
            "view_mode": "form",
        }


def _data_versions(profile, plan):
    """Changes with anything an answer may depend on besides the messages and the tools
    (the tenant's behaviour, the crew's process, the agents): part of the answer cache key."""
    state = {
        "profile": profile,
        "crew": [plan.code, plan.process],
        "agents": [
            [agent.name, agent.role, agent.model, agent.goal, agent.instructions, agent.temperature]
            for agent in plan.agents
        ],
    }
    return hashlib.sha256(agent_loop.canonical_json(state).encode()).hexdigest()
