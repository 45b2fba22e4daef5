# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
from datetime import UTC

import psycopg2

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from odoo.addons.mcp_connectors.services.channels import ChannelSendError
from odoo.addons.mcp_crew_engine.models.mcp_crew_run import TENANT_CONTEXT
from odoo.addons.mcp_integrator.models.mcp_integrator import job_attempt
from odoo.addons.queue_job.exception import RetryableJobError

from ..services import hub
from ..services.client import ChatwootError

_logger = logging.getLogger(__name__)

#: Tries of the hub's jobs: Chatwoot or the channel may be down for a while.
HUB_ATTEMPTS = 12


class ChatwootHubMessage(models.Model):
    """A message crossing the hub: a customer's message of another channel going into its
    Chatwoot API inbox (``in``), or a reply written in that inbox going back to the channel
    (``out``). Recorded before its job, unique per message, so nothing is lost or sent twice.
    """

    _name = "chatwoot.hub.message"
    _description = "Chatwoot Hub Message"
    _order = "id desc"

    account_id = fields.Many2one(
        "chatwoot.account", required=True, index=True, ondelete="cascade", readonly=True
    )
    tenant_id = fields.Many2one(related="account_id.tenant_id", store=True, index=True)
    company_id = fields.Many2one(related="account_id.company_id", store=True, index=True)
    direction = fields.Selection(
        [("in", "Channel → Chatwoot"), ("out", "Chatwoot → channel")],
        required=True,
        readonly=True,
    )
    channel_connector_id = fields.Many2one(
        "mcp.channel", required=True, index=True, ondelete="cascade", readonly=True
    )
    inbox_id = fields.Many2one("chatwoot.inbox", readonly=True, ondelete="set null")
    conversation_id = fields.Many2one(
        "chatwoot.conversation", readonly=True, index=True, ondelete="set null"
    )
    external_thread_id = fields.Char(readonly=True)
    external_message_id = fields.Char(readonly=True, help="The message's id on the channel.")
    chatwoot_message_id = fields.Char(readonly=True, index=True)
    contact = fields.Json(readonly=True)
    text = fields.Text(readonly=True)
    attachments = fields.Json(readonly=True)
    metadata = fields.Json(readonly=True)
    by_human = fields.Boolean(
        readonly=True,
        help="A reply a person wrote (not the AI): some channels accept it longer after the "
        "customer's last message.",
    )
    state = fields.Selection(
        [("pending", "Pending"), ("done", "Done"), ("failed", "Failed")],
        default="pending",
        required=True,
        readonly=True,
        index=True,
    )
    error = fields.Char(readonly=True)
    done_at = fields.Datetime(readonly=True)

    _incoming_uniq = models.Constraint(
        "UNIQUE(channel_connector_id, direction, external_message_id)",
        "This channel message was already received.",
    )
    _outgoing_uniq = models.Constraint(
        "UNIQUE(account_id, direction, chatwoot_message_id)",
        "This Chatwoot message was already sent back.",
    )

    # recording -------------------------------------------------------------------------------
    @api.model
    def _record(self, values, unique_domain):
        """The new message's record, or the one already recorded for it."""
        existing = self.sudo().search(unique_domain, limit=1) if unique_domain else None
        if existing:
            return existing
        try:
            with self.env.cr.savepoint():
                message = self.sudo().create(values)
        except psycopg2.IntegrityError:
            return self.sudo().search(unique_domain, limit=1)
        message._enqueue()
        return message

    def _enqueue(self):
        self.ensure_one()
        method = "_post_to_chatwoot" if self.direction == "in" else "_send_to_channel"
        getattr(
            self.with_context(**{TENANT_CONTEXT: self.tenant_id.id}).with_delay(
                max_retries=HUB_ATTEMPTS,
                identity_key=f"chatwoot.hub.message:{self.id}",
                description=self.env._("Hub message #%(id)s", id=self.id),
            ),
            method,
        )()

    @api.model
    def _receive(
        self, tenant, channel, thread_id, contact, text, attachments, metadata, message_id
    ):
        """A channel's customer message, on its way to the channel's Chatwoot inbox."""
        inbox = (
            self.env["chatwoot.inbox"]
            .sudo()
            .search(
                [("channel_connector_id", "=", channel.id), ("account_id.active", "=", True)],
                limit=1,
            )
        )
        if not inbox or inbox.tenant_id != tenant:
            raise UserError(
                self.env._(
                    "No Chatwoot inbox of this tenant holds the channel %(channel)s: map it to an "
                    "API inbox in Chatwoot > Accounts.",
                    channel=channel.display_name,
                )
            )
        problem = hub.check_incoming(contact, text, attachments, metadata)
        if problem:
            raise UserError(problem)
        values = {
            "account_id": inbox.account_id.id,
            "direction": "in",
            "channel_connector_id": channel.id,
            "inbox_id": inbox.id,
            "external_thread_id": thread_id,
            "external_message_id": message_id,
            "contact": contact,
            "text": text,
            "attachments": attachments,
            "metadata": metadata,
        }
        unique = message_id and [
            ("channel_connector_id", "=", channel.id),
            ("direction", "=", "in"),
            ("external_message_id", "=", message_id),
        ]
        return self._record(values, unique)

    @api.model
    def _forward(self, conversation, chatwoot_message_id, text, attachments=(), by_human=False):
        """A reply written in a hub conversation (by a person, ``by_human``, or the AI), on its
        way back to the customer's channel; nothing for a conversation of Chatwoot's own
        channels."""
        if not conversation.channel_connector_id:
            return self.browse()
        values = {
            "account_id": conversation.account_id.id,
            "direction": "out",
            "channel_connector_id": conversation.channel_connector_id.id,
            "inbox_id": conversation.inbox_id.id,
            "conversation_id": conversation.id,
            "external_thread_id": conversation.external_thread_id,
            "chatwoot_message_id": str(chatwoot_message_id),
            "contact": conversation.external_contact,
            "text": text,
            "attachments": [hub.outgoing_attachment(item) for item in attachments],
            "by_human": by_human,
        }
        unique = [
            ("account_id", "=", conversation.account_id.id),
            ("direction", "=", "out"),
            ("chatwoot_message_id", "=", str(chatwoot_message_id)),
        ]
        return self._record(values, unique)

    # jobs ------------------------------------------------------------------------------------
    def _post_to_chatwoot(self):
        """Job: file the customer's message in its Chatwoot conversation (created on the
        thread's first message)."""
        self.ensure_one()
        if self.state != "pending":
            return self.state
        sent = self.env["chatwoot.sent.message"]
        account = self.account_id
        key = f"in:{self.id}"  # a customer's message: never an echo
        with account._client() as client:
            try:
                conversation = self._hub_conversation(client)
                message_id = sent._posted(account, key)
                if not message_id:
                    files, content = hub.incoming_content(self.text, self.attachments or [])
                    posted = client.post_message(
                        conversation.conversation_id,
                        content,
                        message_type="incoming",
                        source_id=self.external_message_id,
                        attachments=files or None,
                    )
                    message_id = posted["id"]
                    sent._remember(account, key, message_id)
            except ChatwootError as error:
                account._note_error(error.reason)
                return self._job_failed(error.reason, error.retryable, error.retry_after)
        self.write(
            {
                "state": "done",
                "error": False,
                "done_at": fields.Datetime.now(),
                "conversation_id": conversation.id,
                "chatwoot_message_id": str(message_id),
            }
        )
        return self.env._("Posted as Chatwoot message %(id)s.", id=message_id)

    def _hub_conversation(self, client):
        """The thread's Chatwoot conversation; contact, contact inbox and conversation are
        created on its first message, and the conversation's number is committed at once
        (a retried job reuses it instead of opening a second conversation)."""
        connector = self.channel_connector_id
        conversations = self.env["chatwoot.conversation"].sudo()
        conversation = conversations.search(
            [
                ("channel_connector_id", "=", connector.id),
                ("external_thread_id", "=", self.external_thread_id),
            ],
            limit=1,
        )
        if conversation:
            return conversation
        # one job per thread creates it; the others wait here, then find its number
        key = f"conv:{connector.id}:{self.external_thread_id}"
        self.env.cr.execute(SQL("SELECT pg_advisory_xact_lock(hashtext(%s))", key))
        sent = self.env["chatwoot.sent.message"]
        identity = hub.contact_identity(connector.channel_type, connector.id, self.contact)
        number = sent._posted(self.account_id, key)
        if not number:
            number = self._create_hub_conversation(client, identity)["id"]
            sent._remember(self.account_id, key, number)
        config = self.account_id._webhook_config_of(self.account_id.id)
        conversation = conversations._get_or_create(config, int(number), self.inbox_id)
        conversation.write(
            {
                "contact_name": identity.name,
                "channel_connector_id": connector.id,
                "external_thread_id": self.external_thread_id,
                "external_contact": self.contact,
                "contact_source_id": identity.source_id,
            }
        )
        return conversation

    def _create_hub_conversation(self, client, identity):
        inbox_id = self.inbox_id.inbox_id
        channel_type = self.channel_connector_id.channel_type
        contact_id = hub.find_contact(client, identity.identifier) or (
            hub.find_contact_by_address(client, identity.phone_number, identity.email)
        )
        if contact_id is None:
            created = client.create_contact(
                inbox_id,
                name=identity.name,
                identifier=identity.identifier,
                email=identity.email,
                phone_number=identity.phone_number,
                source_id=identity.source_id,
                additional_attributes={"mcp_channel": channel_type},
            )
            contact_id = created["contact"]["id"]
        else:
            hub.ensure_contact_inbox(client, contact_id, inbox_id, identity.source_id)
        return client.create_conversation(
            inbox_id,
            contact_id,
            identity.source_id,
            additional_attributes=hub.thread_attributes(
                channel_type, self.external_thread_id, self.metadata
            ),
        )

    def _send_to_channel(self):
        """Job: send the reply through the channel connector, then report the delivery on
        the Chatwoot message (status and external error)."""
        self.ensure_one()
        if self.state != "pending":
            return self.state
        connector = self.channel_connector_id.sudo()
        parts_sent = self._parts_sent()
        try:
            result = connector.send_reply(
                self.external_thread_id,
                self.contact or {},
                self.text or "",
                attachments=self.attachments or [],
                metadata={
                    "delivery_id": f"chatwoot-{self.account_id.id}-{self.chatwoot_message_id}",
                    "last_customer_at": self._last_customer_at(connector, self.external_thread_id),
                    "by_human": self.by_human,
                    "parts_sent": len(parts_sent),
                },
            )
        except ChannelSendError as error:
            # a reply split in parts: the parts sent are not sent again by the next try
            for index, part_id in enumerate(getattr(error, "sent_ids", ()), len(parts_sent)):
                self.env["chatwoot.sent.message"]._remember(
                    self.account_id, self._part_key(index), part_id or "-"
                )
            outcome = self._job_failed(error.reason, error.retryable, error.retry_after)
            self._report_status_later("failed", error.reason)
            return outcome
        # the channel's id of the message (its first part), to match later delivery statuses
        external_id = (parts_sent or [result.get("external_id")])[0]
        self.write(
            {
                "state": "done",
                "error": False,
                "done_at": fields.Datetime.now(),
                "external_message_id": external_id or False,
            }
        )
        self._report_status_later("delivered")
        return self.env._("Sent: %(result)s", result=result)

    def _part_key(self, index):
        return f"out:{self.id}:part:{index}"

    def _parts_sent(self):
        """The channel's ids of the parts of this reply an earlier try sent (committed at
        once, whatever that try's transaction did)."""
        sent, ids = self.env["chatwoot.sent.message"], []
        while part_id := sent._posted(self.account_id, self._part_key(len(ids))):
            ids.append(part_id)
        return ids

    @api.model
    def _last_customer_at(self, connector, thread_id):
        """When the customer of the connector's thread last wrote (epoch seconds: the
        platform's time of the message, else when it came), or None."""
        latest = self.sudo().search(
            [
                ("channel_connector_id", "=", connector.id),
                ("direction", "=", "in"),
                ("external_thread_id", "=", thread_id),
            ],
            order="id desc",
            limit=1,
        )
        if not latest:
            return None
        sent_at = (latest.metadata or {}).get("sent_at")
        if isinstance(sent_at, int) and not isinstance(sent_at, bool):
            return sent_at
        return int(latest.create_date.replace(tzinfo=UTC).timestamp())

    @api.model
    def _delivery_status(self, connector, external_message_id, status, error=None):
        """A reply's fate as the channel reported it later: a failure fails the message here
        and in Chatwoot; a read is shown in Chatwoot. Whether the reply was found."""
        message = self.sudo().search(
            [
                ("channel_connector_id", "=", connector.id),
                ("direction", "=", "out"),
                ("external_message_id", "=", external_message_id),
            ],
            limit=1,
        )
        if not message:
            return False
        if status == "failed":
            message.write({"state": "failed", "error": (error or "")[:250]})
            _logger.warning("Hub message %s failed on the channel: %s", message.id, error)
        message._report_status_later(status, error)
        return True

    @api.model
    def _move_thread(self, connector, old_thread_id, thread_id):
        """File the connector's thread ``old_thread_id`` under ``thread_id`` (its conversation
        and messages), unless ``thread_id`` already has a conversation."""
        conversations = self.env["chatwoot.conversation"].sudo()
        domain = [("channel_connector_id", "=", connector.id)]
        if conversations.search_count([*domain, ("external_thread_id", "=", thread_id)]):
            return
        old = [*domain, ("external_thread_id", "=", old_thread_id)]
        conversations.search(old).write({"external_thread_id": thread_id})
        self.sudo().search(old).write({"external_thread_id": thread_id})

    def _report_status_later(self, status, error=None):
        """The delivery's status goes on the Chatwoot message in a job of its own: Chatwoot
        being down must not send the reply to the channel a second time."""
        if not self.account_id.user_credential_id:
            return  # Chatwoot takes message statuses from user tokens only
        self.with_context(**{TENANT_CONTEXT: self.tenant_id.id}).with_delay(
            max_retries=HUB_ATTEMPTS,
            identity_key=f"chatwoot.hub.message.status:{self.id}:{status}",
            description=self.env._("Delivery status of hub message #%(id)s", id=self.id),
        )._report_status(status, error)

    def _report_status(self, status, error=None):
        """Job: write the delivery status on the Chatwoot message."""
        self.ensure_one()
        with self.account_id._client() as client:
            try:
                client.update_message_status(
                    self.conversation_id.conversation_id,
                    int(self.chatwoot_message_id),
                    status,
                    external_error=error,
                )
            except ChatwootError as failure:
                if failure.retryable:
                    raise RetryableJobError(failure.reason, seconds=failure.retry_after) from None
                _logger.warning("Hub message %s: status not reported: %s", self.id, failure.reason)
                return failure.reason
        return status

    def _job_failed(self, reason, retryable, retry_after=None):
        """Retry while the other side may come back; a permanent refusal, or the last try,
        fails the message (kept, with its reason, to be retried by hand)."""
        if retryable and job_attempt(self.env, HUB_ATTEMPTS) < HUB_ATTEMPTS:
            raise RetryableJobError(reason, seconds=retry_after)
        _logger.warning("Hub message %s failed: %s", self.id, reason)
        self.write({"state": "failed", "error": (reason or "")[:250]})
        return reason

    def action_retry(self):
        for message in self.filtered(lambda m: m.state == "failed"):
            message.write({"state": "pending", "error": False})
            message._enqueue()
