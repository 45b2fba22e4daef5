# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
import secrets
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from odoo.addons.mcp_integrator.models.mcp_tenant import McpConfigMixin
from odoo.addons.mcp_integrator.services import signing
from odoo.addons.queue_job.exception import RetryableJobError

from ..services import channels
from ..services.channels import AccessTokenRejected, ChannelSendError, ReauthorizationRequired

_logger = logging.getLogger(__name__)

INBOUND_PATH = "/mcp/channel/"
TOKEN_BYTES = 32
MAX_ERROR_LENGTH = 500
# Health of the channel, written on every message: state, not configuration (no audit row, no
# cache invalidation).
STATE_FIELDS = frozenset(
    {
        "last_received_at",
        "last_sent_at",
        "last_error",
        "reauthorization_needed",
        "reauthorization_reason",
    }
)
# Seconds before a delivery job tries again when the hub could not take a message (no inbox
# mapped yet, Chatwoot account archived): the platform was answered, so the job keeps it.
HUB_RETRY_SECONDS = 300
# Renewed ahead by the cron when a token expires within this margin (the hourly cron plus the
# platform's slowest answer must fit in it).
TOKEN_RENEWAL_MARGIN = timedelta(hours=2)
HEALTH_WRITE_INTERVAL = timedelta(minutes=1)
MAX_DELIVERY_TRIES = 20
LOGGED_ID_LENGTH = 64


