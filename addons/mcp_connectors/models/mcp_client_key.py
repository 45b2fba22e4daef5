# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
import math

from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL

from odoo.addons.mcp_integrator.services import tool_calls
from odoo.addons.mcp_integrator.services.metrics import Throttle

from ..services import client_keys, odoo_access_policy, rate_limit
from ..services.mcp_server_protocol import RateLimited, Unauthorized
from .mcp_server import ACT_AS_CALLER

_logger = logging.getLogger(__name__)

MANAGER = "mcp_integrator.group_mcp_manager"
# The module the /mcp requests count for in the cache counters, audit rows and metrics.
MCP_SERVER_MODULE = "mcp_server"
RATE_LIMITER = rate_limit.RateLimiter()
LOCAL_RATE_WARNING = Throttle(60.0, ready_now=True)
USAGE_UPDATE_ATTEMPTS = 3
# Arguments through which a built-in Odoo tool is told which model or method to reach.
MODEL_ARGUMENTS = ("model", "res_model")
METHOD_ARGUMENTS = ("method",)


class _ToolReportedError(Exception):
    """Carries a tool result with ``isError`` out of the savepoint, so that it rolls back."""

    def __init__(self, result):
        super().__init__("the tool reported an error")
        self.result = result


class McpClientKey(models.Model):
    """An outside MCP client of Odoo's ``/mcp`` endpoint (Claude Desktop, an IDE agent, a crew).

    The key is shown once when generated; only its public prefix and a salted hash are kept
    (``services/client_keys.py``). Calls run as the acting user, so Odoo's access rights and
    record rules apply, on the tenant's tools that are on the key's allow-list; tools that
    change data also need the admin's consent (``allow_mutating``), checked when they run.
    """

    _name = "mcp.client.key"
    _inherit = "mcp.config.mixin"
    _description = "MCP Client Key"
    _order = "tenant_id, name, id"
    _check_company_auto = True
    _mcp_secret_fields = ("key_hash",)

    name = fields.Char(required=True, help="Who uses the key, e.g. 'Claude Desktop of Ana'.")
    active = fields.Boolean(default=True)
    # no check_company: the key's company is the tenant's, so a company domain on the tenant
    # would hide every tenant from a new key
    tenant_id = fields.Many2one("mcp.tenant", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="tenant_id.company_id", store=True, index=True)
    user_id = fields.Many2one(
        "res.users",
        string="Acting User",
        required=True,
        ondelete="restrict",
        domain="[('share', '=', False), ('company_ids', 'in', company_id)]",
        help="The tools run as this internal user: its access rights and record rules apply.",
    )
    key_prefix = fields.Char(
        readonly=True, copy=False, index=True, help="Public start of the key, to recognise it."
    )
    key_hash = fields.Char(readonly=True, copy=False, groups="base.group_system")
    expires_at = fields.Datetime(
        string="Expires On",
        default=lambda self: fields.Datetime.add(fields.Datetime.now(), days=90),
        copy=False,
    )
    no_expiry = fields.Boolean(
        string="Never Expires", help="Tick to keep the key valid until it is revoked."
    )
    revoked_at = fields.Datetime(string="Revoked On", readonly=True, copy=False)
    state = fields.Selection(
        [
            ("no_key", "No Key"),
            ("valid", "Valid"),
            ("expired", "Expired"),
            ("revoked", "Revoked"),
        ],
        compute="_compute_state",
    )
    tool_ids = fields.Many2many(
        "mcp.tool",
        "mcp_client_key_tool_rel",
        "key_id",
        "tool_id",
        string="Allowed Tools",
        check_company=True,
        domain="[('tenant_id', '=', tenant_id)]",
        help="The tools the client may list and call; none when empty.",
    )
    allow_mutating = fields.Boolean(
        string="Allow Tools That Change Data",
        help="Consent for the tools on the list that are not read-only. Without it they are "
        "refused when called.",
    )
    rate_limit = fields.Integer(
        string="Requests per Minute",
        default=60,
        required=True,
        help="Every request counts (handshake, listing and calls), shared by all workers.",
    )
    last_used_at = fields.Datetime(string="Last Used", readonly=True, copy=False)
    usage_count = fields.Integer(string="Requests", readonly=True, copy=False)

    _key_prefix_uniq = models.Constraint("UNIQUE(key_prefix)", "Key prefixes must be unique.")
    _rate_limit_range = models.Constraint(
        "CHECK(rate_limit >= 1 AND rate_limit <= 100000)",
        "The rate limit must be between 1 and 100000 requests per minute.",
    )
    _expiry_or_never = models.Constraint(
        "CHECK(no_expiry OR expires_at IS NOT NULL)",
        "Set an expiry date or tick 'Never Expires'.",
    )

    @api.depends("key_prefix", "revoked_at", "expires_at", "no_expiry")
    def _compute_state(self):
        now = fields.Datetime.now()
        for key in self:
            if key.revoked_at:
                key.state = "revoked"
            elif not key.key_prefix:
                key.state = "no_key"
            elif not key.no_expiry and key.expires_at and key.expires_at <= now:
                key.state = "expired"
            else:
                key.state = "valid"

    @api.constrains("user_id", "tenant_id")
    def _check_user(self):
        for key in self:
            user = key.user_id.sudo()
            if user._is_superuser() or not user._is_internal():
                raise ValidationError(
                    self.env._(
                        "The acting user of MCP client key %(key)s must be an internal user "
                        "other than the superuser: its access rights must apply.",
                        key=key.name,
                    )
                )
            if key.tenant_id.company_id not in user.company_ids:
                raise ValidationError(
                    self.env._(
                        "The acting user %(user)s cannot work in company %(company)s of "
                        "tenant %(tenant)s.",
                        user=user.name,
                        company=key.tenant_id.company_id.name,
                        tenant=key.tenant_id.name,
                    )
                )

    @api.constrains("tool_ids", "tenant_id")
    def _check_tools(self):
        for key in self:
            foreign = key.tool_ids.filtered(lambda tool, key=key: tool.tenant_id != key.tenant_id)
            if foreign:
                raise ValidationError(
                    self.env._(
                        "Tools %(tools)s are not tools of tenant %(tenant)s.",
                        tools=", ".join(foreign.mapped("name")),
                        tenant=key.tenant_id.name,
                    )
                )

    # configuration changes ------------------------------------------------------------------
    def _mcp_tenants(self):
        return self.tenant_id

    def _mcp_cache_resource(self):
        return "mcp_client_key", self.id

    # buttons ----------------------------------------------------------------------------------
    def action_generate_key(self):
        """Button: a new key (replacing the current one), shown once in a dialog."""
        self.ensure_one()
        self.check_access("write")
        if self.revoked_at:
            raise UserError(
                self.env._("A revoked key cannot be renewed: create a new MCP client key.")
            )
        new = client_keys.generate()
        self.sudo().write({"key_prefix": new.prefix, "key_hash": new.stored})
        _logger.info(
            "MCP client key %s (#%s, prefix %s) generated by %s",
            self.name,
            self.id,
            new.prefix,
            self.env.user.login,
        )
        return {
            "type": "ir.actions.act_window",
            "res_model": "mcp.client.key.show",
            "name": self.env._("MCP Client Key Ready"),
            "views": [(False, "form")],
            "target": "new",
            "context": {"default_key": new.key},
        }

    def action_revoke(self):
        """Button: the key stops working at once, for good (its hash is forgotten)."""
        self.check_access("write")
        keys = self.filtered(lambda key: not key.revoked_at)
        keys.sudo().write({"revoked_at": fields.Datetime.now(), "key_hash": False})
        _logger.info("MCP client keys %s revoked by %s", keys.ids, self.env.user.login)
        return True

    # the /mcp endpoint ------------------------------------------------------------------------
    @api.model
    def _mcp_authenticate(self, token):
        """The key record (superuser env) that ``token`` is, if it may be used now.

        Raises Unauthorized alike for an unknown, wrong, expired or revoked key, for an
        archived key, tenant or acting user, and for an acting user who lost the tenant's
        company; the reason is only logged, by prefix.
        """
        prefix = client_keys.prefix_of(token)
        if prefix is None:
            raise Unauthorized("not a key")
        # archived keys too, to log why they are refused
        key = self.sudo().search([("key_prefix", "=", prefix), ("active", "in", (True, False))])
        reason = key._mcp_unusable_reason(token) if key else "unknown key"
        if reason:
            _logger.info("MCP client key %s refused: %s", prefix, reason)
            raise Unauthorized(reason)
        return key

    def _mcp_unusable_reason(self, token):
        self.ensure_one()
        if self.revoked_at:
            return "revoked key"
        if not client_keys.verify(token, self.key_hash):
            return "wrong key"
        if not self.active:
            return "archived key"
        if not self.no_expiry and self.expires_at <= fields.Datetime.now():
            return "expired key"
        if not self.tenant_id.active:
            return "archived tenant"
        user = self.user_id
        if not user.active or not user._is_internal():
            return "acting user archived or no longer internal"
        if self.tenant_id.company_id not in user.company_ids:
            return "acting user no longer in the tenant's company"
        return None

    def _mcp_check_rate(self):
        """Count one request; raise RateLimited when the key is over its rate.

        Shared by every worker through the integrator's Redis; while Redis is down, each
        process counts on its own (logged once a minute).
        """
        self.ensure_one()
        integrator = self.env["mcp.integrator"]
        cache = integrator._cache_or_none()
        wait = None
        if cache is not None:
            account_id = self.tenant_id.account_id
            rate_key = cache.key(account_id, MCP_SERVER_MODULE, "client_key", self.id, "rate")
            # through the cache's guard: its circuit skips a dead Redis, errors give None
            wait = cache._call(
                account_id,
                MCP_SERVER_MODULE,
                lambda: RATE_LIMITER.shared_hit(cache.client, rate_key.redis_key, self.rate_limit),
            )
        if wait is None:
            if LOCAL_RATE_WARNING.ready():
                _logger.warning(
                    "Redis unavailable: MCP client rate limits are counted per worker process"
                )
            wait = RATE_LIMITER.local_hit((self.env.cr.dbname, self.id), self.rate_limit)
        if wait > 0:
            raise RateLimited(math.ceil(wait))

    def _mcp_record_use(self):
        """Count a request and stamp the last use, in a transaction of its own.

        A request's own transaction must not update the key's row: concurrent requests of one
        key would then fail to serialise and Odoo would replay them, tool calls included.
        """
        self.ensure_one()
        query = SQL(
            "UPDATE %s SET usage_count = COALESCE(usage_count, 0) + 1, last_used_at = %s "
            "WHERE id = %s",
            SQL.identifier(self._table),
            fields.Datetime.now(),
            self.id,
        )
        for _attempt in range(USAGE_UPDATE_ATTEMPTS):
            try:
                with self.env.registry.cursor() as cr:
                    cr.execute(query, log_exceptions=False)
                return
            except pg_errors.SerializationFailure:
                continue  # another request of this key committed first: count again
        _logger.info("MCP client key %s: a request was not counted (concurrent updates)", self.id)

    def _mcp_tools(self):
        """The tools the client may list and call, by name."""
        self.ensure_one()
        usable = self.tool_ids.filtered(lambda tool: not tool._call_refusal(self.tenant_id))
        return usable.sorted("name")

    def _mcp_call_refusal(self, tool, arguments):
        """Why ``tool`` may not run with ``arguments`` for this key (a message), or None.

        Consent: a tool that is not read-only needs ``allow_mutating``. Deny-list: a built-in
        Odoo tool may not be pointed at a deny-listed model or method, whatever the allow-list.
        """
        if not tool.read_only and not self.allow_mutating:
            return self.env._(
                "Tool %(tool)s changes data and this MCP client has no consent for such tools; "
                "an administrator can give it on the client key.",
                tool=tool.name,
            )
        if tool.kind == "odoo":
            try:
                for name in MODEL_ARGUMENTS:
                    if name in arguments:
                        odoo_access_policy.check_model(arguments[name])
                for name in METHOD_ARGUMENTS:
                    if name in arguments:
                        odoo_access_policy.check_method(arguments[name])
            except odoo_access_policy.PolicyDenied as exc:
                return str(exc)
        return None

    def _mcp_run_tool(self, tool, arguments, correlation_id):
        """Run ``tool`` through the integrator as the acting user, in the tenant's company.

        Tenant checks, schema validation, caching and the ``tool.call`` audit row are the
        integrator's. Atomic: a failure, or a result that reports one, leaves nothing written.
        Raises McpToolError (McpToolRefused) with a message for the client.
        """
        self.ensure_one()
        integrator = (
            self.env["mcp.integrator"]
            .with_user(self.user_id)
            .with_company(self.tenant_id.company_id)
            .with_context(mcp_correlation_id=correlation_id, **{ACT_AS_CALLER: True})
        )
        try:
            with self.env.cr.savepoint():
                # a built-in Odoo tool runs as the acting user: its result depends on that
                # user's rights, so it is never cached (nor served from another user's cache)
                cache = False if tool.kind == "odoo" else None
                result = integrator.call_tool(self.tenant_id, tool.name, arguments, cache=cache)
                if tool_calls.is_error_result(result):
                    raise _ToolReportedError(result)
        except _ToolReportedError as reported:
            return reported.result
        return result


class McpClientKeyShow(models.AbstractModel):
    """The dialog that shows a new key once; nothing of it is stored."""

    _name = "mcp.client.key.show"
    _description = "New MCP Client Key"

    # the field 'id' is needed for the onchange that returns the value of 'key'
    id = fields.Id()
    key = fields.Char(readonly=True)
