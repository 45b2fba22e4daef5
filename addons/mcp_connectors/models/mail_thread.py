# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, models


class MailThread(models.AbstractModel):
    """Incoming mail routed to channels (an incoming mail server creating "Channel" records, or
    an alias of the model) is a buyer's message of a marketplace that relays its messages by
    e-mail (Amazon): it goes to the channel's job and on to the conversation hub, never into
    the channel's chatter, and it never creates a channel."""

    _inherit = "mail.thread"

    @api.model
    def _message_route_process(self, message, message_dict, routes):
        channel_routes = [route for route in routes or () if route[0] == "mcp.channel"]
        if not channel_routes:
            return super()._message_route_process(message, message_dict, routes)
        other_routes = [route for route in routes if route[0] != "mcp.channel"]
        channels = self.env["mcp.channel"]._receive_amazon_email(
            message,
            channel_ids=[route[1] for route in channel_routes if route[1]],
            required=not other_routes,
        )
        if other_routes:
            return super()._message_route_process(message, message_dict, other_routes)
        return channels[:1].id
