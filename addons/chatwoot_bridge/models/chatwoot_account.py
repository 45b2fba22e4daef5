# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
import secrets
from collections import namedtuple
from datetime import timedelta
from types import MappingProxyType
from urllib.parse import urlsplit

from odoo import api, fields, models, tools
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL

from ..services.client import ChatwootClient, ChatwootError

_logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/chatwoot/webhook/"
#: The client's own quick retries; longer outages are the jobs' retries (a worker never sleeps
#: long on a Retry-After).
CHATWOOT_RETRIES = 2
CHATWOOT_MAX_WAIT = 3
#: What the webhook controller needs of an account, kept per registry (cleared on any change).
WebhookConfig = namedtuple(
    "WebhookConfig", "id tenant_id account_id company_id mode out_of_hours secrets inboxes"
)
#: An inbox as the webhook controller sees it (keyed by Chatwoot inbox id in WebhookConfig).
InboxConfig = namedtuple("InboxConfig", "id ai_enabled crew_id channel hub")
PRIORITIES = [
    ("none", "Unchanged"),
    ("low", "Low"),
    ("medium", "Medium"),
    ("high", "High"),
    ("urgent", "Urgent"),
]


def _token_of(credential):
    """The token a credential holds, whatever its kind (API key or bearer token)."""
    values = credential._get_secret_values()
    return values.get("api_key") or values.get("token") or values.get("secret")


