# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The Shopee channel: seller chat of a shop, through the Open Platform v2.

The protocol is ``services/channel_shopee.py``; this file wires it to the channel: the push
URL (signature, acknowledgement, the job), replies through ``send_message``, the token renewal
of the ``shopee`` OAuth provider, the *Authorize* button's hooks (the button itself is shared:
see ``mcp_channel_mercadolivre.py``), the *Test* call and the agents' tools.
"""

import logging
from datetime import datetime, timezone
from urllib.parse import urlencode

from odoo import fields, models
from odoo.tools import format_datetime

from odoo.addons.mcp_integrator.services import tool_calls
from odoo.addons.mcp_integrator.services.oauth import OAuthError

from ..services import channel_shopee as shopee
from ..services.channels import (
    ChannelSendError,
    InboundAnswer,
    InboundMessage,
    InboundRejected,
    SkippedEvent,
)

_logger = logging.getLogger(__name__)

SHOPEE_HOSTS = {
    "global": shopee.HOST_GLOBAL,
    "brazil": shopee.HOST_BRAZIL,
    "china": shopee.HOST_CHINA,
    "sandbox": shopee.HOST_SANDBOX,
}
# Pushes that say the shop's authorization is gone or about to lapse: the channel's alert.
AUTHORIZATION_ALERT_KINDS = ("shop_deauthorization", "authorization_expiry")
DEFAULT_MESSAGES = 20


class McpChannel(models.Model):
    _inherit = "mcp.channel"  # pylint: disable=consider-merging-classes-inherited

    channel_type = fields.Selection(
        selection_add=[("shopee", "Shopee")], ondelete={"shopee": "cascade"}
    )
    shopee_host = fields.Selection(
        [
            ("brazil", "Brazil (openplatform.shopee.com.br)"),
            ("global", "Global (partner.shopeemobile.com)"),
            ("china", "China (openplatform.shopee.cn)"),
            ("sandbox", "Sandbox (openplatform.sandbox.test-stable.shopee.sg)"),
        ],
        default="brazil",
        help="The Shopee Open Platform host of the shop's region; the API Base URL, when set, "
        "replaces it.",
    )
    shopee_push_url = fields.Char(
        string="Registered Push URL",
        help="Only when the public address differs from the inbound URL (a proxy in front of "
        "Odoo): the callback URL exactly as registered in the Shopee console (Push "
        "Mechanism). Shopee signs it with every push, so a proxy must not rewrite it.",
    )
    shopee_shop_user_id = fields.Char(
        string="Shop Chat User ID",
        copy=False,
        help="The shop's own user id in Shopee chat (it differs from the shop ID): messages "
        "from it are the shop's own and are never answered. Learned from the first buyer "
        "messages; it can be typed in.",
    )

    # configuration ----------------------------------------------------------------------------
    def _app_key(self):
        """The Shopee partner (app) id: one partner app may serve several shops through one
        push URL."""
        if self.channel_type != "shopee":
            return super()._app_key()
        partner_id = self.sudo().access_credential_id.client_id
        # a channel without a partner id shares its pushes with no other channel
        return ("shopee", partner_id) if partner_id else ("shopee-channel", self.id)

    def _shopee_client(self):
        """The signed client of the channel's partner app and host."""
        self.ensure_one()
        credential = self.sudo().access_credential_id
        if credential.kind != "oauth2":
            raise ChannelSendError(
                self.env._(
                    "Channel %(channel)s needs an OAuth 2.0 access credential (client ID = "
                    "Shopee partner ID, secret = partner key).",
                    channel=self.display_name,
                )
            )
        values = credential._get_secret_values()
        partner_id = (values["client_id"] or "").strip()
        if not partner_id.isdigit() or not values["client_secret"]:
            raise ChannelSendError(
                self.env._(
                    "The access credential of %(channel)s needs the Shopee partner ID (a number) "
                    "as client ID and the partner key as secret.",
                    channel=self.display_name,
                )
            )
        base_url = self.api_base_url or SHOPEE_HOSTS[self.shopee_host or "brazil"]
        return shopee.ShopeeClient(partner_id, values["client_secret"], base_url=base_url)

    def _shopee_shop_id(self):
        if not self.account_ref:
            raise ChannelSendError(
                self.env._(
                    "Channel %(channel)s has no Shopee shop ID (Account ID).",
                    channel=self.display_name,
                )
            )
        return self.account_ref

    def _shopee_call(self, operation):
        """``operation(client, access_token)`` with a valid token: a token Shopee refuses is
        renewed once and the operation tried once more; a lapsed authorization alerts."""
        client = self._shopee_client()
        return self._with_access_token(lambda token: operation(client, token))

    # inbound ----------------------------------------------------------------------------------
    def _inbound_shopee(self, request):
        """A push: signature over ``<registered URL>|<raw body>``, then the job, and at once a
        2xx with an empty body (Shopee waits 3 s, then retries after 5 min, 30 min, 3 h)."""
        if request.method != "POST":
            return InboundAnswer.refused(InboundRejected(405, "Shopee pushes are POST requests"))
        try:
            shopee.verify_push(
                self._signing_secret(),
                self.shopee_push_url or self.inbound_url,
                request.body,
                request.headers.get(shopee.PUSH_AUTHORIZATION_HEADER),
            )
            payload = shopee.decode_push(request.body)
        except InboundRejected as exc:
            _logger.info("Channel %s: Shopee push refused: %s", self.id, exc.reason)
            return InboundAnswer.refused(exc)
        self._enqueue_delivery(payload, shopee.push_identity(payload, request.body))
        return InboundAnswer()

    def _process_delivery_shopee(self, payload):
        """Job: a buyer's message to the hub (through its shop's channel), an authorization
        push to the alert of its shops' channels, anything else logged."""
        shop_id = shopee.push_shop_id(payload)
        channel = self._sibling_channel(shop_id) if shop_id else self.browse()
        outcomes = []
        for event in shopee.parse_push(payload, channel._shopee_user_ids(payload)):
            if isinstance(event, SkippedEvent) and event.kind in AUTHORIZATION_ALERT_KINDS:
                outcomes.append(self._shopee_authorization_push(payload, event))
            elif not channel:
                self._skip_event(
                    SkippedEvent(
                        "unknown_shop",
                        f"shop {shop_id} is received by no channel of this app",
                        event.metadata,
                    )
                )
                outcomes.append("skipped: unknown shop")
            elif isinstance(event, InboundMessage):
                channel._deliver_message(event)
                outcomes.append(f"delivered: {event.message_id}")
            else:
                channel._skip_event(event)
                outcomes.append(f"skipped: {event.kind}")
        return "; ".join(outcomes)

    def _shopee_authorization_push(self, payload, event):
        """The shop cancelled the app's authorization, or it expires within 7 days: the
        channel of each shop named raises its re-authorize alert."""
        if event.kind == "shop_deauthorization":
            reason = self.env._(
                "The seller cancelled the authorization of the Shopee app for this shop: "
                "authorize it again and store the new tokens."
            )
        else:
            reason = self.env._(
                "Shopee warns that the shop's authorization of the app expires soon: have the "
                "seller authorize it again before it lapses."
            )
        alerted = []
        for shop_id in shopee.authorization_shop_ids(payload):
            channel = self._sibling_channel(shop_id)
            if channel:
                channel._alert_reauthorization(reason)
                alerted.append(shop_id)
        if not alerted:
            self._skip_event(SkippedEvent(event.kind, "for no shop of this app", event.metadata))
        return f"{event.kind}: alerted {', '.join(alerted) or 'no channel'}"

    def _shopee_user_ids(self, payload):
        """The shop's own chat user ids, to tell its messages from the buyers': the one
        stored, else (until known) read from the pushed message's conversation on Shopee."""
        if not self:
            return ()
        if self.shopee_shop_user_id:
            return (self.shopee_shop_user_id,)
        conversation_id = shopee.push_conversation_id(payload)
        if not conversation_id:
            return ()
        try:
            answer = self._shopee_call(
                lambda client, token: client.get_messages(
                    token, self.account_ref, conversation_id, shopee.MAX_MESSAGE_PAGE
                )
            )
        except ChannelSendError as exc:
            _logger.warning(
                "Channel %s: the shop's chat user id could not be read: %s", self.id, exc.reason
            )
            return ()
        user_id = shopee.shop_user_id(answer, self.account_ref, payload)
        if not user_id:
            return ()
        self.sudo().shopee_shop_user_id = user_id
        return (user_id,)

    # outbound ---------------------------------------------------------------------------------
    def _send_reply_shopee(self, thread_id, contact, text, attachments, metadata):
        """``send_message`` to the buyer (the contact), split at the text limit. A reply cut
        short goes on where it stopped when the hub tries it again (``parts_sent``): no part
        is sent twice."""
        shop_id = self._shopee_shop_id()
        text = self._shopee_reply_text(text, attachments)
        first_part = int(metadata.get("parts_sent") or 0)
        sent = self._shopee_call(
            lambda client, token: client.send_text(
                token, shop_id, (contact or {}).get("id"), text, first_part
            )
        )
        return {"external_id": sent[0] if sent else None}

    def _shopee_reply_text(self, text, attachments):
        """The text with the links of the attachments; Shopee chat takes no files here."""
        lines = [text or ""]
        for attachment in attachments:
            if not attachment.get("url"):
                raise ChannelSendError(
                    self.env._(
                        "Shopee chat replies carry text and links only: the file %(name)s has no "
                        "link and cannot be sent.",
                        name=attachment.get("name") or "?",
                    )
                )
            name = attachment.get("name")
            lines.append(f"{name}: {attachment['url']}" if name else attachment["url"])
        return "\n".join(line for line in lines if line.strip())

    # authorization in the browser -------------------------------------------------------------
    def _authorization_request_shopee(self, redirect_uri, state):
        """Shopee's authorization page takes no state: it comes back in the redirect URL, to
        which Shopee adds ``code`` and ``shop_id``."""
        redirect = f"{redirect_uri}?{urlencode({'state': state})}"
        return self._shopee_client().authorization_url(redirect), {}

    def _authorization_tokens_shopee(self, params, kept):
        shop_id = (params.get("shop_id") or "").strip()
        if not shop_id.isdigit():
            raise ChannelSendError(
                self.env._(
                    "Shopee sent back no shop ID (a main account was authorized?): authorize "
                    "the app for the shop itself."
                )
            )
        tokens = self._shopee_client().get_token(params["code"], shop_id)
        return tokens.shop_id, tokens

    # test and tools ---------------------------------------------------------------------------
    def _test_shopee(self):
        shop_id = self._shopee_shop_id()
        info = self._shopee_call(lambda client, token: client.get_shop_info(token, shop_id))
        expire_time = info.get("expire_time")
        expires = (
            format_datetime(
                self.env, datetime.fromtimestamp(expire_time, timezone.utc).replace(tzinfo=None)
            )
            if isinstance(expire_time, int)
            else "?"
        )
        return self.env._(
            "Shop %(name)s (%(region)s, %(status)s) answered; its authorization of the app ends "
            "on %(expires)s.",
            name=info.get("shop_name") or shop_id,
            region=info.get("region") or "?",
            status=info.get("status") or "?",
            expires=expires,
        )

    def _shopee_conversation_messages(self, conversation_id, limit):
        shop_id = self._shopee_shop_id()
        answer = self._shopee_call(
            lambda client, token: client.get_messages(token, shop_id, conversation_id, limit)
        )
        return {
            "conversation_id": str(conversation_id),
            "messages": shopee.conversation_messages(answer, shop_id),
        }

    def _shopee_unread_conversations(self):
        shop_id = self._shopee_shop_id()
        count = self._shopee_call(
            lambda client, token: client.unread_conversation_count(token, shop_id)
        )
        return {"unread_conversations": count}


