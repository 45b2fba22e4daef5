# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models


class McpTenant(models.Model):
    """A tenant's change reaches its built-in servers: its behaviour document is published
    again to MongoDB, its business rules re-indexed in Qdrant, by queue jobs."""

    _inherit = "mcp.tenant"

    def _mcp_config_changed(self, operation, vals):
        result = super()._mcp_config_changed(operation, vals)
        if operation != "config.create":
            servers = (
                self.env["mcp.server"]
                .sudo()
                .search(
                    [
                        ("tenant_id", "in", self.ids),
                        ("enabled", "=", True),
                        ("kind", "in", ("qdrant", "mongodb")),
                    ]
                )
            )
            servers.filtered(lambda server: server.kind == "qdrant")._qdrant_tenant_changed(vals)
            servers.filtered(lambda server: server.kind == "mongodb")._mongo_tenant_changed()
        return result
