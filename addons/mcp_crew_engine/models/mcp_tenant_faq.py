# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import fields, models


class McpTenantFaq(models.Model):
    """A question customers ask and the tenant's answer, given without an LLM when the
    customer's message matches it (no model configured, or the day's budget spent)."""

    _name = "mcp.tenant.faq"
    _inherit = "mcp.tenant.line.mixin"
    _description = "AI Tenant FAQ Entry"
    _order = "tenant_id, sequence, id"
    _mcp_tenant_field = "faq_ids"

    sequence = fields.Integer(default=10)
    question = fields.Char(required=True, help="The question as customers ask it.")
    answer = fields.Text(required=True, help="The answer sent to the customer as it is.")
    active = fields.Boolean(default=True)
