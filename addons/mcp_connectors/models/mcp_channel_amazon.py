# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The Amazon channel: buyer messages come by e-mail (Odoo's incoming mail), replies go by
e-mail from the seller's authorised address, and SP-API Messaging sends the templated order
messages (the channel's MCP tools). The wire logic is ``services/channel_amazon.py``."""

import base64
import logging
import smtplib
from datetime import datetime, timezone

from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL
from odoo.tools.mail import email_normalize, email_split

from odoo.addons.base.models.ir_mail_server import MailDeliveryException
from odoo.addons.mcp_integrator.services import tool_calls

from ..services import channel_amazon
from ..services.channels import (
    ChannelSendError,
    InboundAnswer,
    InboundRejected,
    ReauthorizationRequired,
    SkippedEvent,
    clean_reason,
)
from ..services.odoo_tool_catalog import error_result

_logger = logging.getLogger(__name__)

AMAZON = "amazon"


class McpChannel(models.Model):
    _inherit = "mcp.channel"  # pylint: disable=consider-merging-classes-inherited

    channel_type = fields.Selection(
        selection_add=[(AMAZON, "Amazon")], ondelete={AMAZON: "cascade"}
    )
    amazon_sender_address = fields.Char(
        string="Authorised Sender",
        help="The address the replies to buyers are sent from. Amazon rejects mail from any "
        "address not listed in Seller Central > Settings > Notification Preferences > "
        "Messaging Permissions; an outgoing mail server of Odoo must be allowed to send from it "
        "(its FROM filtering), or Odoo would rewrite the sender.",
    )
    amazon_own_addresses = fields.Char(
        string="Other Seller Addresses",
        help="Other addresses of the seller, comma-separated: mail from them (and from the "
        "mailbox and the authorised sender) is a copy of the seller's own messages, never "
        "answered.",
    )
    amazon_marketplace_id = fields.Char(
        string="Marketplace ID",
        default=channel_amazon.MARKETPLACE_BRAZIL,
        help="The SP-API marketplace of the seller's orders (Amazon.com.br: A2Q3Y263D00KWC).",
    )
    amazon_region = fields.Selection(
        [("na", "North America and Brazil"), ("eu", "Europe"), ("fe", "Far East")],
        string="SP-API Region",
        default="na",
        help="The SP-API host of the marketplace's region (Brazil is served by North "
        "America). The API Base URL, when set, replaces it.",
    )

    @api.model_create_multi
    def create(self, vals_list):
        return super().create([_lower_mailbox(vals) for vals in vals_list])

    def write(self, vals):
        return super().write(_lower_mailbox(vals))

    @api.constrains("channel_type", "account_ref", "amazon_sender_address")
    def _check_amazon_addresses(self):
        for channel in self.filtered(lambda channel: channel.channel_type == AMAZON):
            for value in (channel.account_ref, channel.amazon_sender_address):
                if value and not email_normalize(value):
                    raise ValidationError(
                        self.env._(
                            "Channel %(channel)s: %(value)s is not an e-mail address.",
                            channel=channel.display_name,
                            value=value,
                        )
                    )

    # inbound: the mail gateway -----------------------------------------------------------------
    def _inbound_amazon(self, request):
        return InboundAnswer.refused(
            InboundRejected(404, "Amazon buyer messages arrive by e-mail, not at this URL")
        )

    @api.model
    def _receive_amazon_email(self, message, channel_ids=(), required=True):
        """Queue a mail of a seller mailbox for the Amazon channel of that mailbox (the one
        whose address is among the recipients; else the channel an alias forces); it is never
        posted on the channel. Called by the mail gateway for every route to ``mcp.channel``.

        :param message: the ``email.message.EmailMessage`` the gateway parsed
        :param channel_ids: the channels the routes name (an alias forcing its record)
        :param required: raise when no channel takes the mail (nothing else took it either)
        :raise ValueError: like the gateway for mail it cannot route: fetchmail counts it as
            failed and logs it, the mailgate script reports it to the mail server
        :return: the channels that queued it
        """
        raw = message.as_bytes()
        recipients, message_id = channel_amazon.email_routing(raw)
        amazon = self.sudo().search(
            [
                ("channel_type", "=", AMAZON),
                ("account_ref", "in", recipients),
                ("tenant_id.active", "=", True),
            ]
        ) or self.sudo().browse(channel_ids).exists().filtered(
            lambda channel: (
                channel.channel_type == AMAZON and channel.active and channel.tenant_id.active
            )
        )
        if not amazon:
            _logger.warning(
                "Mail %s to %s: no active Amazon channel receives these addresses; it stays "
                "in the mailbox (and in Seller Central)",
                message_id[:100],
                ", ".join(recipients)[:300],
            )
            if required:
                raise ValueError(
                    f"No Amazon channel receives mail for {', '.join(recipients)[:300]} "
                    f"(Message-Id {message_id[:100]})"
                )
            return amazon
        payload = {"email": base64.b64encode(raw).decode("ascii")}
        for channel in amazon:
            channel._enqueue_delivery(payload, message_id)
        return amazon

    def _process_delivery_amazon(self, payload):
        """Job: a buyer's message to the hub; a bounce, an auto-reply, a copy of the seller's
        own mail, Amazon's notices and other mail are logged, never answered."""
        event = channel_amazon.parse_email(
            base64.b64decode(payload["email"]), seller_addresses=self._amazon_own_addresses()
        )
        if isinstance(event, SkippedEvent):
            self._skip_event(event)
            return f"skipped ({event.kind})"
        self._deliver_message(event)
        self.env["mcp.channel.amazon.thread"]._remember(self, event)
        return f"delivered (thread {event.thread_id})"

    def _amazon_own_addresses(self):
        self.ensure_one()
        addresses = [self.account_ref, self.amazon_sender_address, self.amazon_own_addresses]
        return [
            email_normalize(address)
            for value in addresses
            if value
            for address in email_split(value)
            if email_normalize(address)
        ]

    @api.model
    def _detect_loop_sender_domain(self, email_from_normalized):
        # buyer mail never creates a channel: there is no loop of created records to detect
        return None

    # outbound: e-mail ----------------------------------------------------------------------------
    def _send_reply_amazon(self, thread_id, contact, text, attachments, metadata):
        """Send the reply by e-mail from the authorised address to the buyer's alias, in the
        thread of the buyer's last mail (``In-Reply-To``, ``References``, its subject)."""
        text, files = channel_amazon.reply_content(text, attachments)
        channel_amazon.check_reply_text(text)
        last = self.env["mcp.channel.amazon.thread"]._last_mail(self, thread_id)
        is_order = bool(channel_amazon.ORDER_ID.fullmatch(thread_id or ""))
        reply = channel_amazon.build_reply(
            self.amazon_sender_address,
            contact.get("email") or contact.get("id"),
            text,
            subject=last.subject or None,
            in_reply_to=last.message_id or None,
            references=(last.references_header or "").split(),
            order_id=last.order_id or (thread_id if is_order else None),
            attachments=files,
        )
        try:
            self.env["ir.mail_server"].sudo().send_email(reply)
        except AssertionError as exc:  # the mailer refuses the sender or the recipients
            raise ChannelSendError(
                self.env._(
                    "The reply cannot be sent by e-mail: %(reason)s",
                    reason=clean_reason(str(exc.args[0] if exc.args else exc)),
                )
            ) from None
        except (MailDeliveryException, smtplib.SMTPException, OSError) as exc:
            raise ChannelSendError(
                self.env._(
                    "The outgoing mail server did not take the reply (%(error)s).",
                    error=type(exc).__name__,
                ),
                retryable=True,
            ) from None
        return {"external_id": reply["Message-ID"]}

    # SP-API ------------------------------------------------------------------------------------
    def _amazon_client(self):
        self.ensure_one()
        return channel_amazon.AmazonMessagingClient(
            self.api_base_url or channel_amazon.SP_API_HOSTS[self.amazon_region or "na"]
        )

    def _amazon_sp_api(self, call):
        """``call(client, access_token)`` with the channel's access token; a token SP-API
        refuses is renewed once and the call made once more."""
        client = self._amazon_client()
        return self._with_access_token(lambda token: call(client, token))

    def _amazon_messaging_actions(self, order_id):
        marketplace = self.amazon_marketplace_id

        def actions(client, token):
            return {
                "order_id": order_id,
                "message_types": client.get_actions(token, order_id, marketplace),
                "buyer_locale": client.get_buyer_locale(token, order_id, marketplace),
            }

        return self._amazon_sp_api(actions)

    def _amazon_send_order_message(self, order_id, message_type, text):
        """Send one templated message, when the order allows its type now."""
        marketplace = self.amazon_marketplace_id

        def send(client, token):
            allowed = client.get_actions(token, order_id, marketplace)
            if message_type not in allowed:
                raise ChannelSendError(
                    self.env._(
                        "Amazon does not allow a %(type)s message for order %(order)s now; "
                        "allowed: %(allowed)s.",
                        type=message_type,
                        order=order_id,
                        allowed=", ".join(allowed) or self.env._("none"),
                    )
                )
            client.send_message(token, order_id, marketplace, message_type, text)
            return {"order_id": order_id, "message_type": message_type, "sent": True}

        return self._amazon_sp_api(send)

    def _test_amazon(self):
        """Renew the LWA token, then ask SP-API which marketplaces the seller sells in."""
        token = self._renew_access_token()
        participations = self._amazon_client().get_marketplace_participations(token)
        marketplace = next(
            (item for item in participations if item["id"] == self.amazon_marketplace_id), None
        )
        if not marketplace or not marketplace["participating"]:
            raise ChannelSendError(
                self.env._(
                    "SP-API answered, but the seller does not sell in marketplace %(id)s "
                    "(sells in: %(others)s).",
                    id=self.amazon_marketplace_id,
                    others=", ".join(item["id"] for item in participations if item["participating"])
                    or self.env._("none"),
                )
            )
        return self.env._(
            "Login with Amazon renewed the access token; SP-API answered: the seller sells in "
            "%(name)s (%(id)s).",
            name=marketplace["name"],
            id=marketplace["id"],
        )


def _lower_mailbox(vals):
    """An e-mail account reference (the Amazon mailbox) is kept lower-case: the gateway
    matches it against lower-cased recipients."""
    account_ref = vals.get("account_ref")
    if isinstance(account_ref, str) and "@" in account_ref:
        return {**vals, "account_ref": account_ref.strip().lower()}
    return vals


class McpChannelAmazonThread(models.Model):
    """The last buyer mail of each Amazon thread (an order, or a buyer writing about none): the
    reply goes in its e-mail thread, with its subject."""

    _name = "mcp.channel.amazon.thread"
    _description = "Amazon Buyer E-mail Thread"
    _rec_name = "thread_ref"

    channel_id = fields.Many2one("mcp.channel", required=True, index=True, ondelete="cascade")
    thread_ref = fields.Char(required=True, help="The order id, or the buyer's alias.")
    order_id = fields.Char()
    message_id = fields.Char(required=True, help="Message-ID of the buyer's last mail.")
    subject = fields.Char()
    references_header = fields.Char(help="The References of the buyer's last mail.")
    received_at = fields.Datetime(required=True, help="The Date of the buyer's last mail.")

    _thread_uniq = models.Constraint(
        "UNIQUE(channel_id, thread_ref)", "An Amazon thread is kept once per channel."
    )

    @api.model
    def _remember(self, channel, message):
        """Keep ``message`` as the thread's last mail, unless a later one is kept already (a
        mail fetched late does not take the thread back in time); one statement, so that two
        mails of a thread delivered at once do not collide."""
        metadata = message.metadata
        received_at = _utc(metadata.get("date")) or fields.Datetime.now()
        self.env.cr.execute(
            SQL(
                """INSERT INTO mcp_channel_amazon_thread AS thread
                       (channel_id, thread_ref, order_id, message_id, subject, references_header,
                        received_at, create_uid, create_date, write_uid, write_date)
                   VALUES (%(channel)s, %(thread)s, %(order)s, %(message)s, %(subject)s,
                           %(references)s, %(received)s, %(uid)s, now() at time zone 'UTC',
                           %(uid)s, now() at time zone 'UTC')
                   ON CONFLICT (channel_id, thread_ref) DO UPDATE SET
                       order_id = EXCLUDED.order_id, message_id = EXCLUDED.message_id,
                       subject = EXCLUDED.subject,
                       references_header = EXCLUDED.references_header,
                       received_at = EXCLUDED.received_at, write_uid = EXCLUDED.write_uid,
                       write_date = EXCLUDED.write_date
                   WHERE thread.received_at <= EXCLUDED.received_at""",
                channel=channel.id,
                thread=message.thread_id,
                order=metadata.get("order_id"),
                message=message.message_id,
                subject=metadata.get("subject") or None,
                references=" ".join([*metadata.get("references", []), message.message_id]),
                received=received_at,
                uid=self.env.uid,
            )
        )
        self.invalidate_model()

    @api.model
    def _last_mail(self, channel, thread_ref):
        return self.sudo().search(
            [("channel_id", "=", channel.id), ("thread_ref", "=", thread_ref)], limit=1
        )


def _utc(moment):
    """The naive UTC datetime of an ISO 8601 moment with its offset, or None."""
    try:
        parsed = datetime.fromisoformat(moment)
    except (TypeError, ValueError):
        return None
    return parsed.astimezone(timezone.utc).replace(tzinfo=None)


class McpCredential(models.Model):
    _inherit = "mcp.credential"  # pylint: disable=consider-merging-classes-inherited

    oauth_provider = fields.Selection(
        selection_add=[("amazon_lwa", "Login with Amazon (SP-API)")],
        ondelete={"amazon_lwa": "set default"},
    )

    def _oauth2_refresh_amazon_lwa(self, refresh_token):
        """Provider hook of Login with Amazon: the client id and secret are the SP-API app's
        LWA credentials; the token URL, when empty, is Amazon's."""
        client = channel_amazon.LwaClient(
            self.client_id,
            self.sudo().secret,
            token_url=self.token_url or channel_amazon.LWA_TOKEN_URL,
        )

        def renew():
            token = client.refresh(refresh_token)
            return token.access_token, token.refresh_token, token.expires_at

        return self._channel_renewal(renew)


class McpServer(models.Model):
    """The Amazon channel's MCP server: SP-API Messaging for the agents."""

    _inherit = "mcp.server"  # pylint: disable=consider-merging-classes-inherited

    kind = fields.Selection(
        selection_add=[(AMAZON, "Channel: Amazon")], ondelete={AMAZON: "cascade"}
    )

    def _mcp_builtin_tools_amazon(self):
        return channel_amazon.tool_descriptors()

    def _mcp_run_amazon(self, tool, arguments):
        channel = self._platform_channel().sudo()
        try:
            if tool.remote_name == channel_amazon.ACTIONS_TOOL:
                return channel._amazon_messaging_actions(arguments["order_id"])
            if tool.remote_name == channel_amazon.SEND_TOOL:
                return channel._amazon_send_order_message(
                    arguments["order_id"], arguments["message_type"], arguments["text"]
                )
        except ChannelSendError as exc:
            if exc.status == 429:  # not taken: asking again later is safe, even for a send
                wait = f" (retry after {exc.retry_after} s)" if exc.retry_after else ""
                raise tool_calls.TransientToolError(exc.reason + wait) from None
            if exc.retryable:  # a send may have been taken: not repeated blindly
                raise tool_calls.ToolUnavailable(exc.reason) from None
            if isinstance(exc, ReauthorizationRequired) or exc.status == 403:
                raise tool_calls.PermanentToolError(exc.reason) from None
            return error_result(exc.reason)  # the order, the type or the text: the model fixes it
        raise tool_calls.ToolNotFound(
            self.env._("Amazon has no tool %(tool)s.", tool=tool.remote_name)
        )

    def _mcp_health_amazon(self):
        self._channel_health()
