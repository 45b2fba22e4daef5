# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
import os

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import config

from odoo.addons.mcp_integrator.services import tool_calls
from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.queue_job.job import identity_exact

from ..services import (
    builtin_config,
    embeddings,
    mcp_client,
    qdrant_indexing,
    qdrant_store,
    server_config,
)
from ..services.odoo_tool_catalog import error_result
from ..services.process_pool import shared_pool
from .mcp_server import MANAGER

_logger = logging.getLogger(__name__)

DEFAULT_SEARCH_LIMIT = 5
#: Products per re-index job: a mass import becomes several bounded jobs.
SYNC_CHUNK = 500
#: The payload keys the indexers write, as the ``semantic_search`` filters they allow.
SEARCH_FILTERS = {
    "category": "products: category name, or a list of names",
    "category_id": "products: category id, or a list of ids",
    "default_code": "products: internal reference",
    "price": 'products: price bounds, e.g. {"lte": 100}',
    "topic": "business_rules, faq: topic",
    "lang": "business_rules, faq: language code, e.g. pt_BR",
}
FILTER_VALUE_SCHEMA = {
    "anyOf": [
        {"type": ["string", "integer", "boolean"]},
        {
            "type": "array",
            "items": {"type": ["string", "integer"]},
            "minItems": 1,
            "maxItems": 100,
        },
        {
            "type": "object",
            "properties": {op: {"type": "number"} for op in qdrant_store.RANGE_OPERATORS},
            "additionalProperties": False,
            "minProperties": 1,
        },
    ]
}


