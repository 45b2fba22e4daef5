# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from odoo.addons.base.models.res_partner import _lang_get, _tz_get

from ..services import hours as hours_service
from .mcp_service import check_code

DEFAULT_TZ = "America/Sao_Paulo"
AUDITED_VALUE_TYPES = frozenset(
    {"char", "integer", "float", "boolean", "selection", "date", "datetime", "many2one"}
)
NO_AUDIT = "mcp_config_no_audit"
# Set while a tenant is created or written: its lines' changes are part of that audited change.
TENANT_WRITE = "mcp_tenant_write"
# What mcp.integrator keeps per registry to check a tool call without a query.
CALL_STATE_FIELDS = frozenset({"active", "company_id", "account_id"})


class McpConfigMixin(models.AbstractModel):
    """Configuration records of the integrator: audited and cache-invalidated on every change.

    Models using it say which tenants a change concerns (``_mcp_tenants``) and which cached
    resource it is (``_mcp_cache_resource``). Audit rows carry the names of the changed fields and
    the values of the plain ones, never the value of a field listed in ``_mcp_secret_fields``.
    """

    _name = "mcp.config.mixin"
    _description = "AI Integration Configuration Mixin"

    _mcp_secret_fields = ()

    def _mcp_tenants(self):
        """The tenants whose cached data depends on this record."""
        raise NotImplementedError

    def _mcp_cache_resource(self):
        """``(resource_type, resource_id)`` of the cached copy of this record."""
        raise NotImplementedError

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        for record, vals in zip(records, vals_list, strict=True):
            record._mcp_config_changed("config.create", vals)
        return records

    def write(self, vals):
        result = super().write(vals)
        for record in self:
            record._mcp_config_changed("config.write", vals)
        return result

    def unlink(self):
        changes = []
        for record in self:
            tenants, target, _arguments = record._mcp_change_details()
            record._mcp_invalidate(tenants, *record._mcp_cache_resource())
            changes.append((tenants, target, {"display_name": record.display_name}))
        result = super().unlink()
        for tenants, target, arguments in changes:
            self._mcp_audit("config.unlink", tenants.exists(), target, arguments)
        return result

    def _mcp_config_changed(self, operation, vals):
        tenants, target, arguments = self._mcp_change_details(vals)
        self._mcp_invalidate(tenants, *self._mcp_cache_resource())
        if not self.env.context.get(NO_AUDIT):
            self._mcp_audit(operation, tenants, target, arguments)

    def _mcp_change_details(self, vals=None):
        """``(tenants, target, arguments)`` describing a change of this record."""
        self.ensure_one()
        tenants = self.sudo()._mcp_tenants()
        arguments = None
        if vals is not None:
            values = {
                name: value
                for name, value in vals.items()
                if name in self._fields
                and name not in self._mcp_secret_fields
                and self._fields[name].store
                and self._fields[name].type in AUDITED_VALUE_TYPES
            }
            arguments = {"fields": sorted(vals), "values": values}
        return tenants, f"{self._name},{self.id}", arguments

    def _mcp_invalidate(self, tenants, resource_type, resource_id):
        if tenants:
            self.env["mcp.integrator"].invalidate(
                tenants,
                module="mcp_integrator",
                resource_type=resource_type,
                resource_id=resource_id,
            )

    def _mcp_audit(self, operation, tenants, target, arguments):
        self.env["mcp.audit.log"]._log(
            operation,
            target,
            tenant=tenants if len(tenants) == 1 else None,
            arguments=arguments,
        )