class ChatwootAccount(models.Model):
    """A tenant's Chatwoot account: how Odoo reaches it and how its webhooks reach Odoo.

    Chatwoot calls ``/chatwoot/webhook/<path token>``: the unguessable path token finds the
    account (older Chatwoot versions sign nothing), and, when signing secrets are set, every
    delivery must carry a valid ``X-Chatwoot-Signature`` (fail closed).
    """

    _name = "chatwoot.account"
    _inherit = "mcp.config.mixin"
    _description = "Chatwoot Account"
    _order = "name, id"
    _check_company_auto = True
    # the path token alone lets older Chatwoot versions in: never in an audit row
    _mcp_secret_fields = ("path_token",)

    name = fields.Char(required=True)
    active = fields.Boolean(default=True)
    # no check_company: the account's company is the tenant's, so a company domain on the
    # tenant would hide every tenant from a new account
    tenant_id = fields.Many2one("mcp.tenant", required=True, index=True, ondelete="restrict")
    company_id = fields.Many2one(related="tenant_id.company_id", store=True, index=True)
    account_id = fields.Integer(
        related="tenant_id.account_id",
        store=True,
        string="Chatwoot Account ID",
        help="The tenant's Chatwoot account id: the number in /app/accounts/<id>/ URLs.",
    )
    base_url = fields.Char(
        string="Chatwoot URL", required=True, help="e.g. https://app.chatwoot.com"
    )
    mode = fields.Selection(
        [
            ("agent_bot", "Agent Bot (recommended)"),
            ("account_webhook", "Account webhook"),
        ],
        required=True,
        default="agent_bot",
        help="Agent Bot: the AI answers conversations while they are pending and Chatwoot "
        "opens them for people at the handoff. Account webhook: the AI answers pending "
        "conversations and open ones no person is assigned to.",
    )
    bot_credential_id = fields.Many2one(
        "mcp.credential",
        string="Agent Bot Token",
        check_company=True,
        domain="[('kind', 'in', ('api_key', 'bearer'))]",
        help="The Agent Bot's access token: replies, notes, status and priority are posted "
        "with it, as the bot.",
    )
    user_credential_id = fields.Many2one(
        "mcp.credential",
        string="User Access Token",
        check_company=True,
        domain="[('kind', 'in', ('api_key', 'bearer'))]",
        help="An administrator's access token (Profile settings): needed to list inboxes, "
        "manage labels and contacts, and for the other channels' inboxes.",
    )
    signing_credential_ids = fields.Many2many(
        "mcp.credential",
        string="Webhook Signing Secrets",
        check_company=True,
        domain="[('kind', '=', 'hmac')]",
        help="The secrets of the Agent Bot, the API inboxes and the account webhook (Chatwoot "
        "4.11.2 and later). When any is set, unsigned or wrongly signed deliveries are refused.",
    )
    path_token = fields.Char(
        readonly=True,
        copy=False,
        index=True,
        groups="mcp_integrator.group_mcp_manager",
        default=lambda self: secrets.token_urlsafe(32),
    )
    webhook_url = fields.Char(
        compute="_compute_webhook_url",
        string="Webhook URL",
        groups="mcp_integrator.group_mcp_manager",
        help="Paste it as the Agent Bot's webhook URL, the API inboxes' webhook URL or the "
        "account webhook's URL in Chatwoot.",
    )
    handoff_message = fields.Text(
        translate=True,
        help="Posted to the customer when a person takes over. Empty: a message in the "
        "tenant's language that, outside opening hours, also says when you open.",
    )
    handoff_closed_message = fields.Text(
        string="Handoff Message While Closed",
        translate=True,
        help="Posted instead when the handoff happens outside opening hours.",
    )
    post_handoff_message = fields.Boolean(
        default=True, help="Off: the handoff posts only the private note for the agents."
    )
    out_of_hours = fields.Selection(
        [
            ("answer", "The AI keeps answering"),
            ("handoff", "Hand off at once"),
        ],
        string="Outside Opening Hours",
        required=True,
        default="answer",
    )
    handoff_label = fields.Char(
        default="ai-handoff",
        help="Label added to handed-off conversations (needs the user access token).",
    )
    handoff_priority = fields.Selection(
        PRIORITIES, required=True, default="none", help="Priority set at the handoff."
    )
    auto_resolve_hours = fields.Integer(
        string="Resolve Idle After (hours)",
        default=0,
        help="Resolve conversations the AI answered when the customer has not written for "
        "this long; 0: never.",
    )
    resolution_message = fields.Text(
        translate=True, help="Posted when an idle conversation is resolved."
    )
    inbox_ids = fields.One2many("chatwoot.inbox", "account_id", string="Inboxes")
    last_delivery_at = fields.Datetime(
        string="Last Delivery Received", compute="_compute_last_delivery_at"
    )
    last_error = fields.Char(readonly=True)
    last_error_at = fields.Datetime(readonly=True)
    health = fields.Char(compute="_compute_health")

    _tenant_uniq = models.Constraint("UNIQUE(tenant_id)", "A tenant has one Chatwoot account.")
    _path_token_uniq = models.Constraint("UNIQUE(path_token)", "The path token must be unique.")
    _auto_resolve_positive = models.Constraint(
        "CHECK(auto_resolve_hours >= 0)", "Idle hours cannot be negative."
    )

    @api.depends("path_token")
    def _compute_webhook_url(self):
        base = self.env["ir.config_parameter"].sudo().get_param("web.base.url", "")
        for account in self:
            account.webhook_url = f"{base.rstrip('/')}{WEBHOOK_PATH}{account.path_token}"

    def _compute_last_delivery_at(self):
        # read from the deliveries: the webhook never writes the account's row (concurrent
        # deliveries would queue on it)
        latest = dict(
            self.env["chatwoot.event"]
            .sudo()
            ._read_group([("account_id", "in", self.ids)], ["account_id"], ["received_at:max"])
        )
        for account in self:
            account.last_delivery_at = latest.get(account._origin)

    @api.depends("last_error", "last_error_at")
    def _compute_health(self):
        for account in self:
            parts = [
                self.env._("Last delivery: %(at)s", at=account.last_delivery_at)
                if account.last_delivery_at
                else self.env._("No delivery received yet")
            ]
            if account.last_error:
                parts.append(
                    self.env._(
                        "last error (%(at)s): %(error)s",
                        at=account.last_error_at,
                        error=account.last_error,
                    )
                )
            account.health = "; ".join(parts)

    @api.constrains("base_url")
    def _check_base_url(self):
        for account in self:
            parts = urlsplit(account.base_url or "")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValidationError(
                    self.env._("The Chatwoot URL must start with https:// (or http://).")
                )

    # mcp.config.mixin ----------------------------------------------------------------------
    def _mcp_tenants(self):
        return self.tenant_id

    def _mcp_cache_resource(self):
        return "chatwoot_account", self.id

    def _mcp_config_changed(self, operation, vals):
        result = super()._mcp_config_changed(operation, vals)
        self.env.registry.clear_cache()  # the kept webhook configuration
        return result

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()
        return result

    # webhook side ----------------------------------------------------------------------------
    @api.model
    def _webhook_config(self, path_token):
        """The :data:`WebhookConfig` of the active account with this path token, or None."""
        account_id = self._account_id_of_token(path_token)
        return self._webhook_config_of(account_id) if account_id else None

    @api.model
    def _account_id_of_token(self, path_token):
        # one query for any token, known or not (no cache): an unknown token takes as long
        self.env.cr.execute(
            SQL(
                "SELECT id FROM chatwoot_account WHERE path_token = %s AND active",
                path_token,
            )
        )
        row = self.env.cr.fetchone()
        return row and row[0]

    @api.model
    @tools.ormcache("account_id")
    def _webhook_config_of(self, account_id):
        account = self.sudo().browse(account_id)
        secrets_ = tuple(
            credential._get_secret_values()["secret"]
            for credential in account.signing_credential_ids
            if credential.active
        )
        return WebhookConfig(
            id=account.id,
            tenant_id=account.tenant_id.id,
            account_id=account.account_id,
            company_id=account.company_id.id,
            mode=account.mode,
            out_of_hours=account.out_of_hours,
            secrets=tuple(secret for secret in secrets_ if secret),
            inboxes=MappingProxyType(
                {
                    inbox.inbox_id: InboxConfig(
                        id=inbox.id,
                        ai_enabled=inbox.ai_enabled,
                        crew_id=inbox.crew_id.id,
                        channel=inbox._channel_name(),
                        hub=bool(inbox.channel_connector_id),
                    )
                    for inbox in account.inbox_ids
                }
            ),
        )

    # Chatwoot side ---------------------------------------------------------------------------
    def _client(self):
        """A :class:`ChatwootClient` for this account (close it after use)."""
        self.ensure_one()
        account = self.sudo()
        return ChatwootClient(
            account.base_url,
            account.account_id,
            bot_token=_token_of(account.bot_credential_id) if account.bot_credential_id else None,
            user_token=(
                _token_of(account.user_credential_id) if account.user_credential_id else None
            ),
            max_retries=CHATWOOT_RETRIES,
            max_retry_after=CHATWOOT_MAX_WAIT,
        )

    def _note_error(self, error):
        """The health line's last error, committed at once: the job or the button that met
        it rolls back."""
        self.ensure_one()
        with self.env.registry.cursor() as cr:
            cr.execute(
                SQL(
                    "UPDATE chatwoot_account SET last_error = %s,"
                    " last_error_at = now() at time zone 'UTC' WHERE id = %s",
                    str(error)[:250],
                    self.id,
                )
            )
        self.invalidate_recordset(["last_error", "last_error_at"])

    def action_connect(self):
        """Check the tokens against Chatwoot and list the account's inboxes."""
        self.ensure_one()
        if not self.user_credential_id:
            raise UserError(
                self.env._(
                    "Set the user access token first: Chatwoot lists inboxes to users only "
                    "(an Agent Bot token cannot)."
                )
            )
        with self._client() as client:
            try:
                profile = client.profile()
                inboxes = client.list_inboxes()
            except ChatwootError as error:
                self._note_error(error.reason)
                raise UserError(
                    self.env._("Chatwoot refused the connection: %(reason)s", reason=error.reason)
                ) from None
        self.env["chatwoot.inbox"]._sync_from_chatwoot(self, inboxes)
        who = (profile or {}).get("name") or (profile or {}).get("email") or "?"
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": self.env._("Connected to Chatwoot"),
                "message": self.env._(
                    "Signed in as %(who)s; %(count)s inboxes found. Webhook URL: %(url)s",
                    who=who,
                    count=len(inboxes),
                    url=self.webhook_url,
                ),
                "next": {"type": "ir.actions.act_window_close"},
            },
        }

    @api.model
    def _cron_resolve_idle(self):
        """Queue the resolution of the conversations the AI answered last and whose customer
        has been silent for the account's idle hours."""
        now = fields.Datetime.now()
        conversations = self.env["chatwoot.conversation"].sudo()
        for account in self.sudo().search([("auto_resolve_hours", ">", 0)]):
            limit = now - timedelta(hours=account.auto_resolve_hours)
            idle = conversations.search(
                [
                    ("account_id", "=", account.id),
                    ("status", "=", "pending"),
                    ("ai_silenced", "=", False),
                    ("last_ai_reply_at", "<", limit),
                ]
            )
            for conversation in idle.filtered(
                lambda c, limit=limit: c._customer_silent_since(limit)
            ):
                conversation.with_delay(
                    identity_key=f"chatwoot.conversation.resolve:{conversation.id}",
                    description=self.env._(
                        "Resolve idle conversation %(name)s", name=conversation.display_name
                    ),
                )._resolve_idle()

    def action_regenerate_path_token(self):
        for account in self:
            account.path_token = secrets.token_urlsafe(32)