class McpServer(models.Model):
    """The built-in Qdrant tools ("MCP-Qdrant"): kind ``qdrant`` of ``mcp.server``.

    Each tenant has its own collections (``t<account_id>_products``, ``_business_rules``,
    ``_faq``), filled by queue jobs from Odoo's products and the tenant's business rules, and
    searched by meaning with the ``semantic_search`` tool.

    Without a URL the server uses qdrant-client's embedded engine in a directory of its own
    under Odoo's data directory. Only ONE process may open that directory: it suits an Odoo
    running with ``workers = 0`` (the threaded server, whose cron and job threads share the
    process). With several workers, set the URL of a Qdrant server.
    """

    # one file per built-in kind, like the Odoo kind: they share nothing but the model
    _inherit = "mcp.server"  # pylint: disable=consider-merging-classes-inherited

    qdrant_url = fields.Char(
        string="Qdrant URL",
        help="Address of a Qdrant server (e.g. http://qdrant:6333), needed when Odoo runs "
        "several workers. Empty: the embedded engine in Odoo's data directory, which only one "
        "process can open (workers = 0).",
    )
    qdrant_path = fields.Char(
        string="Embedded Qdrant Directory",
        groups=MANAGER,
        help="Directory of the embedded engine. Empty: <data_dir>/mcp_qdrant/<database>/"
        "server_<id>.",
    )
    qdrant_single_process_warning = fields.Boolean(compute="_compute_qdrant_single_process_warning")
    embedder = fields.Selection(
        [
            ("minilm", "Offline MiniLM (built in)"),
            ("litellm", "Embedding model through litellm"),
        ],
        default="minilm",
        help="Model that turns texts into vectors. Changing it requires re-indexing.",
    )
    embedding_model = fields.Char(
        help="litellm model name, e.g. openai/text-embedding-3-small; "
        "openai/<model> with an API base for any OpenAI-compatible server."
    )
    embedding_api_base = fields.Char(string="Embedding API Base")
    embedding_credential_id = fields.Many2one(
        "mcp.credential",
        check_company=True,
        domain="[('tenant_id', 'in', [tenant_id, False])]",
        help="API key of the embedding model's provider.",
    )
    index_run_ids = fields.One2many("mcp.index.run", "server_id", string="Index Runs")

    @api.depends("kind", "qdrant_url")
    def _compute_qdrant_single_process_warning(self):
        several_processes = bool(config["workers"])
        for server in self:
            server.qdrant_single_process_warning = (
                several_processes and server.kind == "qdrant" and not server.qdrant_url
            )

    @api.constrains("kind", "qdrant_url", "embedder", "embedding_model")
    def _check_qdrant_settings(self):
        for server in self.filtered(lambda server: server.kind == "qdrant"):
            if server.qdrant_url:
                try:
                    builtin_config.check_qdrant_url(server.qdrant_url)
                except ValueError as exc:
                    raise ValidationError(
                        self.env._("Qdrant server %(name)s: %(error)s", name=server.name, error=exc)
                    ) from None
            if server.embedder == "litellm" and not (server.embedding_model or "").strip():
                raise ValidationError(
                    self.env._(
                        "Qdrant server %(name)s needs the name of its embedding model.",
                        name=server.name,
                    )
                )

    def unlink(self):
        keys = [server._builtin_pool_key() for server in self]
        result = super().unlink()
        # The stores and clients this process keeps for them (an embedded Qdrant keeps its
        # directory locked) go once the deletion is committed.
        for key in keys:
            self.env.cr.postcommit.add(lambda key=key: shared_pool().discard(key))
        return result

    def _builtin_pool_key(self):
        """This server's entry in the process pool of the built-in kinds' clients."""
        return ("mcp.server", self.env.cr.dbname, self.id)

    def _credential_secret(self, credential):
        """The secret of ``credential`` (API key, token, password), or None without one."""
        if not credential:
            return None
        try:
            return server_config.credential_secret(
                credential.kind, credential._get_secret_values()
            )[1]
        except mcp_client.McpConfigError as exc:
            raise UserError(
                self.env._(
                    "Credential %(credential)s: %(error)s",
                    credential=credential.display_name,
                    error=str(exc),
                )
            ) from None

    # the store ------------------------------------------------------------------------------
    def _qdrant_local_path(self):
        self.ensure_one()
        return self.sudo().qdrant_path or os.path.join(
            config["data_dir"], "mcp_qdrant", self.env.cr.dbname, f"server_{self.id}"
        )

    def _qdrant_store(self):
        """This process's store of the server, shared by its threads: built on first use,
        rebuilt when the configuration (location, key, embedder) changes."""
        self.ensure_one()
        server = self.sudo()
        if server.embedder == "litellm":
            embedder_config = (
                "litellm",
                server.embedding_model,
                server.embedding_api_base or None,
                server._credential_secret(server.embedding_credential_id),
            )
        else:
            embedder_config = ("minilm",)
        if server.qdrant_url:
            location = ("url", server.qdrant_url, server._credential_secret(server.credential_id))
        else:
            location = ("path", server._qdrant_local_path(), None)
        return shared_pool().get(
            server._builtin_pool_key(),
            ("qdrant", location, server.timeout, embedder_config),
            lambda: server._qdrant_open(location, embedder_config),
            close=lambda store: store.close(),
        )

    def _qdrant_open(self, location, embedder_config):
        if embedder_config[0] == "litellm":
            _kind, model, api_base, api_key = embedder_config
            embedder = embeddings.LitellmEmbedder(
                model, api_base=api_base, api_key=api_key, timeout=self.timeout
            )
        else:
            # one model per process, shared by every server that uses it
            embedder = shared_pool().get(
                ("embedder", "minilm"), None, embeddings.OnnxMiniLMEmbedder
            )
        kind, where, api_key = location
        if kind == "url":
            return qdrant_indexing.IndexStore(
                embedder, url=where, api_key=api_key, timeout=self.timeout
            )
        if config["workers"]:
            _logger.warning(
                "MCP server %s uses the embedded Qdrant in %s, which only one process can open, "
                "while Odoo runs %s workers: set a Qdrant server URL on it.",
                self.display_name,
                where,
                config["workers"],
            )
        return qdrant_indexing.IndexStore(embedder, path=where)

    # tools ------------------------------------------------------------------------------------
    def _mcp_builtin_tools_qdrant(self):
        return [
            {
                "name": "semantic_search",
                "title": "Semantic search",
                "description": (
                    "Search this business's products, business rules or FAQ by meaning, as a "
                    "customer would ask (synonyms and typos are fine). Each hit has the id "
                    "(the product id for products), a score from 0 to 1, the indexed text and "
                    "its facts (name, category, price...)."
                ),
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "minLength": 1, "maxLength": 1000},
                        "purpose": {
                            "type": "string",
                            "enum": list(qdrant_store.PURPOSES),
                            "default": "products",
                            "description": "What to search.",
                        },
                        "filters": {
                            "type": "object",
                            "properties": {
                                key: {**FILTER_VALUE_SCHEMA, "description": description}
                                for key, description in SEARCH_FILTERS.items()
                            },
                            "additionalProperties": False,
                            "description": (
                                "Exact conditions on the hits: a value, a list of values (any "
                                "of) or gt/gte/lt/lte bounds."
                            ),
                        },
                        "limit": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": qdrant_store.MAX_LIMIT,
                            "default": DEFAULT_SEARCH_LIMIT,
                        },
                    },
                    "required": ["query"],
                    "additionalProperties": False,
                },
                "annotations": {
                    "read_only": True,
                    "destructive": False,
                    "idempotent": True,
                    "open_world": False,
                },
            }
        ]

    def _mcp_run_qdrant(self, tool, arguments):
        purpose = arguments.get("purpose", "products")
        account_id = self.sudo().tenant_id.account_id
        try:
            hits = self._qdrant_store().semantic_search(
                account_id,
                purpose,
                arguments["query"],
                limit=arguments.get("limit", DEFAULT_SEARCH_LIMIT),
                filters=arguments.get("filters"),
            )
        except qdrant_store.EmbedderMismatch as exc:
            raise tool_calls.PermanentToolError(str(exc)) from None
        except (qdrant_store.QdrantStoreError, embeddings.EmbeddingError) as exc:
            raise tool_calls.ToolUnavailable(str(exc)) from None
        except UserError as exc:
            raise tool_calls.PermanentToolError(str(exc)) from None
        except (ValueError, TypeError) as exc:  # a filter the store refuses: the model can fix it
            return error_result(str(exc))
        return {"purpose": purpose, "hits": hits}

    def _mcp_health_qdrant(self):
        account_id = self.sudo().tenant_id.account_id
        try:
            self._qdrant_store().semantic_search(account_id, "products", "health", limit=1)
        except (qdrant_store.QdrantStoreError, embeddings.EmbeddingError) as exc:
            raise UserError(str(exc)) from None

    # indexing ---------------------------------------------------------------------------------
    def action_qdrant_index_products(self):
        return self._qdrant_index_action("products")

    def action_qdrant_index_rules(self):
        return self._qdrant_index_action("business_rules")

    def _qdrant_index_action(self, purpose):
        for server in self:
            if server.kind != "qdrant":
                raise UserError(
                    self.env._("%(server)s is not a Qdrant server.", server=server.display_name)
                )
            self.env["mcp.index.run"]._enqueue(server, purpose)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "info",
                "message": self.env._("Indexing queued: its progress shows in the Indexing tab."),
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    def _qdrant_index(self, purpose, on_batch=None):
        """Job step: the tenant's ``purpose`` collection rebuilt from Odoo's data (items no
        longer there are dropped). Returns the counts of ``IndexStore.replace_all``."""
        self.ensure_one()
        server = self.sudo()
        account_id = server.tenant_id.account_id
        items = server._qdrant_documents(purpose)

        def replace(store):
            try:
                return store.replace_all(account_id, purpose, items, on_batch=on_batch)
            except qdrant_store.EmbedderMismatch:
                # The admin switched embedders: the old vectors cannot be searched any more.
                return store.replace_all(
                    account_id, purpose, items, on_batch=on_batch, recreate=True
                )

        return server._qdrant_job_call(replace)

    def _qdrant_sync_products(self, product_ids):
        """Job: re-index these products (product.product ids); those gone, archived or no
        longer sold or shown to the tenant's company leave the index. Until the products are
        indexed once ("Index Products"), nothing is written: a few products alone would pass
        for the whole catalogue."""
        server = self.sudo()
        account_id = server.tenant_id.account_id
        products = server._qdrant_products(product_ids)
        items = server._qdrant_product_documents(products)
        gone = sorted(set(product_ids) - set(products.ids))

        def sync(store):
            if not store.has_collection(account_id, "products"):
                return {"upserted": 0, "deleted": 0}
            if items:
                store.upsert(account_id, "products", items)
            if gone:
                store.delete(account_id, "products", gone)
            return {"upserted": len(items), "deleted": len(gone)}

        return server._qdrant_job_call(sync)

    def _qdrant_job_call(self, operation):
        """``operation(store)`` in a job: Qdrant or the embedding model not answering is worth
        a retry later, another embedder's collection is not."""
        try:
            return operation(self._qdrant_store())
        except qdrant_store.EmbedderMismatch:
            raise
        except (qdrant_store.QdrantStoreError, embeddings.EmbeddingError) as exc:
            raise RetryableJobError(str(exc)) from None

    def _qdrant_documents(self, purpose):
        if purpose == "products":
            return self._qdrant_product_documents(self._qdrant_products())
        tenant = self.tenant_id
        return qdrant_indexing.rules_documents(tenant.business_rules, tenant.language)

    def _qdrant_products(self, product_ids=None):
        """The products the tenant sells (of its company or shared), among ``product_ids``."""
        domain = [
            ("sale_ok", "=", True),
            ("company_id", "in", [self.tenant_id.company_id.id, False]),
        ]
        products = self.env["product.product"].sudo()
        if product_ids is None:
            return products.search(domain, order="id")
        return (
            products.browse(product_ids).exists().filtered_domain([("active", "=", True), *domain])
        )

    def _qdrant_product_documents(self, products):
        tenant = self.tenant_id
        return [
            qdrant_indexing.product_document(
                product.id,
                product.display_name,
                default_code=product.default_code,
                category=product.categ_id.name,
                description=product.description_sale,
                price=product.lst_price,
                category_id=product.categ_id.id,
                company_id=product.company_id.id,
                template_id=product.product_tmpl_id.id,
            )
            for product in products.with_context(lang=tenant.language, display_default_code=False)
        ]

    @api.model
    def _qdrant_products_changed(self, product_ids, company_ids):
        """Queue the re-index of these products for the Qdrant servers of the tenants that
        may show them; ``company_ids`` holds their companies before and after the change
        (False: a product shared by every company). Never indexes in the caller's
        transaction."""
        if not product_ids:
            return
        servers = self.sudo().search([("kind", "=", "qdrant"), ("enabled", "=", True)])
        if False not in company_ids:
            servers = servers.filtered(lambda server: server.company_id.id in company_ids)
        ids = sorted(set(product_ids))
        for server in servers:
            for start in range(0, len(ids), SYNC_CHUNK):
                server.with_delay(
                    identity_key=identity_exact,
                    description=self.env._(
                        "Re-index products for %(server)s", server=server.display_name
                    ),
                )._qdrant_sync_products(ids[start : start + SYNC_CHUNK])

    def _qdrant_tenant_changed(self, vals):
        """The tenant of these servers changed: re-index what depends on it (a new account id
        means new, empty collections)."""
        purposes = []
        if {"business_rules", "language", "account_id"} & set(vals):
            purposes.append("business_rules")
        if {"company_id", "account_id"} & set(vals):
            purposes.append("products")
        for server in self:
            for purpose in purposes:
                self.env["mcp.index.run"]._enqueue(server, purpose)
