# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
import time

from odoo import api, fields, models, tools
from odoo.exceptions import UserError, ValidationError

from odoo.addons.mcp_integrator.models.mcp_integrator import TOOLS_MODULE
from odoo.addons.mcp_integrator.models.mcp_service import check_code
from odoo.addons.mcp_integrator.models.mcp_tenant import McpConfigMixin
from odoo.addons.mcp_integrator.services import masking, tool_calls

from ..services import mcp_client, server_config
from ..services.mcp_server_protocol import argument_errors, validator_for

_logger = logging.getLogger(__name__)

MANAGER = "mcp_integrator.group_mcp_manager"
# Set by /mcp: built-in Odoo tools run as the caller (the MCP client key's acting user) instead
# of the server's technical user.
ACT_AS_CALLER = "mcp_act_as_caller"
STATE_FIELDS = frozenset(
    {
        "health_state",
        "last_check_at",
        "last_latency_ms",
        "last_error",
        "last_discovery_at",
        "last_discovery_error",
    }
)


class McpServer(models.Model):
    """One MCP server a tenant's agents use: remote (any MCP server) or built into the suite.

    It is also the tool provider of the integrator: ``call_tool`` finds the tenant's enabled
    ``mcp.tool`` of that name, validates the arguments against its schema, and runs it through
    ``_mcp_run_<kind>``. Built-in kinds declare their tools in ``_mcp_builtin_tools_<kind>``.
    """

    _name = "mcp.server"
    _inherit = ("mcp.config.mixin", "mcp.tool.provider")
    _description = "MCP Server"
    _order = "tenant_id, sequence, name, id"
    _check_company_auto = True

    name = fields.Char(required=True)
    code = fields.Char(
        required=True,
        help="Stable technical name, unique per tenant (e.g. 'catalog'); prefixes its tools "
        "when their names clash with another server's.",
    )
    sequence = fields.Integer(default=10)
    # no check_company: the server's company is the tenant's, so a company domain on the tenant
    # would hide every tenant from a new server
    tenant_id = fields.Many2one("mcp.tenant", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="tenant_id.company_id", store=True, index=True)
    enabled = fields.Boolean(default=True, help="A disabled server's tools cannot be called.")
    kind = fields.Selection(
        [
            ("remote", "Remote MCP server"),
            ("odoo", "Built-in: Odoo"),
            ("qdrant", "Built-in: Qdrant"),
            ("mongodb", "Built-in: MongoDB"),
        ],
        required=True,
        default="remote",
    )
    transport = fields.Selection(
        [
            ("streamable_http", "Streamable HTTP"),
            ("sse", "HTTP with SSE (legacy)"),
            ("stdio", "Local command (stdio)"),
        ],
        default="streamable_http",
    )
    url = fields.Char(string="URL", help="Endpoint of a remote HTTP server, e.g. https://host/mcp")
    # Only managers set the command: no user or model input ever reaches a command line.
    command = fields.Char(
        groups=MANAGER,
        help="Program and arguments of a stdio server, split like a shell would split them; "
        "it is run directly, never through a shell.",
    )
    credential_id = fields.Many2one(
        "mcp.credential",
        check_company=True,
        domain="[('tenant_id', 'in', [tenant_id, False])]",
        help="Secret sent to the server: as the Authorization header (or the header below for an "
        "API key) over HTTP, in the environment variable below for stdio.",
    )
    auth_header = fields.Char(
        string="API Key Header",
        default="Authorization",
        help="HTTP header that carries an API-key credential as it is (e.g. X-API-Key).",
    )
    credential_env = fields.Char(
        string="Credential Variable",
        help="Environment variable that receives the credential's secret (stdio servers).",
    )
    timeout = fields.Float(
        default=30.0, help="Seconds to wait for the server's answer before giving up."
    )
    run_as_user_id = fields.Many2one(
        "res.users",
        string="Technical User",
        help="User the built-in Odoo tools run as: its access rights and record rules apply.",
    )
    health_state = fields.Selection(
        [("unknown", "Unknown"), ("up", "Up"), ("down", "Down")],
        default="unknown",
        readonly=True,
        copy=False,
    )
    last_check_at = fields.Datetime(string="Last Health Check", readonly=True, copy=False)
    last_latency_ms = fields.Float(string="Latency (ms)", readonly=True, copy=False)
    last_error = fields.Char(readonly=True, copy=False)
    last_discovery_at = fields.Datetime(string="Last Discovery", readonly=True, copy=False)
    last_discovery_error = fields.Char(readonly=True, copy=False)
    tool_ids = fields.One2many("mcp.tool", "server_id", string="Tools")
    tool_count = fields.Integer(compute="_compute_tool_count")

    _code_per_tenant_uniq = models.Constraint(
        "UNIQUE(tenant_id, code)", "This tenant already has an MCP server with this code."
    )
    _timeout_range = models.Constraint(
        "CHECK(timeout > 0 AND timeout <= 3600)",
        "The timeout must be more than 0 and at most 3600 seconds.",
    )

    @api.depends("tool_ids")
    def _compute_tool_count(self):
        for server in self:
            server.tool_count = len(server.tool_ids)

    @api.constrains("code")
    def _check_code(self):
        check_code(self, self.env._("MCP server"))

    @api.constrains("kind", "transport", "url", "command", "run_as_user_id")
    def _check_kind_settings(self):
        for server in self.sudo():
            if server.kind == "remote":
                if not server.transport:
                    raise ValidationError(
                        self.env._("Remote server %(name)s needs a transport.", name=server.name)
                    )
                if server.transport == "stdio" and not (server.command or "").strip():
                    raise ValidationError(
                        self.env._("Stdio server %(name)s needs a command.", name=server.name)
                    )
                if server.transport != "stdio" and not server.url:
                    raise ValidationError(
                        self.env._("Remote server %(name)s needs a URL.", name=server.name)
                    )
            if server.kind == "odoo" and server.run_as_user_id.share is not False:
                raise ValidationError(
                    self.env._(
                        "Built-in Odoo server %(name)s needs an internal technical user.",
                        name=server.name,
                    )
                )

    # configuration changes ------------------------------------------------------------------
    def _mcp_tenants(self):
        return self.tenant_id

    def _mcp_cache_resource(self):
        return "mcp_server", self.id

    def _mcp_invalidate(self, tenants, resource_type, resource_id):
        result = super()._mcp_invalidate(tenants, resource_type, resource_id)
        self.env["mcp.tool"]._forget_tool_results(tenants)
        return result

    # buttons and cron -----------------------------------------------------------------------
    def action_discover(self):
        """Button: (re)discover the tools of each server; a failure becomes a UserError."""
        for server in self:
            error = server._discover()
            if error:
                raise UserError(
                    self.env._(
                        "Could not discover the tools of %(server)s: %(error)s",
                        server=server.display_name,
                        error=error,
                    )
                )
        return True

    def action_check_health(self):
        for server in self:
            server._check_health()
        return True

    def action_view_tools(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("mcp_connectors.mcp_tool_action")
        action["domain"] = [("server_id", "=", self.id)]
        action["context"] = {"default_server_id": self.id}
        return action

    @api.model
    def _cron_check_health(self):
        """Scheduled: check every enabled server; one broken server does not stop the others."""
        for server in self.search([("enabled", "=", True)]):
            try:
                with self.env.cr.savepoint():
                    server._check_health()
            except Exception:  # one server's bug must not stop the checks of the others
                _logger.exception("Health check of MCP server %s failed", server.display_name)

    def _discover(self):
        """Fetch the server's tools and sync ``tool_ids``. Returns an error message or None."""
        self.ensure_one()
        started = time.perf_counter()
        try:
            descriptors = self._mcp_list_tools()
        except (mcp_client.McpClientError, UserError, ValidationError) as exc:
            error = masking.mask_text(str(exc))[:500]
            self.write({"last_discovery_error": error})
            self._audit("mcp.discover", started, error=error)
            return error
        self.env["mcp.tool"]._sync_discovered(self, descriptors)
        self.write({"last_discovery_at": fields.Datetime.now(), "last_discovery_error": False})
        self._audit("mcp.discover", started, arguments={"tools": len(descriptors)})
        return None

    def _check_health(self):
        self.ensure_one()
        try:
            latency = self._mcp_health()
        except (mcp_client.McpClientError, UserError, ValidationError) as exc:
            values = {"health_state": "down", "last_error": masking.mask_text(str(exc))[:500]}
        else:
            values = {"health_state": "up", "last_latency_ms": latency, "last_error": False}
        values["last_check_at"] = fields.Datetime.now()
        self.write(values)

    def write(self, vals):
        if set(vals) <= STATE_FIELDS:
            # health and discovery results are state, not configuration: no audit row and no
            # cache invalidation per check
            return super(McpConfigMixin, self).write(vals)
        return super().write(vals)

    def _audit(self, operation, started, error=None, arguments=None):
        self.env["mcp.audit.log"]._log(
            operation,
            f"{self._name},{self.id}",
            status="error" if error else "ok",
            tenant=self.tenant_id,
            module=TOOLS_MODULE,
            duration_ms=(time.perf_counter() - started) * 1000,
            error=error,
            arguments=arguments,
        )

    # kinds ------------------------------------------------------------------------------------
    def _mcp_list_tools(self):
        """Tool descriptors (``mcp_client`` dict shape) of this server."""
        if self.kind == "remote":
            return mcp_client.list_tools(self._client_spec(), key=self._pool_key())
        return getattr(self, f"_mcp_builtin_tools_{self.kind}")()

    def _mcp_health(self):
        """Latency in ms of a round trip to the server; raises when it does not answer."""
        if self.kind == "remote":
            return mcp_client.ping(self._client_spec(), key=self._pool_key())
        started = time.perf_counter()
        getattr(self, f"_mcp_health_{self.kind}")()
        return (time.perf_counter() - started) * 1000

    def _pool_key(self):
        return ("mcp.server", self.env.cr.dbname, self.id)

    def _client_spec(self):
        """The ServerSpec of a remote server, with its credential's secret."""
        self.ensure_one()
        server = self.sudo()
        credential = None
        if server.credential_id:
            cred = server.credential_id
            secrets = cred._get_secret_values()
            if cred.kind == "oauth2":
                secrets = {"access_token": cred._get_access_token()}
            credential = (cred.kind, secrets)
        return server_config.build_spec(
            server.transport,
            url=server.url or "",
            command=server.command or "",
            timeout=server.timeout,
            credential=credential,
            auth_header=server.auth_header or "Authorization",
            credential_env=server.credential_env or "",
        )

    # the integrator's tool provider -----------------------------------------------------------
    @api.model
    @tools.ormcache("tenant_id", "tool_name")
    def _mcp_tool_route(self, tenant_id, tool_name):
        """``(tool id, cache class)`` of the tool ``tool_name`` of tenant ``tenant_id``.

        Falls back to another tenant's tool of that name (so that the call is refused clearly,
        not "not found"); ``(0, None)`` when no tenant has one. The cache class is only given
        to a tool that may run (own tenant, enabled, available, server enabled): a cached
        result must never outlive the admin's decision to stop a tool. Kept per registry, so a
        call costs no query; every change of a server or tool clears it.
        """
        tools_model = self.env["mcp.tool"].sudo().with_context(active_test=False)
        tool = tools_model.search(
            [("tenant_id", "=", tenant_id), ("name", "=", tool_name)], limit=1
        ) or tools_model.search([("name", "=", tool_name)], limit=1)
        if not tool:
            return 0, None
        runnable = tool.tenant_id.id == tenant_id and not tool._call_refusal(tool.tenant_id)
        cacheable = runnable and tool.read_only and tool.cache_class != "none"
        return tool.id, tool.cache_class if cacheable else None

    @api.model
    def _mcp_tool_record(self, tenant, tool_name):
        tool_id = self._mcp_tool_route(tenant.id, tool_name)[0]
        return self.env["mcp.tool"].sudo().browse(tool_id)

    @api.model
    def _mcp_provides(self, tenant, tool_name):
        return bool(self._mcp_tool_route(tenant.id, tool_name)[0])

    @api.model
    def _mcp_cache_class(self, tenant, tool_name):
        return self._mcp_tool_route(tenant.id, tool_name)[1]

    @api.model
    def _mcp_writes_data(self, tenant, tool_name):
        # a remote tool writes nothing to this database (its audit row has its own cursor)
        return self._mcp_tool_record(tenant, tool_name).kind != "remote"

    @api.model
    @tools.ormcache("tool_id")
    def _mcp_tool_validator(self, tool_id):
        """The validator of the tool's input schema, kept per registry (tool changes clear it)."""
        tool = self.env["mcp.tool"].sudo().browse(tool_id)
        return validator_for(tool.input_schema or {"type": "object"})

    @api.model
    def _mcp_call_tool(self, tenant, tool_name, arguments):
        tool = self._mcp_tool_record(tenant, tool_name)
        refusal = tool._call_refusal(tenant)
        if refusal:
            raise tool_calls.ToolRefused(refusal)
        errors = argument_errors(self._mcp_tool_validator(tool.id), arguments)
        if errors:
            raise tool_calls.PermanentToolError(
                "the arguments do not match the tool's input schema: " + "; ".join(errors)
            )
        server = tool.server_id.with_env(self.env)
        return getattr(server, f"_mcp_run_{server.kind}")(tool, arguments)

    def _mcp_run_remote(self, tool, arguments):
        """Call a remote tool. A failure the tool reports is a result (``isError``)."""
        try:
            result = mcp_client.call_tool(
                self._client_spec(),
                tool.remote_name,
                arguments,
                key=self._pool_key(),
                retry=tool.read_only or tool.idempotent,
            )
        except (mcp_client.McpTimeout, mcp_client.McpTransportError) as exc:
            raise tool_calls.ToolUnavailable(str(exc)) from None
        except mcp_client.McpClientError as exc:
            raise tool_calls.PermanentToolError(str(exc)) from None
        return {
            "isError": result.is_error,
            "content": result.content,
            "structuredContent": result.structured_content,
        }
