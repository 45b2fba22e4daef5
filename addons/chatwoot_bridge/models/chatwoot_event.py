# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from datetime import timedelta
from functools import partial
from typing import NamedTuple

from odoo import api, fields, models
from odoo.tools import SQL

from odoo.addons.mcp_crew_engine.models.mcp_crew_run import LLM_ATTEMPTS, TENANT_CONTEXT

from ..services import webhook
from .mcp_crew_run import CONVERSATION_CONTEXT

#: Days the received deliveries are kept (their dedupe keys with them).
RETENTION_DAYS = 30


class Answer(NamedTuple):
    """How the crews are asked: the channel they see, and the inbox's crew (0: routing)."""

    channel: str
    crew_id: int


class Decision(NamedTuple):
    """What a delivery does: recorded as ``outcome`` and ``detail``, then ``actions`` run
    (after the record, so a duplicate does none of them) and ``answer`` is queued."""

    outcome: str
    detail: str
    conversation: models.BaseModel = None
    actions: tuple = ()
    answer: Answer | None = None


class ChatwootEvent(models.Model):
    """One webhook delivery received from Chatwoot and what the bridge did with it.

    Recorded before anything is enqueued, unique per delivery id and per message event, so
    that Chatwoot's redeliveries and duplicate ``message_created`` events do nothing twice.
    """

    _name = "chatwoot.event"
    _description = "Chatwoot Webhook Delivery"
    _order = "id desc"
    _log_access = False

    account_id = fields.Many2one(
        "chatwoot.account", required=True, index=True, ondelete="cascade", readonly=True
    )
    company_id = fields.Many2one(related="account_id.company_id", store=True, index=True)
    received_at = fields.Datetime(readonly=True, default=fields.Datetime.now, index=True)
    delivery_uuid = fields.Char(string="Delivery", readonly=True)
    event = fields.Char(readonly=True)
    message_key = fields.Char(
        readonly=True, help="The Chatwoot message id for message events (the dedupe key)."
    )
    conversation_id = fields.Many2one(
        "chatwoot.conversation", readonly=True, index=True, ondelete="cascade"
    )
    outcome = fields.Selection(
        [
            ("answer", "AI asked to answer"),
            ("forward", "Sent back to the channel"),
            ("state", "Conversation state updated"),
            ("ignored", "Ignored"),
        ],
        readonly=True,
    )
    detail = fields.Char(readonly=True)
    text = fields.Text(readonly=True, help="The customer's message, as the crews read it.")
    channel = fields.Char(readonly=True, help="The channel the crews see.")
    crew_id = fields.Many2one("mcp.crew", readonly=True, ondelete="set null")
    run_id = fields.Many2one("mcp.crew.run", readonly=True, ondelete="set null")

    _delivery_uniq = models.Constraint(
        "UNIQUE(account_id, delivery_uuid)", "This delivery was already received."
    )
    _message_event_uniq = models.Constraint(
        "UNIQUE(account_id, event, message_key)", "This message event was already received."
    )

    @api.model
    def _receive(self, config, event, delivery_uuid):
        """Record a verified delivery of ``config``'s account, then do what it asks; the
        outcome's code for the response. Redeliveries and duplicates do nothing and say so.

        Only reads happen before the record (the conversation's row aside, created once
        whoever comes first): a duplicate changes nothing.
        """
        message_key = (
            str(event.message_id)
            if event.event == "message_created" and event.message_id is not None
            else None
        )
        if not self._first_copy(config.id, message_key or delivery_uuid):
            return "duplicate"
        decision = self._decide(config, event)
        record = self._record(
            {
                "account_id": config.id,
                "company_id": config.company_id,
                "delivery_uuid": delivery_uuid,
                "event": event.event,
                "message_key": message_key,
                "conversation_id": decision.conversation.id if decision.conversation else None,
                "outcome": decision.outcome,
                "detail": decision.detail[:250],
                "text": webhook.request_text(event) if decision.answer else None,
                "channel": decision.answer.channel if decision.answer else None,
                "crew_id": (decision.answer.crew_id or None) if decision.answer else None,
            }
        )
        if record is None:
            return "duplicate"
        for action in decision.actions:
            action()
        if decision.answer:
            record._enqueue_answer(config.tenant_id, message_key)
        return decision.outcome

    def _first_copy(self, account_id, dedupe):
        """False when another transaction is recording the same message right now: the copy
        is a duplicate at once, instead of waiting for it and then, in Odoo's repeatable-read
        transactions, failing to serialise and being replayed seconds later."""
        if not dedupe:
            return True
        self.env.cr.execute(
            SQL(
                "SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                f"chatwoot-event:{account_id}:{dedupe}",
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _decide(self, config, event):
        """The :class:`Decision` for a delivery: what to record, then what to do."""
        inbox = config.inboxes.get(event.inbox_id)
        conversations = self.env["chatwoot.conversation"]
        if event.ignored_reason:
            return Decision("ignored", event.ignored_reason)
        # a customer's message is never the bridge's own (the hub's are answered on purpose)
        if (
            not event.customer_message
            and event.message_id is not None
            and self.env["chatwoot.sent.message"]._is_echo(config.id, event.message_id)
        ):
            return Decision("ignored", "echo of the bridge's own message")
        if event.conversation_id is None:
            return Decision("ignored", "no conversation")
        state = conversations._state(config, event.conversation_id, inbox)
        conversation = conversations.sudo().browse(state.id)
        if event.new_status:
            return Decision(
                "state",
                f"status {event.new_status}",
                conversation,
                (partial(conversation._see_status, event.new_status, config.mode),),
            )
        if event.customer_message:
            return self._decide_answer(config, event, inbox, conversation, state)
        outcome, details, actions = "ignored", [], []
        if event.human_reply:
            actions.append(partial(conversation._see_human_reply, event.sender_name, config.mode))
            outcome = "state"
            details.append("a person replied: AI silenced")
        if event.outbound and inbox and inbox.hub and state.hub:
            forward = self.env["chatwoot.hub.message"]._forward
            attachments = event.attachments
            actions.append(
                partial(
                    forward,
                    conversation,
                    event.message_id,
                    event.text,
                    attachments,
                    by_human=event.human_reply,
                )
            )
            outcome = "forward"
            details.append("sent back to the channel")
        return Decision(outcome, "; ".join(details) or "nothing to do", conversation, actions)

    def _decide_answer(self, config, event, inbox, conversation, state):
        if inbox and not inbox.ai_enabled:
            return Decision("ignored", "AI answers are off in this inbox", conversation)
        answerable, why = webhook.answerable(event, config.mode)
        if not answerable:
            return Decision("ignored", why, conversation)
        actions = ()
        if state.ai_silenced:
            if state.status != "open" or event.conversation_status != "pending":
                reason = state.silenced_reason or "a person took over"
                return Decision("ignored", f"AI silenced: {reason}", conversation)
            # an agent gave it back (an Agent Bot hears of no status change but this)
            actions = (partial(conversation._see_status, "pending", config.mode),)
        answer = Answer(
            channel=inbox.channel if inbox else "chatwoot", crew_id=inbox.crew_id if inbox else 0
        )
        return Decision("answer", "the crews answer", conversation, actions, answer)

    def _enqueue_answer(self, tenant_id, message_key):
        # what the job needs is passed in: the new row is not read back
        self.with_context(**{TENANT_CONTEXT: tenant_id}).with_delay(
            max_retries=LLM_ATTEMPTS,
            description=self.env._("Answer Chatwoot message %(message)s", message=message_key),
        )._answer()

    def _job_prepare_context_before_enqueue_keys(self):
        return (*super()._job_prepare_context_before_enqueue_keys(), TENANT_CONTEXT)

    def _answer(self):
        """Job: the crews answer the customer's message, in this job (its tries are the
        run's tries at the LLM); the run records how, and queues its delivery."""
        self.ensure_one()
        if self.run_id:
            return self.env._("Already answered by run %(run)s.", run=self.run_id.id)
        tenant = self.account_id.tenant_id.sudo()
        handoff = None
        # without opening hours the tenant is never "closed" (None)
        if (
            self.account_id.out_of_hours == "handoff"
            and tenant._open_now(tenant._crew_config()) is False
        ):
            handoff = ("out_of_hours", "the account hands off outside opening hours")
        integrator = self.env["mcp.integrator"].with_company(tenant.company_id)
        run = integrator.with_context(**{CONVERSATION_CONTEXT: self.conversation_id.id}).ask(
            tenant,
            self.text,
            channel=self.channel,
            conversation=f"chatwoot:{self.conversation_id.conversation_id}",
            message_id=self.message_key,
            reply_to="chatwoot",
            crew=self.crew_id or None,
            handoff=handoff,
            run_now=True,
        )
        self.run_id = run
        return run.state

    @api.model
    def _record(self, values):
        """The new delivery's record, or None when one of its copies was recorded before (it
        conflicts on the unique indexes and inserts nothing)."""
        columns = list(values)
        self.env.cr.execute(
            SQL(
                "INSERT INTO chatwoot_event (%s, received_at) VALUES (%s, now() at time zone 'UTC')"
                " ON CONFLICT DO NOTHING RETURNING id",
                SQL(", ").join(SQL.identifier(column) for column in columns),
                SQL(", ").join(values[column] for column in columns),
            )
        )
        row = self.env.cr.fetchone()
        return self.sudo().browse(row[0]) if row else None

    @api.model
    def _gc_old_events(self):
        """Cron: forget deliveries older than the retention (their dedupe window)."""
        limit = fields.Datetime.now() - timedelta(days=RETENTION_DAYS)
        self.sudo().search([("received_at", "<", limit)]).unlink()
