# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import fields, models
from odoo.exceptions import UserError

from ..services.channels import ChannelSendError


class McpServer(models.Model):
    """The MCP server of a platform channel (WhatsApp, Mercado Livre...): one kind per platform,
    added by the platform's file with its tools (``_mcp_builtin_tools_<kind>``,
    ``_mcp_run_<kind>``). The server is created with its channel, whose settings and
    credentials it uses; its health check is the channel's *Test*."""

    _inherit = "mcp.server"  # pylint: disable=consider-merging-classes-inherited

    channel_ids = fields.One2many("mcp.channel", "server_id", string="Channels")

    def _platform_channel(self):
        """The channel behind this server, in this server's environment."""
        self.ensure_one()
        channel = self.sudo().with_context(active_test=False).channel_ids[:1]
        if not channel:
            raise UserError(
                self.env._("MCP server %(server)s has no channel.", server=self.display_name)
            )
        return channel.with_env(self.env)

    def _channel_health(self):
        """The health check of a channel kind: the channel's test call."""
        channel = self._platform_channel()
        try:
            getattr(channel.sudo(), f"_test_{channel.channel_type}")()
        except ChannelSendError as exc:
            raise UserError(exc.reason) from None
