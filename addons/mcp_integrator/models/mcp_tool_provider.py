# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, models, tools


class McpToolProvider(models.AbstractModel):
    """The hook through which ``mcp.integrator.call_tool`` reaches tools.

    Connector addons add providers by inheriting this model into their own models
    (``_inherit = ["mcp.server", "mcp.tool.provider"]`` or a new AbstractModel) and overriding
    both methods. The integrator asks the providers in model-name order and calls the first
    one that claims the tool; a provider must only claim tools it can actually run. The answers
    of ``_mcp_provides`` and ``_mcp_cache_class`` are kept per registry (see
    ``mcp.integrator._tool_plan``): a provider whose tools or cache classes change clears the
    registry cache (``self.env.registry.clear_cache()``).

    Providers signal failures with the error classes of ``services/tool_calls.py``:
    ``TransientToolError`` (retried), ``PermanentToolError``, ``ToolUnavailable``, ``ToolNotFound``,
    ``ToolRefused``. A result dict with ``"isError": True`` (the tool itself reported a failure)
    reaches the caller as a result and is never cached.
    """

    _name = "mcp.tool.provider"
    _description = "MCP Tool Provider"

    @api.model
    def _mcp_provides(self, tenant, tool_name):
        """Whether this provider runs ``tool_name`` for ``tenant`` (an mcp.tenant record)."""
        return False

    @api.model
    def _mcp_call_tool(self, tenant, tool_name, arguments):
        """Run the tool and return a JSON-serialisable result."""
        raise NotImplementedError(f"{self._name} claims {tool_name!r} but does not run it")

    @api.model
    def _mcp_cache_class(self, tenant, tool_name):
        """The TTL class under which the tool's results are cached when the caller names none
        (``None``: not cached). Only read-only tools should have one."""

    @api.model
    def _mcp_writes_data(self, tenant, tool_name):
        """Whether the tool may write to this database. The integrator runs each attempt of
        such a tool in a savepoint (a failed attempt leaves nothing half-written); a provider
        whose tool certainly writes nothing here (a remote server's) answers False and its
        calls skip the savepoint's two round trips."""
        return True

    @api.model
    @tools.ormcache()
    def _mcp_provider_models(self):
        """Names of the models that implement this hook, this abstract model excluded.

        Kept per registry: the providers only change when the registry is rebuilt."""
        return tuple(
            sorted(
                name
                for name in self.env.registry.descendants([self._name], "_inherit")
                if name != self._name
            )
        )