class McpChannel(models.Model):
    """A channel connector: where a tenant's customers write from.

    Messages received on the channel go to the conversation hub (``mcp.integrator.ingest``,
    through :meth:`_receive`); replies of the agents and of the AI come back through
    :meth:`send_reply`. Each ``channel_type`` implements
    ``_send_reply_<channel_type>(thread_id, contact, text, attachments, metadata)``, which
    returns ``{"external_id": ...}`` or raises ``ChannelSendError``.

    Platform channels (WhatsApp, Mercado Livre...) also implement, in their own file:

    - ``_inbound_<type>(request)``: what their inbound URL answers to an
      :class:`~..services.channels.InboundRequest` (handshake, signature, acknowledgement);
      the work goes to a job through :meth:`_enqueue_delivery`;
    - ``_process_delivery_<type>(payload)``: that job, which hands each customer message to
      :meth:`_deliver_message` and each other event to :meth:`_skip_event`;
    - ``_test_<type>()``: the *Test* button, one cheap authenticated call to the platform.

    Each platform channel is also an ``mcp.server`` of its kind (``server_id``, created with
    the channel), through which the agents use the platform's tools.
    """

    _name = "mcp.channel"
    _inherit = ("mcp.config.mixin", "mail.thread", "mail.activity.mixin")
    _description = "AI Channel Connector"
    _order = "tenant_id, name, id"
    _check_company_auto = True
    _mcp_secret_fields = ("inbound_token", "authorization_pending")

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
    server_id = fields.Many2one(
        "mcp.server",
        string="MCP Server",
        readonly=True,
        copy=False,
        ondelete="set null",
        help="The MCP server of the channel's kind, created with it: its tools let the agents "
        "act on the platform.",
    )
    account_ref = fields.Char(
        string="Account ID",
        index=True,
        copy=False,
        help="The tenant's account on the platform, as its webhooks name it: the WhatsApp "
        "phone number ID, the Facebook page ID, the Instagram account ID, the Mercado Livre "
        "seller ID, the Shopee shop ID, or the Amazon seller mailbox.",
    )
    access_credential_id = fields.Many2one(
        "mcp.credential",
        check_company=True,
        domain="[('kind', 'in', ('oauth2', 'bearer')), ('tenant_id', 'in', [tenant_id, False])]",
        help="The platform's API access: a bearer token, or OAuth 2.0 tokens that are renewed "
        "before they expire.",
    )
    api_base_url = fields.Char(
        string="API Base URL",
        help="The platform's API address; empty for the platform's default (a sandbox or "
        "another region's host goes here).",
    )
    reauthorization_needed = fields.Boolean(readonly=True, copy=False)
    reauthorization_reason = fields.Char(readonly=True, copy=False)
    last_received_at = fields.Datetime(string="Last Received", readonly=True, copy=False)
    last_sent_at = fields.Datetime(string="Last Sent", readonly=True, copy=False)
    last_error = fields.Char(readonly=True, copy=False)

    _inbound_token_uniq = models.Constraint(
        "UNIQUE(inbound_token)", "Inbound tokens of channels must be unique."
    )
    # a platform's webhook names the account only: two channels of one account would make its
    # messages ambiguous (NULLs are distinct: custom channels have none)
    _account_ref_uniq = models.Constraint(
        "UNIQUE(channel_type, account_ref)",
        "Another channel of this type already receives this platform account.",
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

    @api.constrains("signing_credential_id", "access_credential_id", "tenant_id")
    def _check_credentials(self):
        for channel in self.sudo():
            signing = channel.signing_credential_id
            if signing and signing.kind != "hmac":
                raise ValidationError(
                    self.env._(
                        "Channel %(channel)s: the signing secret must be a credential of kind "
                        "HMAC Signing Secret.",
                        channel=channel.display_name,
                    )
                )
            for credential in signing | channel.access_credential_id:
                if credential.tenant_id and credential.tenant_id != channel.tenant_id:
                    raise ValidationError(
                        self.env._(
                            "Channel %(channel)s: credential %(credential)s belongs to another "
                            "tenant.",
                            channel=channel.display_name,
                            credential=credential.display_name,
                        )
                    )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            vals["inbound_token"] = secrets.token_urlsafe(TOKEN_BYTES)
        channels_created = super().create(vals_list)
        channels_created._create_servers()
        return channels_created

    def _create_servers(self):
        """The ``mcp.server`` of each platform channel's kind (custom channels have none)."""
        kinds = dict(self.env["mcp.server"]._fields["kind"].selection)
        for channel in self.filtered(lambda channel: channel.channel_type in kinds):
            channel.server_id = (
                self.env["mcp.server"]
                .sudo()
                .create(
                    {
                        "name": channel.name,
                        "code": f"{channel.channel_type}_{channel.id}",
                        "kind": channel.channel_type,
                        "tenant_id": channel.tenant_id.id,
                    }
                )
            )

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
    def action_test(self):
        """Button: one authenticated call to the platform; says what works or what does not."""
        self.ensure_one()
        self.check_access("write")
        tester = getattr(self, f"_test_{self.channel_type}", None)
        if tester is None:
            raise UserError(
                self.env._(
                    "Channel %(channel)s has nothing to test (type %(type)s).",
                    channel=self.display_name,
                    type=self.channel_type,
                )
            )
        try:
            summary = tester()
        except ReauthorizationRequired as exc:
            # not an error dialog: its rollback would take the alert back
            self._alert_reauthorization(exc.reason)
            return _notification(
                self.env._("Test of %(channel)s failed", channel=self.display_name),
                self.env._("Authorize the channel again: %(reason)s", reason=exc.reason),
                "danger",
                reload=True,
            )
        except ChannelSendError as exc:
            raise UserError(
                self.env._(
                    "Test of %(channel)s failed: %(reason)s",
                    channel=self.display_name,
                    reason=exc.reason,
                )
            ) from None
        cleared = self.reauthorization_needed
        self._clear_reauthorization()
        return _notification(
            self.env._("Test of %(channel)s passed", channel=self.display_name),
            summary,
            "success",
            reload=cleared,
        )

    def action_regenerate_token(self):
        """Button: a new inbound URL; the old one stops working at once."""
        self.check_access("write")
        for channel in self:
            channel.inbound_token = secrets.token_urlsafe(TOKEN_BYTES)
        _logger.info("Inbound URL of channels %s regenerated by %s", self.ids, self.env.user.login)
        return True

    def action_open_server(self):
        """Button: the channel's MCP server (its tools for the agents)."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": "mcp.server",
            "res_id": self.server_id.id,
            "view_mode": "form",
        }

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
        now = fields.Datetime.now()
        # health, not a log: every message of a busy channel writing this row would make the
        # channel's delivery jobs wait on each other
        if not self.last_received_at or now - self.last_received_at >= HEALTH_WRITE_INTERVAL:
            self.sudo().write({"last_received_at": now})
        return record

    # platform channels ------------------------------------------------------------------------
    def _inbound(self, request):
        """The answer of the inbound URL of a platform channel (see the class docstring)."""
        self.ensure_one()
        return getattr(self, f"_inbound_{self.channel_type}")(request)

    def _enqueue_delivery(self, payload, identity, eta=None, description=None):
        """Queue the work of one platform delivery, so that the platform is answered at once.

        :param payload: JSON-serialisable content of the delivery (never a secret)
        :param identity: the delivery's key on the platform: a copy still waiting is not
            queued twice (the hub's message ids catch the copies that come later)
        :param eta: seconds to wait before the job runs
        """
        self.ensure_one()
        # a job's creation tracks no field: nothing to compute for its chatter
        return (
            self.with_context(tracking_disable=True)
            .with_delay(
                eta=eta,
                max_retries=MAX_DELIVERY_TRIES,
                identity_key=self._delivery_identity_key(identity),
                description=description
                or self.env._("Message delivery of %(channel)s", channel=self.display_name),
            )
            ._process_delivery(payload)
        )

    def _delivery_identity_key(self, identity):
        return f"mcp.channel.delivery:{self.id}:{identity}"

    def _delivery_known(self, identity):
        """Whether a job of this delivery exists, whatever its state (a platform that lists
        its undelivered notifications for days must not have them queued on every read)."""
        key = self._delivery_identity_key(identity)
        return bool(self.env["queue.job"].sudo().search_count([("identity_key", "=", key)]))

    def _process_delivery(self, payload):
        """Job: the platform delivery's messages to the hub, its other events recorded."""
        self.ensure_one()
        return getattr(self, f"_process_delivery_{self.channel_type}")(payload)

    def _hand_to_hub(self, message):
        """Hand one customer's :class:`~..services.channels.InboundMessage` to the hub; what
        the hub wrote before refusing goes with its refusal.

        :raise UserError: the hub cannot take it (none installed, no inbox for the channel)
        """
        self.ensure_one()
        try:
            with self.env.cr.savepoint():
                return self._receive(
                    message.thread_id,
                    message.contact,
                    message.text,
                    attachments=message.attachments,
                    metadata=message.metadata,
                    message_id=message.message_id,
                )
        except UserError as exc:
            _logger.warning(
                "Channel %s: message %r of thread %r not taken by the hub: %s",
                self.id,
                (message.message_id or "")[:LOGGED_ID_LENGTH],
                (message.thread_id or "")[:LOGGED_ID_LENGTH],
                exc,
            )
            raise

    def _deliver_message(self, message):
        """:meth:`_hand_to_hub` in a delivery job: when the hub cannot take the message yet,
        the job tries again later (the platform was already answered: the job is where the
        message is kept)."""
        try:
            return self._hand_to_hub(message)
        except UserError as exc:
            raise RetryableJobError(str(exc), seconds=HUB_RETRY_SECONDS) from None

    def _skip_event(self, event):
        """Record an event that is not a customer's message (an echo, a status, a receipt):
        it is logged, never answered."""
        _logger.info(
            "Channel %s: %s event not answered: %s", self.id or "-", event.kind, event.reason
        )

    def _sibling_channel(self, account_ref):
        """The active channel of this type that receives ``account_ref``, when it shares this
        channel's app (signing secret), else an empty recordset: a platform app may serve
        several accounts through one inbound URL, never another app's."""
        self.ensure_one()
        if account_ref == self.account_ref:
            return self
        sibling = self.sudo().search(
            [
                ("channel_type", "=", self.channel_type),
                ("account_ref", "=", account_ref),
                ("tenant_id.active", "=", True),
            ],
            limit=1,
        )
        if sibling and sibling._app_key() == self._app_key():
            return sibling
        return self.browse()

    def _app_key(self):
        """What identifies the platform app of the channel (the app secret by default)."""
        return self.sudo().signing_credential_id.id

    def _access_token(self):
        """A valid access token of the channel's access credential.

        :raise ReauthorizationRequired: the platform refused the authorization for good (the
            channel raises an alert)
        :raise ChannelSendError: retryable when the renewal may work later
        """
        self.ensure_one()
        credential = self.sudo().access_credential_id
        if not credential:
            raise ChannelSendError(
                self.env._(
                    "Channel %(channel)s has no access credential.", channel=self.display_name
                )
            )
        if credential.kind == "bearer":
            token = credential._get_secret_values()["token"]
            if not token:
                raise ChannelSendError(
                    self.env._(
                        "The access credential of %(channel)s has no token.",
                        channel=self.display_name,
                    )
                )
            return token
        try:
            return credential._get_access_token()
        except UserError as exc:
            return self._renewal_failed(credential, exc)

    def _with_access_token(self, call):
        """``call(access_token)`` with the channel's token. A token the platform refuses
        (``AccessTokenRejected``) is renewed once and the call made again; an authorization it
        refuses for good (``ReauthorizationRequired``) raises the channel's alert."""
        self.ensure_one()
        try:
            try:
                return call(self._access_token())
            except AccessTokenRejected:
                return call(self._renew_access_token())
        except ReauthorizationRequired as exc:
            self._alert_reauthorization(exc.reason)
            raise

    def _renew_access_token(self):
        """A new access token now, after the platform refused the current one."""
        self.ensure_one()
        credential = self.sudo().access_credential_id
        if credential.kind != "oauth2":
            raise ReauthorizationRequired(
                self.env._(
                    "The platform refused the token of %(channel)s: store a new one in its "
                    "access credential.",
                    channel=self.display_name,
                )
            )
        try:
            return credential._oauth2_refresh(force=True)
        except UserError as exc:
            return self._renewal_failed(credential, exc)

    def _token_renewal_margin(self):
        """How long before its expiry the cron renews the channel's token."""
        return TOKEN_RENEWAL_MARGIN

    @api.model
    def _cron_renew_tokens(self):
        """Scheduled: renew the OAuth tokens of platform channels that expire soon; a failure is
        the channel's alert (or a warning, retried next hour), never the end of the run."""
        now = fields.Datetime.now()
        candidates = self.sudo().search(
            [
                ("access_credential_id.kind", "=", "oauth2"),
                ("access_credential_id.refresh_token_set_at", "!=", False),
                ("access_credential_id.reauthorization_needed", "=", False),
                ("access_credential_id.expires_at", "!=", False),
                ("tenant_id.active", "=", True),
            ]
        )
        renewed = 0
        for channel in candidates:
            credential = channel.access_credential_id
            if credential.expires_at > now + channel._token_renewal_margin():
                continue
            try:
                channel._renew_access_token()
                renewed += 1
            except ChannelSendError as exc:
                _logger.warning("Channel %s: token not renewed: %s", channel.id, exc.reason)
        return renewed

    def _renewal_failed(self, credential, error):
        reason = str(error)
        if credential.reauthorization_needed:
            self._alert_reauthorization(reason)
            raise ReauthorizationRequired(reason)
        raise ChannelSendError(reason, retryable=True)

    def _alert_reauthorization(self, reason):
        """Make a lapsed authorization impossible to miss: a banner on the channel and a to-do
        for the tenant's AI managers (one at a time), and a warning in the log."""
        self.ensure_one()
        channel = self.sudo()
        _logger.warning("Channel %s must be authorized again: %s", channel.id, reason)
        if channel.reauthorization_needed:
            return
        channel.write(
            {"reauthorization_needed": True, "reauthorization_reason": (reason or "")[:250]}
        )
        managers = (
            self.env.ref("mcp_integrator.group_mcp_manager")
            .sudo()
            .all_user_ids.filtered(lambda user: channel.company_id in user.company_ids)
        )
        for user in managers[:1] or self.env.ref("base.user_admin", raise_if_not_found=False):
            channel.activity_schedule(
                "mail.mail_activity_data_warning",
                summary=self.env._("Authorize %(channel)s again", channel=channel.display_name),
                note=reason,
                user_id=user.id,
            )

    def _clear_reauthorization(self):
        channel = self.sudo()
        if channel.reauthorization_needed:
            channel.write({"reauthorization_needed": False, "reauthorization_reason": False})
            channel.activity_unlink(["mail.mail_activity_data_warning"])


def _notification(title, message, kind, reload=False):
    """A client notification; ``reload`` refreshes the form behind it (its alert banner)."""
    action = {
        "type": "ir.actions.client",
        "tag": "display_notification",
        "params": {"title": title, "message": message, "type": kind, "sticky": kind == "danger"},
    }
    if reload:
        action["params"]["next"] = {"type": "ir.actions.client", "tag": "soft_reload"}
    return action
