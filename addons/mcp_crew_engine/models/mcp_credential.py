# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models


class McpCredential(models.Model):
    _inherit = "mcp.credential"

    def _mcp_invalidate(self, tenants, resource_type, resource_id):
        result = super()._mcp_invalidate(tenants, resource_type, resource_id)
        # a tenant's LLM key is kept with its crew configuration (mcp.tenant._crew_config)
        if self.env["mcp.tenant"].sudo().search_count([("llm_credential_id", "in", self.ids)]):
            self.env.registry.clear_cache()
        return result
