# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models


class McpCredential(models.Model):
    _inherit = "mcp.credential"

    def _mcp_invalidate(self, tenants, resource_type, resource_id):
        result = super()._mcp_invalidate(tenants, resource_type, resource_id)
        # signing secrets are kept with the accounts' webhook configuration
        accounts = self.env["chatwoot.account"].sudo().with_context(active_test=False)
        if accounts.search_count([("signing_credential_ids", "in", self.ids)], limit=1):
            self.env.registry.clear_cache()
        return result
