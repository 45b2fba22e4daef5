# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
import secrets

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from odoo.addons.mcp_integrator.models.mcp_tenant import McpConfigMixin
from odoo.addons.mcp_integrator.services import signing

from ..services import channels
from ..services.channels import ChannelSendError

_logger = logging.getLogger(__name__)

INBOUND_PATH = "/mcp/channel/"
TOKEN_BYTES = 32
MAX_ERROR_LENGTH = 500
# Health of the channel, written on every message: state, not configuration (no audit row, no
# cache invalidation).
STATE_FIELDS = frozenset({"last_received_at", "last_sent_at", "last_error"})


class McpChannel(models.Model):
    """A channel connector: where a tenant's customers write from, when Chatwoot lacks it.

    Messages received on the channel go to the conversation hub (``mcp.integrator.ingest``,
    through :meth:`_receive`); replies of the agents and of the AI come back through
    :meth:`send_reply`. Each ``channel_type`` implements
    ``_send_reply_<channel_type>(thread_id, contact, text, attachments, metadata)``, which
    returns ``{"external_id": ...}`` or raises ``ChannelSendError``, and its inbound route.
    """

    _name = "mcp.channel"
    _inherit = "mcp.config.mixin"
    _description = "AI Channel Connector"
    _order = "tenant_id, name, id"
    _check_company_auto = True
    _mcp_secret_fields = ("inbound_token",)

    name = fields.Char(required=True)
    active = fields.Boolean(default=True)
    # no check_company: the channel's company is the tenant's, so a company domain on the
    # tenant would hide every tenant from a new channel
    tenant_id = fields.Many2one("mcp.tenant", required=True, index=True, ondelete="restrict")
    company_id = fields.Many2one(related="tenant_id.company_id", store=True, index=True)
    channel_type = fields.Selection(
        [("webhook", "Custom (signed webhooks)")],
        required=True,
        default="webhook",
    )
    # the UNIQUE constraint's index serves the lookups by token
    inbound_token = fields.Char(readonly=True, copy=False)
    inbound_url = fields.Char(
        string="Inbound URL",
        compute="_compute_inbound_url",
        help="Where the channel posts the messages it receives.",
    )
    signing_credential_id = fields.Many2one(
        "mcp.credential",
        string="Signing Secret",
        check_company=True,
        domain="[('kind', '=', 'hmac'), ('tenant_id', 'in', [tenant_id, False])]",
        help="HMAC signing secret shared with the channel: it signs the messages the channel "
        "sends and the replies sent to it. Without it every message is refused.",
    )
    reply_url = fields.Char(
        string="Reply URL",
        help="Where replies are posted (http:// or https://), signed with the signing secret.",
    )
    last_received_at = fields.Datetime(string="Last Received", readonly=True, copy=False)
    last_sent_at = fields.Datetime(string="Last Sent", readonly=True, copy=False)
    last_error = fields.Char(readonly=True, copy=False)

    _inbound_token_uniq = models.Constraint(
        "UNIQUE(inbound_token)", "Inbound tokens of channels must be unique."
    )

    @api.depends("inbound_token")
    def _compute_inbound_url(self):
        for channel in self:
            channel.inbound_url = (
                f"{channel.get_base_url()}{INBOUND_PATH}{channel.inbound_token}"
                if channel.inbound_token
                else False
            )

    @api.constrains("channel_type", "reply_url")
    def _check_reply_url(self):
        problems = {
            channels.REPLY_URL_MISSING: self.env._("Channel %(channel)s needs a reply URL."),
            channels.REPLY_URL_TOO_LONG: self.env._(
                "Channel %(channel)s: the reply URL is longer than %(length)s characters."
            ),
            channels.REPLY_URL_NOT_WEB: self.env._(
                "Channel %(channel)s: the reply URL must be an http:// or https:// address."
            ),
        }
        for channel in self:
            if channel.channel_type != "webhook" and not channel.reply_url:
                continue
            problem = channels.check_reply_url(channel.reply_url)
            if problem:
                raise ValidationError(
                    problems[problem]
                    % {"channel": channel.display_name, "length": channels.MAX_URL_LENGTH}
                )

    @api.constrains("signing_credential_id", "tenant_id")
    def _check_signing_credential(self):
        for channel in self:
            credential = channel.sudo().signing_credential_id
            if not credential:
                continue
            if credential.kind != "hmac":
                raise ValidationError(
                    self.env._(
                        "Channel %(channel)s: the signing secret must be a credential of kind "
                        "HMAC Signing Secret.",
                        channel=channel.display_name,
                    )
                )
            if credential.tenant_id and credential.tenant_id != channel.tenant_id:
                raise ValidationError(
                    self.env._(
                        "Channel %(channel)s: credential %(credential)s belongs to another tenant.",
                        channel=channel.display_name,
                        credential=credential.display_name,
                    )
                )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            vals["inbound_token"] = secrets.token_urlsafe(TOKEN_BYTES)
        return super().create(vals_list)

    def write(self, vals):
        if set(vals) <= STATE_FIELDS:
            # what the channel did, not how it is configured: no audit row, no invalidation
            return super(McpConfigMixin, self).write(vals)
        return super().write(vals)

    # configuration changes ------------------------------------------------------------------
    def _mcp_tenants(self):
        return self.tenant_id

    def _mcp_cache_resource(self):
        return "mcp_channel", self.id

    # buttons ----------------------------------------------------------------------------------
    def action_regenerate_token(self):
        """Button: a new inbound URL; the old one stops working at once."""
        self.check_access("write")
        for channel in self:
            channel.inbound_token = secrets.token_urlsafe(TOKEN_BYTES)
        _logger.info("Inbound URL of channels %s regenerated by %s", self.ids, self.env.user.login)
        return True

    # messages ---------------------------------------------------------------------------------
    def send_reply(self, thread_id, contact, text, attachments=None, metadata=None):
        """Deliver a reply to the customer on the channel.

        Called by the conversation hub (in a retried job) for the replies of agents and AI.

        :param thread_id: the conversation's id on the channel, as received
        :param contact: the customer, as received (``{"id", "name", "phone", "email"}``)
        :param attachments: ``[{"name", "mimetype", "url"} | {"name", "mimetype", "data"}]``
        :param metadata: small JSON-serialisable details for the channel
        :return: ``{"external_id": <the message's id on the channel, or None>}``
        :raise ChannelSendError: with ``retryable`` (try again later, after ``retry_after``
            seconds when given) and a ``reason`` free of secrets
        """
        self.ensure_one()
        try:
            if not self.active:
                raise ChannelSendError(
                    self.env._("Channel %(channel)s is archived.", channel=self.display_name)
                )
            sender = getattr(self, f"_send_reply_{self.channel_type}", None)
            if sender is None:
                raise ChannelSendError(
                    self.env._(
                        "Channel %(channel)s cannot send replies (type %(type)s).",
                        channel=self.display_name,
                        type=self.channel_type,
                    )
                )
            result = sender(thread_id, contact, text, list(attachments or []), metadata or {})
        except ChannelSendError as exc:
            self.sudo().write({"last_error": exc.reason[:MAX_ERROR_LENGTH]})
            raise
        # the health of the channel, whoever sends (the hub's job may run as any user)
        self.sudo().write({"last_sent_at": fields.Datetime.now(), "last_error": False})
        return result

    def _send_reply_webhook(self, thread_id, contact, text, attachments, metadata):
        """POST the reply as signed JSON to the reply URL."""
        secret = self._signing_secret()
        if not secret:
            raise ChannelSendError(
                self.env._(
                    "Channel %(channel)s has no signing secret: replies are not sent unsigned.",
                    channel=self.display_name,
                )
            )
        if not self.reply_url:
            raise ChannelSendError(
                self.env._("Channel %(channel)s has no reply URL.", channel=self.display_name)
            )
        body = channels.reply_body(thread_id, contact, text, attachments, metadata)
        return channels.post_signed(
            self.reply_url, body, secret, signing.sign, delivery=metadata.get("delivery_id")
        )

    def _signing_secret(self):
        """The secret of the signing credential, or None (no credential, or no secret set)."""
        self.ensure_one()
        credential = self.signing_credential_id
        if not credential:
            return None
        return credential._get_secret_values().get("secret") or None

    def _receive(self, thread_id, contact, text, attachments=None, metadata=None, message_id=None):
        """Hand a message received on the channel to the conversation hub.

        :return: the hub's record of the message
        :raise UserError: when no hub can take it (none installed, or no inbox for the channel)
        """
        self.ensure_one()
        record = self.env["mcp.integrator"].ingest(
            self.tenant_id,
            self,
            thread_id,
            contact,
            text,
            attachments=attachments,
            metadata=metadata,
            message_id=message_id,
        )
        self.sudo().write({"last_received_at": fields.Datetime.now()})
        return record
