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
