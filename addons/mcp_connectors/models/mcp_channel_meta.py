# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Meta's channels: WhatsApp Cloud API, Facebook Messenger and Instagram Direct.

The wire protocol is ``services/channel_meta.py``; this file maps it onto ``mcp.channel``
(inbound URL, delivery job, replies, *Test*), the Instagram Login token renewal of
``mcp.credential`` and the channels' ``mcp.server`` kinds."""

import hashlib
import json
import logging
import re
import secrets
from collections import Counter

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from odoo.addons.mcp_integrator.services import tool_calls

from ..services import channel_meta
from ..services.channel_meta import ChannelEvent
from ..services.channels import (
    ChannelSendError,
    InboundAnswer,
    InboundMessage,
    InboundRejected,
    SkippedEvent,
)
from ..services.odoo_tool_catalog import error_result
from .mcp_channel import McpChannel as BaseChannel
from .mcp_server import MANAGER

_logger = logging.getLogger(__name__)

META_TYPES = channel_meta.PLATFORMS
VERIFY_TOKEN_BYTES = 24
GRAPH_VERSION_FORMAT = re.compile(r"^v\d{1,3}\.\d{1,2}$")
# what each channel's Test reads: one cheap authenticated GET
TEST_FIELDS = {
    "whatsapp": ("display_phone_number", "verified_name"),
    "messenger": ("name",),
    "instagram": ("username",),
}
# Chatwoot's own Meta inboxes report these statuses of our messages; "delivered" is reported
# when Graph accepts the message
REPORTED_STATUSES = ("read", "failed")
READ_ONLY_TOOL = {"read_only": True, "destructive": False, "idempotent": True, "open_world": True}
SENDING_TOOL = {"read_only": False, "destructive": False, "idempotent": False, "open_world": True}
REPLY_WINDOW_TOOL = {
    "name": "meta_reply_window",
    "description": (
        "Whether a free-form reply may be sent now to a customer of this channel (WhatsApp: 24 "
        "hours after their last message, then an approved template only; Messenger and "
        "Instagram: 24 hours, a human agent up to 7 days)."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "thread_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "description": "The conversation's thread id on the channel "
                "(the conversation attribute external_thread_id).",
            },
        },
        "required": ["thread_id"],
        "additionalProperties": False,
    },
    "annotations": READ_ONLY_TOOL,
}
TEMPLATE_TOOL = {
    "name": "whatsapp_send_template",
    "description": (
        "Send an approved WhatsApp template message, the only message WhatsApp accepts more "
        "than 24 hours after the customer's last message. The template must be approved in "
        "WhatsApp Manager for this number."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "to": {
                "type": "string",
                "pattern": r"^(\+?[0-9]{6,20}|[A-Z]{2}\.[A-Za-z0-9.]{1,140})$",
                "description": "The customer's phone number (E.164) or business-scoped user id.",
            },
            "name": {"type": "string", "pattern": "^[a-z0-9_]{1,512}$"},
            "language": {
                "type": "string",
                "pattern": "^[a-z]{2,3}(_[A-Z]{2})?$",
                "description": "The template's language code, e.g. pt_BR.",
            },
            "parameters": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 1024},
                "maxItems": 20,
                "description": "The values of the body's {{1}}, {{2}}... in order.",
            },
        },
        "required": ["to", "name", "language"],
        "additionalProperties": False,
    },
    "annotations": SENDING_TOOL,
    "disabled_by_default": True,
}


