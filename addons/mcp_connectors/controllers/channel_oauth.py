# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""``/mcp/channel/oauth/<token>``: where a platform sends the administrator's browser back after
the seller authorized the app (the channel's *Authorize* button, Mercado Livre and Shopee).

The logged-in user who clicked the button comes back with the platform's query (``code``,
``state``, and Shopee's ``shop_id``); the channel checks the state, exchanges the code and
stores the tokens (``mcp.channel._authorization_complete``). Success leads back to the
channel's form, whose chatter says whose authorization was stored; a failure is a page saying
what went wrong, with a link back. The pending authorization is spent either way, so the
failure's transaction is committed: nothing else is written then.
"""

from werkzeug.exceptions import NotFound

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

from .channel_webhook import _channel_of


class McpChannelOAuth(http.Controller):
    @http.route(
        "/mcp/channel/oauth/<string:token>",
        type="http",
        auth="user",
        methods=["GET"],
        readonly=False,
    )
    def authorized(self, token, **params):
        channel = _channel_of(token)
        if not channel:
            raise NotFound()
        channel = channel.sudo(False)  # the user who comes back, with their access rights
        form_url = f"/odoo/{channel._name}/{channel.id}"
        try:
            channel._authorization_complete(params)
        except UserError as exc:
            return request.render(
                "mcp_connectors.channel_authorization_failed",
                {"error": str(exc), "redirect_url": form_url},
                status=400,
            )
        return request.redirect(form_url)
