# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, models
from odoo.exceptions import UserError


class McpConversationHub(models.AbstractModel):
    """The hook through which channel connectors hand over the messages they receive.

    A channel connector (WhatsApp, Mercado Livre...) does not answer customers itself: it gives
    each incoming message to the hub, which files it into the team's inbox (the Chatwoot bridge
    files it into the Chatwoot API inbox mapped to the connector), where the AI crews and the
    agents answer it; their replies come back through the connector's ``send_reply``. The addon
    that provides the hub overrides :meth:`_mcp_ingest`.
    """

    _name = "mcp.conversation.hub"
    _description = "AI Conversation Hub"

    @api.model
    def _mcp_ingest(
        self, tenant, channel, thread_id, contact, text, attachments, metadata, message_id
    ):
        raise UserError(
            self.env._(
                "No conversation hub is installed: install the Chatwoot bridge to receive "
                "messages from %(channel)s.",
                channel=channel.display_name,
            )
        )

    @api.model
    def _mcp_delivery_status(self, channel, external_message_id, status, error=None):
        """The channel learnt later how a reply it sent fared (``status``: ``read`` or
        ``failed``, with the platform's ``error``), e.g. WhatsApp refusing a message outside
        its 24 h window after accepting it. Whether the hub knew the message."""
        return False

    @api.model
    def _mcp_move_thread(self, channel, old_thread_id, thread_id):
        """The channel's customer of ``old_thread_id`` is known as ``thread_id`` from now on
        (WhatsApp: a business-scoped user id after the phone number): the hub files the
        thread's conversation under the new id, so the customer keeps one conversation."""

    @api.model
    def _mcp_last_customer_at(self, channel, thread_id):
        """When the customer of ``thread_id`` last wrote (epoch seconds), or None: the reply
        windows of the platforms count from it."""
