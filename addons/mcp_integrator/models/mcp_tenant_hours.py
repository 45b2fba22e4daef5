# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..services import hours as hours_service


class McpTenantHours(models.Model):
    """One opening interval of a tenant on a weekday, in the tenant's time zone."""

    _name = "mcp.tenant.hours"
    _inherit = "mcp.tenant.line.mixin"
    _description = "AI Tenant Service Hours"
    _mcp_tenant_field = "hours_ids"
    _order = "tenant_id, weekday, hour_from, id"

    weekday = fields.Selection(
        [
            ("0", "Monday"),
            ("1", "Tuesday"),
            ("2", "Wednesday"),
            ("3", "Thursday"),
            ("4", "Friday"),
            ("5", "Saturday"),
            ("6", "Sunday"),
        ],
        required=True,
        default="0",
    )
    hour_from = fields.Float(string="From", required=True, default=8.0)
    hour_to = fields.Float(
        string="To",
        required=True,
        default=18.0,
        help="Closing time (excluded). An opening past midnight is two lines: "
        "until 24:00, then from 00:00 on the next day.",
    )

    @api.constrains("tenant_id", "weekday", "hour_from", "hour_to")
    def _check_interval(self):
        for line in self:
            reason = hours_service.interval_error(line.hour_from, line.hour_to)
            if reason:
                raise ValidationError(
                    self.env._(
                        "Invalid service hours %(start)s-%(end)s on %(weekday)s for tenant "
                        "%(tenant)s: times must be between 00:00 and 24:00 and the opening time "
                        "must be before the closing time.",
                        start=hours_service.format_hour(line.hour_from),
                        end=hours_service.format_hour(line.hour_to),
                        weekday=line._weekday_label(),
                        tenant=line.tenant_id.display_name,
                    )
                )
        for tenant, weekday in {(line.tenant_id, line.weekday) for line in self}:
            same_day = tenant.hours_ids.filtered(lambda line, day=weekday: line.weekday == day)
            overlapping = hours_service.overlaps(
                [(line.hour_from, line.hour_to) for line in same_day]
            )
            if overlapping:
                first, second = overlapping[0]
                raise ValidationError(
                    self.env._(
                        "Service hours of tenant %(tenant)s overlap on %(weekday)s: "
                        "%(first)s and %(second)s.",
                        tenant=tenant.display_name,
                        weekday=same_day[0]._weekday_label(),
                        first=hours_service.format_interval(*first),
                        second=hours_service.format_interval(*second),
                    )
                )

    def _weekday_label(self):
        return dict(self._fields["weekday"]._description_selection(self.env))[self.weekday]