class McpChannel(models.Model):
    """WhatsApp, Messenger and Instagram channels (see ``mcp.channel`` for the hooks).

    Two owners: the connector (Meta's webhooks come to the inbound URL, the messages go to the
    channel's Chatwoot API inbox, replies go out through the Graph API) or Chatwoot itself (its
    own WhatsApp/Facebook/Instagram inbox answers, the AI through the Chatwoot bridge): Meta
    delivers every webhook to every subscribed app, so a Chatwoot-owned channel only
    acknowledges them, and only one side ever replies."""

    _inherit = "mcp.channel"  # pylint: disable=consider-merging-classes-inherited
    _mcp_secret_fields = (*BaseChannel._mcp_secret_fields, "meta_verify_token")

    channel_type = fields.Selection(
        selection_add=[
            ("whatsapp", "WhatsApp"),
            ("messenger", "Facebook Messenger"),
            ("instagram", "Instagram Direct"),
        ],
        ondelete={"whatsapp": "cascade", "messenger": "cascade", "instagram": "cascade"},
    )
    meta_owner = fields.Selection(
        [
            (
                "connector",
                "This connector: messages come to Odoo and go to a Chatwoot API inbox",
            ),
            (
                "chatwoot",
                (
                    "Chatwoot's own WhatsApp/Facebook/Instagram inbox: the AI answers through "
                    "the Chatwoot bridge"
                ),
            ),
        ],
        string="Who Receives the Messages",
        default="connector",
        help="Meta sends every message to every app subscribed to the account: only one may "
        "answer. With Chatwoot's own inbox, the connector acknowledges Meta's webhooks and "
        "ingests nothing.",
    )
    meta_verify_token = fields.Char(
        string="Webhook Verify Token",
        readonly=True,
        copy=False,
        groups=MANAGER,
        help="Copy it into Meta's App Dashboard > (WhatsApp > Configuration | Messenger | "
        "Instagram) > Webhooks > Verify token, with the inbound URL as Callback URL.",
    )
    meta_graph_version = fields.Char(
        string="Graph API Version",
        default=channel_meta.GRAPH_VERSION,
        help="The Graph API version the calls use, e.g. v25.0 (Meta's App Dashboard > App "
        "settings > Advanced > Upgrade API version).",
    )
    meta_instagram_login = fields.Selection(
        [
            ("instagram", "Instagram Login (graph.instagram.com, Instagram user token)"),
            ("facebook", "Facebook Login (graph.facebook.com, the linked Page's token)"),
        ],
        string="Instagram API",
        default="instagram",
        help="Instagram Login: the access credential is an OAuth 2.0 credential of provider "
        "Instagram Login holding the long-lived Instagram user token (renewed before its 60 "
        "days end) and the signing secret is the Instagram app secret (App Dashboard > "
        "Instagram > API setup with Instagram login). Facebook Login: a bearer credential with "
        "the Page access token of the Page linked to the Instagram account.",
    )

    @api.constrains("channel_type", "meta_graph_version")
    def _check_meta_graph_version(self):
        for channel in self.filtered(lambda channel: channel.channel_type in META_TYPES):
            if not GRAPH_VERSION_FORMAT.match(channel.meta_graph_version or ""):
                raise ValidationError(
                    self.env._(
                        "Channel %(channel)s: the Graph API version must look like v25.0.",
                        channel=channel.display_name,
                    )
                )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("channel_type") in META_TYPES and not vals.get("meta_verify_token"):
                vals["meta_verify_token"] = secrets.token_urlsafe(VERIFY_TOKEN_BYTES)
        return super().create(vals_list)

    def action_regenerate_verify_token(self):
        """Button: a new webhook verify token (Meta's subscription must be verified again)."""
        self.check_access("write")
        for channel in self.filtered(lambda channel: channel.channel_type in META_TYPES):
            channel.sudo().meta_verify_token = secrets.token_urlsafe(VERIFY_TOKEN_BYTES)
        _logger.info("Verify token of channels %s regenerated by %s", self.ids, self.env.user.login)
        return True

    # inbound ----------------------------------------------------------------------------------
    def _inbound_whatsapp(self, request):
        return self._inbound_meta(request)

    def _inbound_messenger(self, request):
        return self._inbound_meta(request)

    def _inbound_instagram(self, request):
        return self._inbound_meta(request)

    def _inbound_meta(self, request):
        """Meta's subscription check (GET), or a signed delivery (POST): queued whole, one job
        per delivery (a redelivery of the same bytes while it waits is not queued twice), and
        answered 200 at once."""
        channel = self.sudo()
        try:
            if request.method == "GET":
                challenge = channel_meta.verify_handshake(request.args, channel.meta_verify_token)
                return InboundAnswer(
                    200, challenge.encode("ascii"), channel_meta.CHALLENGE_CONTENT_TYPE
                )
            channel_meta.verify_signature(
                request.body,
                request.headers.get(channel_meta.SIGNATURE_HEADER),
                channel._signing_secret(),
            )
            payload = channel_meta.decode_payload(request.body)
        except InboundRejected as exc:
            _logger.info("Channel %s: Meta %s refused: %s", self.id, request.method, exc.reason)
            return InboundAnswer.refused(exc)
        if channel.meta_owner == "chatwoot":
            self._skip_event(self._chatwoot_owned())
            return InboundAnswer()
        self._enqueue_delivery(payload, hashlib.sha256(request.body).hexdigest())
        return InboundAnswer()

    def _chatwoot_owned(self):
        return SkippedEvent(
            "chatwoot_owned",
            "Chatwoot owns this channel: its own inbox answers, the connector ingests nothing",
        )

    def _process_delivery_whatsapp(self, payload):
        return self._process_delivery_meta(payload)

    def _process_delivery_messenger(self, payload):
        return self._process_delivery_meta(payload)

    def _process_delivery_instagram(self, payload):
        return self._process_delivery_meta(payload)

    def _process_delivery_meta(self, payload):
        """Job: each customer message to the hub through the channel of its account, each
        other event recorded (a failed or read WhatsApp status is reported to the hub)."""
        outcome = Counter()
        for event in channel_meta.parse_webhook(payload):
            channel = self._meta_route(event)
            if not channel:
                outcome["not routed"] += 1
            elif channel.meta_owner == "chatwoot":
                channel._skip_event(channel._chatwoot_owned())
                outcome["skipped"] += 1
            elif isinstance(event, InboundMessage):
                channel._deliver_meta_message(event)
                outcome["delivered"] += 1
            else:
                channel._meta_event(event)
                outcome["skipped"] += 1
        return ", ".join(f"{count} {what}" for what, count in sorted(outcome.items())) or "empty"

    def _meta_route(self, event):
        """The channel that receives ``event``'s account (one of this app), else an empty
        recordset (the event is logged)."""
        if isinstance(event, InboundMessage):
            platform = event.metadata.get("platform")
            account = event.metadata.get("account_id")
        else:
            platform, account = event.platform, event.account_id
        if platform != self.channel_type or not account:
            if isinstance(event, ChannelEvent):
                self._skip_event(event)
            else:
                _logger.warning(
                    "Channel %s: a %s message came to a %s channel: skipped",
                    self.id,
                    platform,
                    self.channel_type,
                )
            return self.browse()
        channel = self._sibling_channel(account)
        if not channel:
            _logger.warning(
                "Channel %s: no channel of this app receives %s account %s: event skipped",
                self.id,
                platform,
                account,
            )
        return channel

    def _deliver_meta_message(self, message):
        """One customer message to the hub. A WhatsApp customer first known by phone, then
        with a business-scoped user id, keeps their conversation: the hub files it under the
        new id from now on."""
        phone = message.metadata.get("wa_id")
        if self.channel_type == channel_meta.WHATSAPP and phone and phone != message.thread_id:
            self.env["mcp.conversation.hub"]._mcp_move_thread(self, phone, message.thread_id)
        return self._deliver_message(message)

    def _meta_event(self, event):
        """Record an event that is not a message; tell the hub how our messages fared."""
        status = event.detail.get("status") if event.kind == channel_meta.EVENT_STATUS else None
        if status in REPORTED_STATUSES:
            error = event.reason if status == "failed" else None
            hub = self.env["mcp.conversation.hub"]
            for message_id in event.message_ids:
                if not hub._mcp_delivery_status(self, message_id, status, error):
                    _logger.info(
                        "Channel %s: %s status of message %s, which the hub did not send",
                        self.id,
                        status,
                        message_id[:64],
                    )
        self._skip_event(event)

    # outbound ---------------------------------------------------------------------------------
    def _send_reply_whatsapp(self, thread_id, contact, text, attachments, metadata):
        return self._send_reply_meta(thread_id, contact, text, attachments, metadata)

    def _send_reply_messenger(self, thread_id, contact, text, attachments, metadata):
        return self._send_reply_meta(thread_id, contact, text, attachments, metadata)

    def _send_reply_instagram(self, thread_id, contact, text, attachments, metadata):
        return self._send_reply_meta(thread_id, contact, text, attachments, metadata)

    def _send_reply_meta(self, thread_id, contact, text, attachments, metadata):
        """Send a reply within the platform's reply window, split under its text limit.

        ``metadata``: ``last_customer_at`` (epoch seconds of the customer's last message: no
        reply without it), ``by_human`` (a person wrote it: Messenger and Instagram take it up
        to 7 days with the HUMAN_AGENT tag), ``parts_sent`` (parts of this reply sent by an
        earlier try: not sent again). Attachments go as links under the text.
        """
        if self.meta_owner == "chatwoot":
            raise ChannelSendError(
                self.env._(
                    "Channel %(channel)s is answered by Chatwoot's own inbox: the connector "
                    "sends nothing.",
                    channel=self.display_name,
                )
            )
        window = channel_meta.reply_window(
            self.channel_type,
            metadata.get("last_customer_at"),
            by_human=bool(metadata.get("by_human")),
        )
        if not window.allowed:
            raise ChannelSendError(self._window_refusal(window))
        links = [
            f"{item.get('name') or 'file'}: {item['url']}"
            for item in attachments
            if item.get("url")
        ]
        full_text = "\n".join([text, *links]) if links else text
        recipient = thread_id
        if self.channel_type == channel_meta.WHATSAPP and (contact or {}).get("phone"):
            recipient = contact["phone"]
        bodies = channel_meta.text_messages(self.channel_type, recipient, full_text, window)
        bodies = bodies[int(metadata.get("parts_sent") or 0) :]
        if not bodies:
            return {"external_id": None, "external_ids": []}
        node = self._meta_node()
        message_ids = self._meta_graph(lambda graph: graph.send_messages(node, bodies))
        return {"external_id": message_ids[0], "external_ids": message_ids}

    def _window_refusal(self, window):
        if window.template_required:
            return self.env._(
                "Not sent: more than 24 hours have passed since the customer's last message, "
                "and WhatsApp only accepts an approved template message now. A person must "
                "re-engage the customer with a template (tool whatsapp_send_template)."
            )
        return self.env._("Not sent: %(reason)s", reason=window.reason)

    def _meta_node(self):
        """Where the channel's messages are posted (``/{node}/messages``) and its Test reads."""
        self.ensure_one()
        if self.channel_type == channel_meta.INSTAGRAM and self.meta_instagram_login == "facebook":
            return "me"  # the Page of the Page token
        if not self.account_ref:
            raise ChannelSendError(
                self.env._("Channel %(channel)s has no account ID.", channel=self.display_name)
            )
        return self.account_ref

    def _meta_base_url(self):
        if self.api_base_url:
            return self.api_base_url
        if self.channel_type == channel_meta.INSTAGRAM and self.meta_instagram_login != "facebook":
            return channel_meta.INSTAGRAM_GRAPH_URL
        return channel_meta.FACEBOOK_GRAPH_URL

    def _meta_graph(self, call):
        """``call(graph_client)`` with the channel's token; a token Meta refuses (190) is
        renewed once (Instagram Login; a bearer token cannot be: the channel alerts)."""
        return self._with_access_token(lambda token: call(self._graph_client(token)))

    def _graph_client(self, token):
        return channel_meta.GraphClient(
            token,
            base_url=self._meta_base_url(),
            version=self.meta_graph_version or channel_meta.GRAPH_VERSION,
        )

    # test -------------------------------------------------------------------------------------
    def _test_whatsapp(self):
        return self._test_meta()

    def _test_messenger(self):
        return self._test_meta()

    def _test_instagram(self):
        return self._test_meta()

    def _test_meta(self):
        node = self._meta_node()
        wanted = TEST_FIELDS[self.channel_type]
        answer = self._meta_graph(lambda graph: graph.get_node(node, wanted))
        name = " ".join(str(answer[key]) for key in wanted if answer.get(key)) or answer.get("id")
        return self.env._(
            "The Graph API answered for %(account)s with this channel's token.",
            account=name or node,
        )

    # tools ------------------------------------------------------------------------------------
    def _meta_run_tool(self, name, arguments):
        """Run one of the channel's MCP tools; the MCP result."""
        if name == "meta_reply_window":
            last = self.env["mcp.conversation.hub"]._mcp_last_customer_at(
                self, arguments["thread_id"]
            )
            window = channel_meta.reply_window(self.channel_type, last)
            human = channel_meta.reply_window(self.channel_type, last, by_human=True)
            return _tool_result(
                {
                    "allowed": window.allowed,
                    "human_agent_allowed": human.allowed,
                    "template_required": window.template_required,
                    "reason": window.reason,
                    "last_customer_message_at": last,
                }
            )
        body = channel_meta.whatsapp_template_body(
            arguments["to"], arguments["name"], arguments["language"], arguments.get("parameters")
        )
        node = self._meta_node()
        try:
            message_id = self._meta_graph(lambda graph: graph.send_message(node, body))
        except ChannelSendError as exc:
            if exc.retryable:
                raise tool_calls.ToolUnavailable(exc.reason) from None
            return error_result(exc.reason)
        return _tool_result({"message_id": message_id})


