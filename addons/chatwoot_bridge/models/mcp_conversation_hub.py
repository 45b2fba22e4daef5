# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, models


class McpConversationHub(models.AbstractModel):
    """Chatwoot is the hub: a channel's message goes into the channel's Chatwoot API inbox."""

    _inherit = "mcp.conversation.hub"

    @api.model
    def _mcp_ingest(
        self, tenant, channel, thread_id, contact, text, attachments, metadata, message_id
    ):
        return self.env["chatwoot.hub.message"]._receive(
            tenant, channel, thread_id, contact, text, attachments, metadata, message_id
        )
