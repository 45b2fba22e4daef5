# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import json
import re

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from odoo.addons.mcp_integrator.models.mcp_integrator import TOOLS_MODULE
from odoo.addons.mcp_integrator.models.mcp_service import CODE_PATTERN

from ..services.mcp_server_protocol import check_input_schema

# Names agents and callers use: what MCP clients accept. Not check_code's slugs: remote
# servers name tools in mixed case and with '.' (the crews map names for LLM function calling).
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class McpTool(models.Model):
    """A tool of an MCP server, discovered (remote) or declared (built-in).

    ``name`` is what agents, the internal API and Odoo's ``/mcp`` call it, unique per tenant;
    ``remote_name`` is its name on the server. A new tool starts enabled only when it says it is
    read-only: an admin enables the others.
    """

    _name = "mcp.tool"
    _inherit = "mcp.config.mixin"
    _description = "MCP Tool"
    _order = "server_id, name"
    _check_company_auto = True

    name = fields.Char(required=True, help="Name the agents and the internal API call it by.")
    remote_name = fields.Char(required=True, help="Name of the tool on its server.")
    title = fields.Char()
    description = fields.Text()
    server_id = fields.Many2one("mcp.server", required=True, index=True, ondelete="cascade")
    tenant_id = fields.Many2one(related="server_id.tenant_id", store=True, index=True)
    company_id = fields.Many2one(related="server_id.company_id", store=True, index=True)
    kind = fields.Selection(related="server_id.kind")
    input_schema = fields.Json(
        string="Input Schema (JSON)",
        help="JSON Schema of the arguments; calls are checked against it.",
    )
    input_schema_text = fields.Text(
        string="Input Schema",
        compute="_compute_input_schema_text",
        inverse="_inverse_input_schema_text",
    )
    read_only = fields.Boolean(help="The tool only reads (MCP annotation readOnlyHint).")
    destructive = fields.Boolean(
        default=True, help="The tool may delete or overwrite data (destructiveHint)."
    )
    idempotent = fields.Boolean(help="Calling it twice does no more than once (idempotentHint).")
    open_world = fields.Boolean(
        default=True, help="The tool reaches beyond the server's own data (openWorldHint)."
    )
    enabled = fields.Boolean(default=True)
    available = fields.Boolean(
        default=True,
        readonly=True,
        help="Unticked when the last discovery no longer found the tool on its server.",
    )
    cache_class = fields.Selection(
        [
            ("none", "Not cached"),
            ("transient", "Transient (minutes)"),
            ("session", "Session (an hour)"),
            ("config", "Configuration (a day)"),
        ],
        default="none",
        required=True,
        help="How long results are kept in the tenant's cache; read-only tools only.",
    )
    crew_codes = fields.Char(
        string="Crews",
        help="Codes of the crews allowed to use the tool, comma-separated; empty for every crew.",
    )

    _name_per_tenant_uniq = models.Constraint(
        "UNIQUE(tenant_id, name)", "This tenant already has a tool with this name."
    )
    _remote_name_per_server_uniq = models.Constraint(
        "UNIQUE(server_id, remote_name)", "This server already has a tool with this name."
    )
    _cache_only_read_only = models.Constraint(
        "CHECK(cache_class = 'none' OR read_only)", "Only read-only tools can be cached."
    )

    @api.depends("input_schema")
    def _compute_input_schema_text(self):
        for tool in self:
            schema = tool.input_schema
            tool.input_schema_text = json.dumps(schema, indent=2) if schema else False

    def _inverse_input_schema_text(self):
        for tool in self:
            try:
                schema = json.loads(tool.input_schema_text or "{}")
            except ValueError as exc:
                raise ValidationError(
                    self.env._("The input schema is not valid JSON: %(error)s", error=exc)
                ) from None
            tool.input_schema = schema or {"type": "object"}

    @api.constrains("name")
    def _check_name(self):
        for tool in self:
            if not TOOL_NAME.fullmatch(tool.name or ""):
                raise ValidationError(
                    self.env._(
                        "Tool name %(name)r is invalid: use 1 to 64 letters, digits, '_', '-' "
                        "or '.'.",
                        name=tool.name,
                    )
                )

    @api.constrains("input_schema")
    def _check_input_schema(self):
        for tool in self:
            error = check_input_schema(tool.input_schema)
            if error:
                raise ValidationError(
                    self.env._(
                        "The input schema of tool %(name)s is invalid: %(error)s",
                        name=tool.name,
                        error=error,
                    )
                )

    @api.constrains("crew_codes")
    def _check_crew_codes(self):
        for tool in self:
            if any(not CODE_PATTERN.fullmatch(code) for code in tool.crew_list()):
                raise ValidationError(
                    self.env._(
                        "Crews must be crew codes separated by commas (e.g. sales, support)."
                    )
                )

    def crew_list(self):
        """The crew codes allowed to use the tool (empty: every crew)."""
        self.ensure_one()
        return [code.strip() for code in (self.crew_codes or "").split(",") if code.strip()]

    # configuration changes ------------------------------------------------------------------
    def _mcp_tenants(self):
        return self.tenant_id

    def _mcp_cache_resource(self):
        return "mcp_tool", self.id

    def _mcp_invalidate(self, tenants, resource_type, resource_id):
        result = super()._mcp_invalidate(tenants, resource_type, resource_id)
        self._forget_tool_results(tenants)
        return result

    @api.model
    def _forget_tool_results(self, tenants):
        """After a server or tool change: cached results may come from the old configuration,
        and the tool routes (``mcp.server._mcp_tool_route``) may be wrong."""
        if tenants:
            self.env["mcp.integrator"].invalidate(tenants, module=TOOLS_MODULE)
        self.env.registry.clear_cache()

    # calls ------------------------------------------------------------------------------------
    def _call_refusal(self, tenant):
        """Why this tool may not run for ``tenant`` (a message), or None."""
        if not self:
            return None
        if self.tenant_id != tenant:
            return self.env._("the tool %(tool)s is not one of this tenant's tools", tool=self.name)
        if not self.server_id.enabled:
            return self.env._(
                "the MCP server %(server)s is disabled", server=self.server_id.display_name
            )
        if not self.enabled:
            return self.env._("the tool %(tool)s is not enabled", tool=self.name)
        if not self.available:
            return self.env._(
                "the tool %(tool)s was not found on its server at the last discovery",
                tool=self.name,
            )
        return None

    # discovery ------------------------------------------------------------------------------
    @api.model
    def _sync_discovered(self, server, descriptors):
        """Create, update or mark unavailable the tools of ``server`` from its descriptors.

        Admin choices (enabled, cache class, crews, the name when it was renamed) survive a
        rediscovery; a schema or annotations that changed are taken from the server, and a
        tool the server no longer calls read-only loses its cache class.
        """
        existing = {
            tool.remote_name: tool for tool in server.with_context(active_test=False).tool_ids
        }
        taken = set(
            self.search(
                [("tenant_id", "=", server.tenant_id.id), ("server_id", "!=", server.id)]
            ).mapped("name")
        )
        for descriptor in descriptors:
            values = self._values_from_descriptor(descriptor)
            tool = existing.pop(descriptor["name"], None)
            if tool:
                if not values["read_only"]:
                    values["cache_class"] = "none"
                tool.write({**values, "available": True})
                continue
            name = descriptor["name"]
            if name in taken:
                name = f"{server.code}_{name}"[:64]
            read_only = values["read_only"]
            self.create(
                {
                    **values,
                    "server_id": server.id,
                    "remote_name": descriptor["name"],
                    "name": name,
                    "enabled": read_only and not descriptor.get("disabled_by_default"),
                }
            )
        for tool in existing.values():
            tool.write({"available": False})

    @api.model
    def _values_from_descriptor(self, descriptor):
        annotations = descriptor.get("annotations") or {}
        return {
            "title": descriptor.get("title") or False,
            "description": descriptor.get("description") or False,
            "input_schema": descriptor.get("input_schema") or {"type": "object"},
            "read_only": bool(annotations.get("read_only")),
            "destructive": bool(annotations.get("destructive", True)),
            "idempotent": bool(annotations.get("idempotent")),
            "open_world": bool(annotations.get("open_world", True)),
        }

    def _mcp_descriptor(self):
        """The tool as Odoo's ``/mcp`` lists it (MCP tool dict)."""
        self.ensure_one()
        tool = {
            "name": self.name,
            "description": self.description or "",
            "inputSchema": self.input_schema or {"type": "object"},
            "annotations": {
                "readOnlyHint": self.read_only,
                "destructiveHint": self.destructive,
                "idempotentHint": self.idempotent,
                "openWorldHint": self.open_world,
            },
        }
        if self.title:
            tool["title"] = self.title
        return tool
