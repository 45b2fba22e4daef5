# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import UserError

from odoo.addons.queue_job.exception import RetryableJobError

from ..services import handoff
from ..services.client import ChatwootError

#: Context key with the chatwoot.conversation a webhook asks a crew for.
CONVERSATION_CONTEXT = "chatwoot_conversation_id"


class McpCrewRun(models.Model):
    _inherit = "mcp.crew.run"

    reply_to = fields.Selection(
        selection_add=[("chatwoot", "Chatwoot conversation")], ondelete={"chatwoot": "set null"}
    )
    chatwoot_conversation_id = fields.Many2one(
        "chatwoot.conversation", readonly=True, index=True, ondelete="set null"
    )

    @api.model
    def _record_request(self, tenant, text, channel, conversation, message_id, **extra):
        # the webhook's conversation, linked in the run's INSERT (no second write per message)
        linked = self.env.context.get(CONVERSATION_CONTEXT)
        if linked:
            extra.setdefault("chatwoot_conversation_id", linked)
        return super()._record_request(tenant, text, channel, conversation, message_id, **extra)

    def _mcp_deliver_chatwoot(self):
        """The answer as the Agent Bot's reply, or the handoff: its message, a private note
        for the agent, label and priority, and the conversation opened for people.

        Every message posted is remembered at once (``chatwoot.sent.message``): a retry after
        Chatwoot failed half-way posts only what is missing. Everything is worded in the
        tenant's language, the customers' and the agents'.
        """
        return self.with_context(lang=self.tenant_id.language)._deliver_to_chatwoot()

    def _deliver_to_chatwoot(self):
        conversation = self.chatwoot_conversation_id
        account = conversation.account_id
        if not conversation or not account.active:
            raise UserError(self.env._("The run's Chatwoot conversation or account is gone."))
        with account._client() as client:
            try:
                if self.state == "answered" and not conversation.ai_silenced:
                    self._post_reply(client, conversation)
                elif self.state == "answered":
                    # a person took over while the AI worked: a suggestion, not a reply
                    note = self.env._(
                        "🤖 AI suggestion (not sent: a person took over):\n%(answer)s",
                        answer=self.answer,
                    )
                    self._post_once(client, conversation, "suggestion", note, private=True)
                else:
                    self._hand_off(client, conversation)
            except ChatwootError as error:
                account._note_error(error.reason)
                if error.retryable:
                    raise RetryableJobError(error.reason, seconds=error.retry_after) from None
                raise UserError(
                    self.env._("Chatwoot refused the answer: %(reason)s", reason=error.reason)
                ) from None

    def _post_once(self, client, conversation, step, content, private=False):
        """Post ``content`` unless a try before this one did; the Chatwoot message id."""
        sent = self.env["chatwoot.sent.message"]
        account = conversation.account_id
        key = f"bot:run:{self.id}:{step}"
        message_id = sent._posted(account, key)
        if not message_id:
            message = client.post_message(conversation.conversation_id, content, private=private)
            message_id = message["id"]
            sent._remember(account, key, message_id)
        return message_id

    def _post_reply(self, client, conversation):
        message_id = self._post_once(client, conversation, "reply", self.answer)
        conversation.last_ai_reply_at = fields.Datetime.now()
        self.env["chatwoot.hub.message"]._forward(conversation, message_id, self.answer)

    def _hand_off(self, client, conversation):
        account = conversation.account_id
        tenant = self.tenant_id
        config = tenant._crew_config()
        closed = tenant._open_now(config) is False  # None: no opening hours
        if account.post_handoff_message and not conversation.ai_silenced:
            message = (
                (closed and account.handoff_closed_message)
                or account.handoff_message
                or tenant._fallback_answerer(config).handoff_text()
            )
            message_id = self._post_once(client, conversation, "handoff", message)
            self.env["chatwoot.hub.message"]._forward(conversation, message_id, message)
        reason = dict(self._fields["handoff_reason"]._description_selection(self.env)).get(
            self.handoff_reason, self.handoff_reason or ""
        )
        note = handoff.handoff_note(
            self._note_words(),
            reason=reason,
            detail=self.handoff_detail,
            request=self.request,
            crew=self.crew_id.name,
            history=self._conversation_summary(),
            closed=closed,
        )
        self._post_once(client, conversation, "note", note, private=True)
        if account.handoff_label and account.user_credential_id:
            client.add_labels(conversation.conversation_id, [account.handoff_label])
        if account.handoff_priority != "none":
            client.toggle_priority(conversation.conversation_id, account.handoff_priority)
        client.toggle_status(conversation.conversation_id, "open")
        conversation.write(
            {
                "status": "open",
                "ai_silenced": True,
                "silenced_reason": f"handed off: {self.handoff_reason}",
                "handoff_at": fields.Datetime.now(),
            }
        )

    def _note_words(self):
        return {
            "title": self.env._("AI handoff"),
            "detail": self.env._("Detail"),
            "crew": self.env._("Crew"),
            "closed": self.env._("Outside opening hours."),
            "message": self.env._("Customer's message"),
            "earlier": self.env._("Earlier"),
            "last": self.env._("Last turns"),
            "customer": self.env._("Customer"),
            "ai": self.env._("AI"),
        }

    def _conversation_summary(self):
        """``(summary, turns)`` of the conversation as the crew engine keeps it (empty when
        Redis is down: the cache fails open)."""
        conversation = self._conversation()
        if conversation is None:
            return "", ()
        context = conversation.context()
        return context.summary, tuple((turn.role, turn.content) for turn in context.turns)
