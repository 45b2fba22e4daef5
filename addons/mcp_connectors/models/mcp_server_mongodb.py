# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from odoo.addons.mcp_integrator.services import tool_calls
from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.queue_job.job import identity_exact

from ..services import builtin_config, mongo_tools
from ..services.odoo_tool_catalog import error_result
from ..services.process_pool import shared_pool

#: ``client_factory`` of the MongoDB tools, None for pymongo's ``MongoClient``. The tests set
#: ``mongomock.MongoClient`` here, as no MongoDB server can run where they do.
CLIENT_FACTORY = None
#: Keys of the tenant's behaviour profile that only hold at the moment it is computed.
UNPUBLISHED_KEYS = ("open_now",)


class McpServer(models.Model):
    """The built-in MongoDB tools ("MCP-MongoDB"): kind ``mongodb`` of ``mcp.server``.

    Each tenant has its own collections (``t<account_id>_config``, ``_behaviour`` and the
    allow-listed ones); the tools read them, ``mongo_find`` with bounded, checked filters.
    The URI is stored without its password, which comes from the credential at connect time,
    so that the URI can be shown and audited.
    """

    # one file per built-in kind, like the Odoo kind: they share nothing but the model
    _inherit = "mcp.server"  # pylint: disable=consider-merging-classes-inherited

    mongo_uri = fields.Char(
        string="MongoDB URI",
        help="mongodb:// or mongodb+srv:// address with the user name but WITHOUT the password "
        "(e.g. mongodb://bot@db:27017/?authSource=admin): the password is the credential's.",
    )
    mongo_database = fields.Char(string="MongoDB Database")
    mongo_collections = fields.Char(
        string="Collections for Find",
        help="Comma-separated collections the mongo_find tool may search, without the tenant "
        "prefix: each tenant only ever reaches its own t<account id>_<name>.",
    )

    @api.constrains("kind", "mongo_uri", "mongo_database", "mongo_collections", "timeout")
    def _check_mongodb_settings(self):
        for server in self.filtered(lambda server: server.kind == "mongodb"):
            try:
                builtin_config.mongo_settings(
                    server.mongo_uri, server.mongo_database, server.timeout
                )
                mongo_tools.tool_descriptors(server._mongo_allowed_collections())
            except mongo_tools.MongoConfigError as exc:
                raise ValidationError(
                    self.env._("MongoDB server %(name)s: %(error)s", name=server.name, error=exc)
                ) from None

    def _mongo_allowed_collections(self):
        return [name.strip() for name in (self.mongo_collections or "").split(",") if name.strip()]

    def _mongo_tools(self):
        """This process's MongoDB tools of the server; a settings change closes the old
        client pools (they re-open lazily)."""
        self.ensure_one()
        server = self.sudo()
        credential = server.credential_id
        username = password = None
        if credential.kind == "basic":
            secrets = credential._get_secret_values()
            username, password = secrets["username"], secrets["password"]
        elif credential:
            password = server._credential_secret(credential)
        try:
            settings = builtin_config.mongo_settings(
                server.mongo_uri, server.mongo_database, server.timeout, username, password
            )
        except mongo_tools.MongoConfigError as exc:
            raise UserError(str(exc)) from None
        factory = CLIENT_FACTORY
        return shared_pool().get(
            server._builtin_pool_key(),
            ("mongodb", settings, factory),
            lambda: mongo_tools.MongoTools(settings, client_factory=factory),
            # The module keeps one client per settings; closing them all is the only way to
            # close the old one (rare: a configuration change).
            close=lambda _tools: mongo_tools.close_clients(),
        )

    # tools ------------------------------------------------------------------------------------
    def _mcp_builtin_tools_mongodb(self):
        allowed = self._mongo_allowed_collections()
        return [
            descriptor
            for descriptor in mongo_tools.tool_descriptors(allowed)
            if allowed or descriptor["name"] != "mongo_find"
        ]

    def _mcp_run_mongodb(self, tool, arguments):
        try:
            tools = self._mongo_tools()
            return tools.call_tool(
                self.sudo().tenant_id.account_id,
                tool.remote_name,
                arguments,
                allowed_collections=self._mongo_allowed_collections(),
            )
        except mongo_tools.MongoRefused as exc:  # a filter or name the model can fix
            return error_result(str(exc))
        except mongo_tools.MongoUnavailable as exc:
            raise tool_calls.ToolUnavailable(str(exc)) from None
        except (mongo_tools.MongoToolError, UserError) as exc:
            raise tool_calls.PermanentToolError(str(exc)) from None

    def _mcp_health_mongodb(self):
        try:
            self._mongo_tools().get_behaviour(self.sudo().tenant_id.account_id)
        except mongo_tools.MongoToolError as exc:
            raise UserError(str(exc)) from None

    # the behaviour document -------------------------------------------------------------------
    def action_mongo_publish_behaviour(self):
        """Button: publish the tenant's behaviour document now."""
        for server in self:
            try:
                server._mongo_publish_behaviour()
            except mongo_tools.MongoToolError as exc:  # its message names the server
                raise UserError(str(exc)) from None
        return True

    def _mongo_publish_behaviour(self):
        """Write the tenant's behaviour profile as its MongoDB behaviour document."""
        self.ensure_one()
        tenant = self.sudo().tenant_id
        document = {
            key: value
            for key, value in tenant._behaviour_profile().items()
            if key not in UNPUBLISHED_KEYS
        }
        return self._mongo_tools().put_behaviour(tenant.account_id, document)

    def _mongo_job_publish_behaviour(self):
        """Job: publish the behaviour document; MongoDB not answering is retried later."""
        try:
            return self.sudo()._mongo_publish_behaviour()
        except mongo_tools.MongoUnavailable as exc:
            raise RetryableJobError(str(exc)) from None

    def _mongo_tenant_changed(self):
        """The tenant of these servers changed: queue the publication of its behaviour."""
        for server in self:
            server.with_delay(
                identity_key=identity_exact,
                description=self.env._(
                    "Publish the behaviour of %(tenant)s to %(server)s",
                    tenant=server.tenant_id.display_name,
                    server=server.display_name,
                ),
            )._mongo_job_publish_behaviour()
