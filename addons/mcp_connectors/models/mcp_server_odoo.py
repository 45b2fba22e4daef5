# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models
from odoo.exceptions import AccessError, UserError

from odoo.addons.mcp_integrator.services import tool_calls

from ..services import odoo_access_policy, odoo_tool_catalog
from ..services.mcp_server_protocol import validate_arguments
from .mcp_server import ACT_AS_CALLER


class McpServer(models.Model):
    """The built-in Odoo tools ("MCP-Odoo"): kind ``odoo`` of ``mcp.server``.

    The tools (``mcp.odoo.tools``) run in this process as the server's technical user, in the
    tenant's company and language, so that its access rights and record rules apply; how they
    fail is described in ``services/odoo_tool_catalog.py``.
    """

    # one file per built-in kind, as the hook contract of models/mcp_server.py has it
    _inherit = "mcp.server"  # pylint: disable=consider-merging-classes-inherited

    def _mcp_builtin_tools_odoo(self):
        return odoo_tool_catalog.available_tools(self.env)

    def _mcp_health_odoo(self):
        self._odoo_tools_env()["res.partner"].search_count([], limit=1)

    def _mcp_run_odoo(self, tool, arguments):
        descriptor = odoo_tool_catalog.find_tool(tool.remote_name, self.env)
        if descriptor is None:
            raise tool_calls.ToolNotFound(
                self.env._(
                    "the built-in Odoo tool %(tool)s does not exist or needs an app that is not "
                    "installed",
                    tool=tool.remote_name,
                )
            )
        # The catalogue's own schema too: a stored schema an admin loosened lifts no bound.
        errors = validate_arguments(descriptor["input_schema"], arguments)
        if errors:
            raise tool_calls.PermanentToolError(
                "the arguments do not match the tool's input schema: " + "; ".join(errors)
            )
        try:
            env = self._odoo_tools_env()
        except UserError as exc:
            raise tool_calls.ToolRefused(str(exc)) from None
        # the tenant is the caller's own, already checked by the integrator: read as superuser
        tenant = self.sudo().tenant_id.with_env(env(su=True))
        tools = env["mcp.odoo.tools"]
        try:
            # a failure the model reads leaves nothing written either
            with self.env.cr.savepoint():
                return getattr(tools, f"_tool_{tool.remote_name}")(tenant, arguments)
        except odoo_tool_catalog.ToolFailure as exc:
            return odoo_tool_catalog.error_result(str(exc))
        except odoo_access_policy.PolicyDenied as exc:
            raise tool_calls.ToolRefused(str(exc)) from None
        except AccessError as exc:
            reason = " ".join(str(exc).split())[:400]  # Odoo's message, on one line
            raise tool_calls.ToolRefused(
                self.env._(
                    "the user %(user)s may not do this: %(reason)s",
                    user=env.user.name,
                    reason=reason,
                )
            ) from None
        except UserError as exc:  # ValidationError, MissingError: Odoo refused the data
            raise tool_calls.PermanentToolError(str(exc)) from None

    def _odoo_tools_env(self):
        """The environment the tools run in: the technical user (or, for a call that came
        through ``/mcp``, the MCP client key's acting user), without superuser rights, in the
        tenant's company, language and time zone. UserError when there is none usable."""
        self.ensure_one()
        server = self.sudo()
        user = server.run_as_user_id.with_context(active_test=False)
        if self.env.context.get(ACT_AS_CALLER):
            user = self.env.user.sudo().with_context(active_test=False)
        company = server.tenant_id.company_id
        if not user:
            raise UserError(
                self.env._(
                    "the built-in Odoo server %(server)s has no technical user: set one on it",
                    server=server.display_name,
                )
            )
        if not user.active or user.share:
            raise UserError(
                self.env._(
                    "the user %(user)s of %(server)s is archived or not an internal user",
                    user=user.name,
                    server=server.display_name,
                )
            )
        if company not in user.company_ids:
            raise UserError(
                self.env._(
                    "the user %(user)s may not work in the company %(company)s of "
                    "tenant %(tenant)s",
                    user=user.name,
                    company=company.name,
                    tenant=server.tenant_id.display_name,
                )
            )
        tenant = server.tenant_id
        # A fresh context: nothing of the caller's (default_* values, active_test) leaks in.
        context = {"allowed_company_ids": [company.id], "lang": tenant.language, "tz": tenant.tz}
        return self.env(user=user.id, su=False, context=context)
