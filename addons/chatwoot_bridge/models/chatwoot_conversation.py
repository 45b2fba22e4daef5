# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from typing import NamedTuple

from odoo import api, fields, models
from odoo.tools import SQL

from odoo.addons.queue_job.exception import RetryableJobError

from ..services.client import ChatwootError


class ConversationState(NamedTuple):
    """What the webhook's gate knows of a conversation (read without the ORM)."""

    id: int
    status: str | None
    ai_silenced: bool
    silenced_reason: str | None
    hub: bool  # mirrors a channel connector's thread


class ChatwootConversation(models.Model):
    """What the bridge knows of a Chatwoot conversation: its status, whether a person took it
    over (the AI stays silent), and, for the hub, the channel thread it mirrors."""

    _name = "chatwoot.conversation"
    _description = "Chatwoot Conversation"
    _order = "write_date desc, id desc"
    _rec_name = "display_name"

    account_id = fields.Many2one(
        "chatwoot.account", required=True, index=True, ondelete="cascade", readonly=True
    )
    tenant_id = fields.Many2one(related="account_id.tenant_id", store=True, index=True)
    company_id = fields.Many2one(related="account_id.company_id", store=True, index=True)
    conversation_id = fields.Integer(
        string="Chatwoot Conversation", readonly=True, help="Its number in Chatwoot (display id)."
    )
    inbox_id = fields.Many2one("chatwoot.inbox", readonly=True, index=True, ondelete="set null")
    status = fields.Selection(
        [
            ("pending", "Pending (AI)"),
            ("open", "Open (people)"),
            ("snoozed", "Snoozed"),
            ("resolved", "Resolved"),
        ],
        readonly=True,
    )
    ai_silenced = fields.Boolean(
        string="AI Silenced",
        readonly=True,
        help="A person answered or opened the conversation: the AI stays silent until it is "
        "back to pending.",
    )
    silenced_reason = fields.Char(readonly=True)
    last_ai_reply_at = fields.Datetime(string="Last AI Reply", readonly=True)
    handoff_at = fields.Datetime(readonly=True)
    contact_name = fields.Char(readonly=True)
    # the hub: a conversation of another channel mirrored in a Chatwoot API inbox
    channel_connector_id = fields.Many2one(
        "mcp.channel", readonly=True, index=True, ondelete="set null"
    )
    external_thread_id = fields.Char(readonly=True)
    external_contact = fields.Json(readonly=True)
    contact_source_id = fields.Char(readonly=True)
    run_ids = fields.One2many("mcp.crew.run", "chatwoot_conversation_id", string="Crew Runs")

    _conversation_uniq = models.Constraint(
        "UNIQUE(account_id, conversation_id)", "This conversation is already known."
    )
    _thread_uniq = models.Constraint(
        "UNIQUE(channel_connector_id, external_thread_id)",
        "This channel thread already has a conversation.",
    )

    @api.depends("conversation_id", "contact_name", "external_thread_id")
    def _compute_display_name(self):
        for conversation in self:
            name = f"#{conversation.conversation_id}" if conversation.conversation_id else "…"
            who = conversation.contact_name or conversation.external_thread_id
            conversation.display_name = f"{name} {who}" if who else name

    @api.model
    def _get_or_create(self, config, conversation_id, inbox=None):
        """The conversation's record, created on first sight."""
        return self.sudo().browse(self._state(config, conversation_id, inbox).id)

    @api.model
    def _state(self, config, conversation_id, inbox=None):
        """The :class:`ConversationState` the webhook's gate reads, in one query: found, or
        inserted on first sight.

        Deliveries of one new conversation may arrive at once: the insert skips a row another
        transaction inserted first, and when that row is not visible yet (committed after this
        transaction's snapshot) PostgreSQL raises a serialization failure, on which Odoo
        replays the request, which then finds it.
        """
        self.env.cr.execute(
            SQL(
                """WITH found AS (
                    SELECT id, status, ai_silenced, silenced_reason, channel_connector_id
                    FROM chatwoot_conversation
                    WHERE account_id = %(account)s AND conversation_id = %(conversation)s
                ), inserted AS (
                    INSERT INTO chatwoot_conversation
                        (account_id, conversation_id, inbox_id, tenant_id, company_id,
                         create_uid, write_uid, create_date, write_date)
                    SELECT %(account)s, %(conversation)s, %(inbox)s, %(tenant)s, %(company)s,
                           %(uid)s, %(uid)s, now() at time zone 'UTC', now() at time zone 'UTC'
                    WHERE NOT EXISTS (SELECT 1 FROM found)
                    ON CONFLICT (account_id, conversation_id)
                        DO UPDATE SET write_date = EXCLUDED.write_date
                    RETURNING id, status, ai_silenced, silenced_reason, channel_connector_id
                )
                SELECT * FROM found UNION ALL SELECT * FROM inserted""",
                account=config.id,
                conversation=conversation_id,
                inbox=inbox.id if inbox else None,
                tenant=config.tenant_id,
                company=config.company_id,
                uid=self.env.uid,
            )
        )
        record_id, status, silenced, reason, connector_id = self.env.cr.fetchone()
        return ConversationState(record_id, status, bool(silenced), reason, bool(connector_id))

    def _see_status(self, status, mode):
        """A status Chatwoot reported: with an Agent Bot, open means people took over (the AI
        is silenced) and pending gives the conversation back to the AI."""
        values = {"status": status}
        if status == "open" and mode == "agent_bot":
            values.update(ai_silenced=True, silenced_reason="open in Chatwoot")
        elif status in ("pending", "resolved"):
            values.update(ai_silenced=False, silenced_reason=False)
        self.write(values)

    def _see_human_reply(self, agent_name, mode):
        """A person answered: the AI steps back. With an Agent Bot the conversation is also
        opened, as Chatwoot's own Captain does, so that it comes back to the AI only when an
        agent sets it to pending again."""
        self.write({"ai_silenced": True, "silenced_reason": f"{agent_name or 'an agent'} replied"})
        if mode == "agent_bot" and self.status != "open":
            self.with_delay(
                identity_key=f"chatwoot.conversation.open:{self.id}",
                description=self.env._("Open conversation %(name)s", name=self.display_name),
            )._open_for_people()

    def _open_for_people(self):
        """Job: open the conversation in Chatwoot (the bot's handoff)."""
        self.ensure_one()
        with self.account_id._client() as client:
            try:
                client.toggle_status(self.conversation_id, "open")
            except ChatwootError as error:
                self.account_id._note_error(error.reason)
                if error.retryable:
                    raise RetryableJobError(error.reason, seconds=error.retry_after) from None
                return error.reason
        self.status = "open"
        return self.env._("Opened.")

    def _customer_silent_since(self, moment):
        """Whether no customer message of this conversation was received after ``moment``."""
        return (
            not self.env["chatwoot.event"]
            .sudo()
            .search_count(
                [
                    ("conversation_id", "=", self.id),
                    ("outcome", "=", "answer"),
                    ("received_at", ">", moment),
                ],
                limit=1,
            )
        )

    def _resolve_idle(self):
        """Job: post the resolution message and resolve the conversation in Chatwoot."""
        self.ensure_one()
        account = self.account_id
        if self.status != "pending" or self.ai_silenced:
            return self.env._("The conversation changed meanwhile: left as it is.")
        sent = self.env["chatwoot.sent.message"]
        with account._client() as client:
            try:
                message = account.with_context(lang=self.tenant_id.language).resolution_message
                key = f"bot:resolve:{self.id}:{self.last_ai_reply_at}"
                if message and not sent._posted(account, key):
                    posted = client.post_message(self.conversation_id, message)
                    sent._remember(account, key, posted["id"])
                    self.env["chatwoot.hub.message"]._forward(self, posted["id"], message)
                client.toggle_status(self.conversation_id, "resolved")
            except ChatwootError as error:
                account._note_error(error.reason)
                if error.retryable:
                    raise RetryableJobError(error.reason, seconds=error.retry_after) from None
                return error.reason
        self.status = "resolved"
        return self.env._("Resolved.")