class McpTenantLineMixin(models.AbstractModel):
    """Lines of a tenant (hours, holidays): a change to them is a change to the tenant."""

    _name = "mcp.tenant.line.mixin"
    _description = "AI Tenant Line Mixin"

    _mcp_tenant_field = None  # the tenant's one2many holding these lines

    tenant_id = fields.Many2one("mcp.tenant", required=True, index=True, ondelete="cascade")

    @api.model_create_multi
    def create(self, vals_list):
        lines = super().create(vals_list)
        lines.tenant_id._mcp_lines_changed(self._mcp_tenant_field)
        return lines

    def write(self, vals):
        tenants = self.tenant_id
        result = super().write(vals)
        (tenants | self.tenant_id)._mcp_lines_changed(self._mcp_tenant_field)
        return result

    def unlink(self):
        tenants = self.tenant_id
        result = super().unlink()
        tenants.exists()._mcp_lines_changed(self._mcp_tenant_field)
        return result


class McpTenant(models.Model):
    """A customer-service tenant: one Chatwoot account and the behaviour its agents follow."""

    _name = "mcp.tenant"
    _inherit = "mcp.config.mixin"
    _description = "AI Tenant"
    _order = "name, id"

    def _default_language(self):
        installed = {code for code, _label in self.env["res.lang"].get_installed()}
        for code in ("pt_BR", self.env.lang, "en_US"):
            if code in installed:
                return code
        return min(installed, default=False)

    def _default_tz(self):
        return self.env.company.partner_id.tz or self.env.user.tz or DEFAULT_TZ

    name = fields.Char(required=True)
    code = fields.Char(
        required=True,
        copy=False,
        help="Short unique identifier (lower-case letters, digits, '-' and '_'), e.g. 'acme'.",
    )
    account_id = fields.Integer(
        string="Chatwoot Account ID",
        required=True,
        copy=False,
        help="The id of the Chatwoot account this tenant answers for (unique).",
    )
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )
    active = fields.Boolean(default=True)
    tone = fields.Selection(
        [
            ("formal", "Formal"),
            ("informal", "Informal"),
            ("friendly", "Friendly"),
            ("objective", "Objective"),
        ],
        required=True,
        default="friendly",
        help="How the agents talk to customers.",
    )
    personality = fields.Text(help="Who the agents are and how they behave, in a few sentences.")
    language = fields.Selection(
        _lang_get,
        required=True,
        default=lambda self: self._default_language(),
        help="Language the agents answer in by default.",
    )
    tz = fields.Selection(
        _tz_get,
        string="Time Zone",
        required=True,
        default=lambda self: self._default_tz(),
        help="Time zone of the service hours and holidays.",
    )
    hours_ids = fields.One2many("mcp.tenant.hours", "tenant_id", string="Service Hours", copy=True)
    holiday_ids = fields.One2many("mcp.tenant.holiday", "tenant_id", string="Holidays", copy=True)
    service_ids = fields.Many2many(
        "mcp.service", string="Enabled Services", help="What the agents may help customers with."
    )
    business_rules = fields.Text(
        help="Rules the agents must follow (prices, deadlines, policies), in plain words."
    )
    open_now = fields.Boolean(
        compute="_compute_open_now", help="Whether the tenant is within its service hours now."
    )

    _code_uniq = models.Constraint("UNIQUE(code)", "Another tenant already uses this code.")
    _account_id_uniq = models.Constraint(
        "UNIQUE(account_id)", "Another tenant already uses this Chatwoot account ID."
    )
    _account_id_positive = models.Constraint(
        "CHECK(account_id > 0)", "The Chatwoot account ID must be a positive number."
    )

    @api.depends(
        "tz",
        "hours_ids.weekday",
        "hours_ids.hour_from",
        "hours_ids.hour_to",
        "holiday_ids.date",
        "holiday_ids.yearly",
    )
    def _compute_open_now(self):
        now = fields.Datetime.now()
        for tenant in self:
            tenant.open_now = bool(tenant.tz) and tenant.is_open(now)

    @api.constrains("code")
    def _check_code(self):
        check_code(self, self.env._("Tenant"))

    @api.constrains("language")
    def _check_language(self):
        installed = dict(self.env["res.lang"].get_installed())
        for tenant in self:
            if tenant.language not in installed:
                raise ValidationError(
                    self.env._(
                        "Language %(lang)r of tenant %(tenant)s is not installed.",
                        lang=tenant.language,
                        tenant=tenant.display_name,
                    )
                )

    @api.constrains("tz")
    def _check_tz(self):
        for tenant in self:
            try:
                hours_service.zone(tenant.tz)
            except hours_service.UnknownTimezone:
                raise ValidationError(
                    self.env._(
                        "Unknown time zone %(tz)r for tenant %(tenant)s.",
                        tz=tenant.tz,
                        tenant=tenant.display_name,
                    )
                ) from None

    @api.model_create_multi
    def create(self, vals_list):
        tenants = super(McpTenant, self.with_context(**{TENANT_WRITE: True})).create(vals_list)
        return tenants.with_env(self.env)

    def write(self, vals):
        if "account_id" in vals:
            # Cached values are keyed by account id: the old account's copies go entirely.
            moved = self.filtered(lambda tenant: tenant.account_id != vals["account_id"])
            if moved:
                self.env["mcp.integrator"].invalidate(moved)
        if CALL_STATE_FIELDS.intersection(vals):
            self.env.registry.clear_cache()  # mcp.integrator._tool_plan
        return super(McpTenant, self.with_context(**{TENANT_WRITE: True})).write(vals)

    def unlink(self):
        self.env["mcp.integrator"].invalidate(self)
        self.env.registry.clear_cache()  # mcp.integrator._tool_plan
        return super().unlink()

    def _mcp_tenants(self):
        return self

    def _mcp_cache_resource(self):
        return "tenant", self.id

    def _mcp_lines_changed(self, field_name):
        """Record a direct change of the lines in ``field_name`` as a change of the tenants."""
        if self.env.context.get(TENANT_WRITE):
            return
        for tenant in self:
            tenant._mcp_config_changed("config.write", {field_name: None})

    # behaviour -------------------------------------------------------------------------------
    def _weekly_intervals(self):
        """``{weekday: [(hour_from, hour_to), ...]}`` with weekday 0 = Monday."""
        self.ensure_one()
        intervals = {}
        for line in self.hours_ids.sorted(lambda line: (line.weekday, line.hour_from)):
            intervals.setdefault(int(line.weekday), []).append((line.hour_from, line.hour_to))
        return intervals

    @api.private
    def is_open(self, at=None):
        """Whether the tenant is open at ``at`` (aware datetime, or naive UTC; default now)."""
        self.ensure_one()
        holidays = self.holiday_ids
        return hours_service.is_open(
            at or fields.Datetime.now(),
            self.tz,
            self._weekly_intervals(),
            holidays=holidays.filtered(lambda day: not day.yearly).mapped("date"),
            yearly_holidays=[(day.date.month, day.date.day) for day in holidays if day.yearly],
        )

    def _behaviour_profile(self):
        """The behaviour the agents follow, as plain JSON-serialisable data."""
        self.ensure_one()
        intervals = self._weekly_intervals()
        today = hours_service.local_time(fields.Datetime.now(), self.tz).date()
        holidays = self.holiday_ids.filtered(lambda day: day.yearly or day.date >= today)
        return {
            "tenant": self.code,
            "name": self.name,
            "account_id": self.account_id,
            "tone": self.tone,
            "personality": self.personality or "",
            "language": self.language,
            "tz": self.tz,
            "hours": {
                weekday: [
                    hours_service.format_interval(start, end)
                    for start, end in intervals.get(index, [])
                ]
                for index, weekday in enumerate(hours_service.WEEKDAYS)
            },
            "holidays": [
                {
                    "date": day.date.strftime("--%m-%d" if day.yearly else "%Y-%m-%d"),
                    "name": day.name or "",
                    "yearly": day.yearly,
                }
                for day in holidays.sorted("date")
            ],
            "services": self.service_ids.sorted().mapped("code"),
            "business_rules": self.business_rules or "",
            "open_now": self.is_open(),
        }
