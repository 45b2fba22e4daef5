# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import re

from odoo import api, fields, models
from odoo.exceptions import ValidationError

# Codes of tenants and services: stable, lower-case slugs usable in keys and prompts.
CODE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_code(records, field_label):
    """Raise a ValidationError for records whose ``code`` is not a slug."""
    for record in records:
        if not CODE_PATTERN.fullmatch(record.code or ""):
            raise ValidationError(
                records.env._(
                    "%(what)s code %(code)r is invalid: use 1 to 64 lower-case letters, digits, "
                    "'-' or '_', starting with a letter or a digit.",
                    what=field_label,
                    code=record.code,
                )
            )


class McpService(models.Model):
    """A kind of service a tenant's agents may handle (products, orders, delivery...)."""

    _name = "mcp.service"
    _description = "AI Service"
    _order = "sequence, id"

    name = fields.Char(required=True, translate=True)
    code = fields.Char(
        required=True,
        help="Stable technical name, used by agents and other modules (e.g. 'orders').",
    )
    description = fields.Text(
        translate=True, help="What the agents may do for the customer in this service."
    )
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)

    _code_uniq = models.Constraint("UNIQUE(code)", "A service with this code already exists.")

    @api.constrains("code")
    def _check_code(self):
        check_code(self, self.env._("Service"))