class McpCredential(models.Model):
    _inherit = "mcp.credential"  # pylint: disable=consider-merging-classes-inherited

    oauth_provider = fields.Selection(
        selection_add=[("shopee", "Shopee")], ondelete={"shopee": "set default"}
    )

    def _oauth2_refresh_shopee(self, refresh_token):
        """Provider hook: ``/api/v2/auth/access_token/get`` for the shop of the channel using
        this credential. The refresh token is single use: the new one comes back with the
        access token (the caller stores both under its lock)."""
        channel = self._channel_using("shopee")
        if not channel.account_ref:
            raise OAuthError(
                self.env._("No Shopee channel with a shop ID uses this credential."),
                error="bad_request",
            )

        def renew():
            tokens = channel._shopee_client().refresh_access_token(
                refresh_token, channel.account_ref
            )
            return tokens.access_token, tokens.refresh_token, tokens.expires_at

        return self._channel_renewal(renew)


class McpServer(models.Model):
    _inherit = "mcp.server"  # pylint: disable=consider-merging-classes-inherited

    kind = fields.Selection(
        selection_add=[("shopee", "Channel: Shopee")], ondelete={"shopee": "cascade"}
    )

    def _mcp_builtin_tools_shopee(self):
        read_only = {
            "read_only": True,
            "destructive": False,
            "idempotent": True,
            "open_world": True,
        }
        return [
            {
                "name": "shopee_conversation_messages",
                "description": (
                    "The last messages of a Shopee chat conversation of the shop, newest first: "
                    "who wrote each one (buyer or shop), its text and time."
                ),
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "conversation_id": {
                            "type": "string",
                            "pattern": "^[0-9]{1,30}$",
                            "description": "The Shopee conversation id (the thread id).",
                        },
                        "limit": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": shopee.MAX_MESSAGE_PAGE,
                            "default": DEFAULT_MESSAGES,
                        },
                    },
                    "required": ["conversation_id"],
                    "additionalProperties": False,
                },
                "annotations": dict(read_only),
            },
            {
                "name": "shopee_unread_conversations",
                "description": (
                    "How many Shopee chat conversations of the shop have unread messages."
                ),
                "input_schema": {"type": "object", "properties": {}, "additionalProperties": False},
                "annotations": dict(read_only),
            },
        ]

    def _mcp_run_shopee(self, tool, arguments):
        channel = self._platform_channel().sudo()
        try:
            if tool.remote_name == "shopee_conversation_messages":
                return channel._shopee_conversation_messages(
                    arguments["conversation_id"], arguments.get("limit", DEFAULT_MESSAGES)
                )
            if tool.remote_name == "shopee_unread_conversations":
                return channel._shopee_unread_conversations()
        except ChannelSendError as exc:
            if exc.retryable:
                raise tool_calls.ToolUnavailable(exc.reason) from None
            raise tool_calls.PermanentToolError(exc.reason) from None
        raise tool_calls.PermanentToolError(f"Unknown Shopee tool {tool.remote_name!r}.")

    def _mcp_health_shopee(self):
        self._channel_health()
