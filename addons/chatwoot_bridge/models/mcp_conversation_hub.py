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

    @api.model
    def _mcp_delivery_status(self, channel, external_message_id, status, error=None):
        return self.env["chatwoot.hub.message"]._delivery_status(
            channel, external_message_id, status, error
        )

    @api.model
    def _mcp_move_thread(self, channel, old_thread_id, thread_id):
        self.env["chatwoot.hub.message"]._move_thread(channel, old_thread_id, thread_id)

    @api.model
    def _mcp_last_customer_at(self, channel, thread_id):
        return self.env["chatwoot.hub.message"]._last_customer_at(channel, thread_id)