def _tool_result(value):
    return {
        "isError": False,
        "content": [{"type": "text", "text": json.dumps(value, ensure_ascii=False)}],
        "structuredContent": value,
    }


class McpCredential(models.Model):
    """Instagram Login tokens: the long-lived user token (60 days) is renewed by exchanging
    itself; the credential keeps it as both its access and its refresh token."""

    _inherit = "mcp.credential"  # pylint: disable=consider-merging-classes-inherited

    oauth_provider = fields.Selection(
        selection_add=[("instagram", "Instagram Login")], ondelete={"instagram": "set default"}
    )

    def _oauth2_refresh_instagram(self, refresh_token):
        """Provider hook of Instagram Login: a long-lived token renews itself (unexpired, at
        least a day old) and is kept as both the access and the refresh token."""
        channel = self._channel_using(channel_meta.INSTAGRAM)
        base_url = channel.api_base_url or channel_meta.INSTAGRAM_GRAPH_URL

        def renew():
            token = channel_meta.refresh_instagram_token(refresh_token, base_url=base_url)
            return token["access_token"], token["access_token"], token["expires_at"]

        return self._channel_renewal(renew)


class McpServer(models.Model):
    """The MCP server of a WhatsApp, Messenger or Instagram channel: its tools for the agents."""

    _inherit = "mcp.server"  # pylint: disable=consider-merging-classes-inherited

    kind = fields.Selection(
        selection_add=[
            ("whatsapp", "Channel: WhatsApp"),
            ("messenger", "Channel: Facebook Messenger"),
            ("instagram", "Channel: Instagram Direct"),
        ],
        ondelete={"whatsapp": "cascade", "messenger": "cascade", "instagram": "cascade"},
    )

    def _mcp_builtin_tools_whatsapp(self):
        return [TEMPLATE_TOOL, REPLY_WINDOW_TOOL]

    def _mcp_builtin_tools_messenger(self):
        return [REPLY_WINDOW_TOOL]

    def _mcp_builtin_tools_instagram(self):
        return [REPLY_WINDOW_TOOL]

    def _mcp_run_whatsapp(self, tool, arguments):
        return self._platform_channel().sudo()._meta_run_tool(tool.remote_name, arguments)

    def _mcp_run_messenger(self, tool, arguments):
        return self._mcp_run_whatsapp(tool, arguments)

    def _mcp_run_instagram(self, tool, arguments):
        return self._mcp_run_whatsapp(tool, arguments)

    def _mcp_health_whatsapp(self):
        self._channel_health()

    def _mcp_health_messenger(self):
        self._channel_health()

    def _mcp_health_instagram(self):
        self._channel_health()
