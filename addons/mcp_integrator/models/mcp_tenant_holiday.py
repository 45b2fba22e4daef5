# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import fields, models


class McpTenantHoliday(models.Model):
    """A day on which a tenant is closed, whatever its service hours say."""

    _name = "mcp.tenant.holiday"
    _inherit = "mcp.tenant.line.mixin"
    _description = "AI Tenant Holiday"
    _mcp_tenant_field = "holiday_ids"
    _order = "tenant_id, date, id"

    name = fields.Char(string="Description", help="e.g. Christmas, Carnival, inventory day")
    date = fields.Date(required=True, help="Local date in the tenant's time zone.")
    yearly = fields.Boolean(
        string="Every Year",
        help="Closed on this day and month every year (fixed-date holidays such as 25 December).",
    )

    _date_uniq = models.Constraint(
        "UNIQUE(tenant_id, date)", "This date is already a holiday of the tenant."
    )
