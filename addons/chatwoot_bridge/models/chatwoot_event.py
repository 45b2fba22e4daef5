# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL

from ..services import webhook

#: Days the received deliveries are kept (their dedupe keys with them).
RETENTION_DAYS = 30


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
    run_id = fields.Many2one("mcp.crew.run", readonly=True, ondelete="set null")

    _delivery_uniq = models.Constraint(
        "UNIQUE(account_id, delivery_uuid)", "This delivery was already received."
    )
    _message_event_uniq = models.Constraint(
        "UNIQUE(account_id, event, message_key)", "This message event was already received."
    )

    @api.model
    def _receive(self, config, event, delivery_uuid):
        """Record a verified delivery of ``config``'s account and act on it; the outcome's
        code for the response. Redeliveries and duplicates do nothing and say so."""
        record = self._record(
            {
                "account_id": config.id,
                "company_id": config.company_id,
                "delivery_uuid": delivery_uuid,
                "event": event.event,
                "message_key": (
                    str(event.message_id)
                    if event.event == "message_created" and event.message_id is not None
                    else None
                ),
            }
        )
        if record is None:
            return "duplicate"
        outcome, detail, values = record._act(config, event)
        # one UPDATE, not the ORM's write and flush: this is every delivery's path
        self.env.cr.execute(
            SQL(
                "UPDATE chatwoot_event SET outcome = %s, detail = %s, conversation_id = %s,"
                " run_id = %s WHERE id = %s",
                outcome,
                (detail or "")[:250],
                values.get("conversation_id"),
                values.get("run_id"),
                record.id,
            )
        )
        return outcome

    def _act(self, config, event):
        """``(outcome, detail, values)``: what the delivery changes, as the bridge decides."""
        inbox = config.inboxes.get(event.inbox_id)
        conversations = self.env["chatwoot.conversation"]
        if event.ignored_reason:
            return "ignored", event.ignored_reason, {}
        # a customer's message is never the bridge's own (the hub's are answered on purpose)
        if (
            not event.customer_message
            and event.message_id is not None
            and self.env["chatwoot.sent.message"]._is_echo(config.id, event.message_id)
        ):
            return "ignored", "echo of the bridge's own message", {}
        if event.conversation_id is None:
            return "ignored", "no conversation", {}
        conversation = conversations._get_or_create(config, event.conversation_id, inbox)
        values = {"conversation_id": conversation.id}
        if event.new_status:
            conversation._see_status(event.new_status, config.mode)
            return "state", f"status {event.new_status}", values
        if event.customer_message:
            outcome, detail, *run_id = self._ask_crew(config, event, inbox, conversation)
            return outcome, detail, {**values, "run_id": run_id[0] if run_id else None}
        outcome, details = "ignored", []
        if event.human_reply:
            conversation._see_human_reply(event.sender_name, config.mode)
            outcome = "state"
            details.append("a person replied: AI silenced")
        if event.outbound and inbox and inbox.hub and conversation.channel_connector_id:
            self.env["chatwoot.hub.message"]._forward(
                conversation, event.message_id, event.text, event.attachments
            )
            outcome = "forward"
            details.append("sent back to the channel")
        return outcome, "; ".join(details) or "nothing to do", values

    def _ask_crew(self, config, event, inbox, conversation):
        if inbox and not inbox.ai_enabled:
            return "ignored", "AI answers are off in this inbox"
        answerable, why = webhook.answerable(event, config.mode)
        if not answerable:
            return "ignored", why
        if conversation.ai_silenced:
            if conversation.status == "open" and event.conversation_status == "pending":
                # an agent gave it back (an Agent Bot hears of no status change but this)
                conversation._see_status("pending", config.mode)
            else:
                reason = conversation.silenced_reason or "a person took over"
                return "ignored", f"AI silenced: {reason}"
        tenant = self.env["mcp.tenant"].sudo().browse(config.tenant_id)
        handoff = None
        # without opening hours the tenant is never "closed" (None)
        if config.out_of_hours == "handoff" and tenant._open_now(tenant._crew_config()) is False:
            handoff = ("out_of_hours", "the account hands off outside opening hours")
        run = (
            self.env["mcp.integrator"]
            .with_company(tenant.company_id)
            .ask(
                tenant,
                webhook.request_text(event),
                channel=inbox.channel if inbox else "chatwoot",
                conversation=f"chatwoot:{event.conversation_id}",
                message_id=str(event.message_id),
                reply_to="chatwoot",
                crew=self.env["mcp.crew"].browse(inbox.crew_id)
                if inbox and inbox.crew_id
                else None,
                handoff=handoff,
            )
        )
        if not run.chatwoot_conversation_id:
            run.chatwoot_conversation_id = conversation
        return "answer", f"run {run.id}", run.id

    @api.model
    def _record(self, values):
        """The new delivery's record, or None when it was already received.

        A copy arriving while another transaction records the same message does not wait
        for it (and, in Odoo's repeatable-read transactions, fail to serialise and be replayed
        seconds later): the first holds a transaction lock on the message, and the copy, not
        getting it, is a duplicate at once. A copy of one already committed conflicts on the
        unique indexes and inserts nothing.
        """
        dedupe = values["message_key"] or values["delivery_uuid"]
        lock = f"chatwoot-event:{values['account_id']}:{dedupe}" if dedupe else None
        self.env.cr.execute(
            SQL(
                """WITH first AS (
                    SELECT %s::text IS NULL OR pg_try_advisory_xact_lock(hashtext(%s)) AS got
                )
                INSERT INTO chatwoot_event
                    (account_id, company_id, delivery_uuid, event, message_key, received_at)
                SELECT %s, %s, %s, %s, %s, now() at time zone 'UTC' FROM first WHERE got
                ON CONFLICT DO NOTHING
                RETURNING id""",
                lock,
                lock,
                values["account_id"],
                values["company_id"],
                values["delivery_uuid"],
                values["event"],
                values["message_key"],
            )
        )
        row = self.env.cr.fetchone()
        return self.sudo().browse(row[0]) if row else None

    @api.model
    def _gc_old_events(self):
        """Cron: forget deliveries older than the retention (their dedupe window)."""
        limit = fields.Datetime.now() - timedelta(days=RETENTION_DAYS)
        self.sudo().search([("received_at", "<", limit)]).unlink()
