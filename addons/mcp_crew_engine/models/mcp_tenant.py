# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
from datetime import datetime, time
from types import MappingProxyType

from odoo import api, fields, models, tools

from odoo.addons.mcp_connectors.services import embeddings
from odoo.addons.mcp_connectors.services.process_pool import shared_pool
from odoo.addons.mcp_integrator.models.res_config_settings import PARAM_PREFIX
from odoo.addons.mcp_integrator.services import hours as hours_service

from ..services import crew_config, crew_requests, fallback_answers, routing
from .mcp_crew_config_mixin import check_llm_model

_logger = logging.getLogger(__name__)

DEFAULT_MODEL_PARAM = PARAM_PREFIX + "default_llm_model"
# The built-in Odoo tool the answers without an LLM search products with.
PRODUCT_SEARCH_TOOL = "odoo_product_search"
# The FAQ rides in every LLM call of a run: a bounded part of it.
MAX_PROMPT_FAQ = 30
MAX_PROMPT_FAQ_CHARS = 4000


class McpTenant(models.Model):
    _inherit = "mcp.tenant"

    crew_ids = fields.One2many("mcp.crew", "tenant_id", string="Crews")
    faq_ids = fields.One2many("mcp.tenant.faq", "tenant_id", string="FAQ", copy=True)
    llm_model = fields.Char(
        string="LLM Model",
        help="A litellm model string (provider/model, e.g. openai/gpt-4o-mini) for this tenant's "
        "agents that name none; empty: the default model of the Settings. With neither, the "
        "crews answer without an LLM (hours, FAQ, rules, products) and hand off the rest.",
    )
    llm_api_base = fields.Char(
        string="LLM Endpoint",
        help="Base URL of an OpenAI-compatible endpoint (a local or self-hosted model); empty: "
        "the provider's own.",
    )
    llm_credential_id = fields.Many2one(
        "mcp.credential",
        string="LLM API Key",
        domain="[('tenant_id', 'in', (id, False)), ('kind', 'in', ('api_key', 'bearer'))]",
        help="API key of the LLM provider; empty: litellm reads the provider's environment "
        "variable (OPENAI_API_KEY...).",
    )
    llm_daily_budget = fields.Float(
        string="Daily LLM Budget (USD)",
        digits=(16, 4),
        help="What this tenant's runs may spend on LLM calls per local day, in litellm's cost "
        "map currency (USD); 0: no cap. Once spent, customers get answers without an LLM and "
        "a person takes over the rest.",
    )
    llm_spent_today = fields.Float(
        string="LLM Spent Today (USD)", digits=(16, 6), compute="_compute_llm_spent_today"
    )
    routing_when_unsure = fields.Selection(
        [("best_guess", "Best guess"), ("handoff", "Hand off to a person")],
        string="When Routing Is Unsure",
        default="best_guess",
        required=True,
        help="What happens to a message no crew clearly fits and no LLM classifier settles.",
    )

    _llm_daily_budget_positive = models.Constraint(
        "CHECK(llm_daily_budget >= 0)", "The daily LLM budget cannot be negative."
    )

    @api.constrains("llm_model")
    def _check_llm_model(self):
        for tenant in self:
            check_llm_model(self.env, tenant.llm_model)

    def _compute_llm_spent_today(self):
        for tenant in self:
            tenant.llm_spent_today = tenant._llm_spent_today()

    # LLM -------------------------------------------------------------------------------------
    def _llm_default_model(self):
        """The model of agents that name none: the tenant's, else the Settings' (or empty)."""
        self.ensure_one()
        default = self.env["ir.config_parameter"].sudo().get_param(DEFAULT_MODEL_PARAM)
        return self.llm_model or default or ""

    def _llm_api_key(self):
        """The LLM provider's key of the tenant's credential, or None (litellm then reads the
        provider's environment variable)."""
        self.ensure_one()
        if not self.llm_credential_id:
            return None
        values = self.llm_credential_id._get_secret_values()
        return values.get("api_key") or values.get("token")

    def _llm_day_start(self):
        """The start of the tenant's local day, as naive UTC."""
        self.ensure_one()
        local_now = hours_service.local_time(fields.Datetime.now(), self.tz)
        start = datetime.combine(local_now.date(), time.min, tzinfo=local_now.tzinfo)
        return start.astimezone(hours_service.zone("UTC")).replace(tzinfo=None)

    def _llm_spent_today(self):
        self.ensure_one()
        if not self.id:
            return 0.0
        [(spent,)] = (
            self.env["mcp.crew.run"]
            .sudo()
            ._read_group(
                [("tenant_id", "=", self.id), ("create_date", ">=", self._llm_day_start())],
                aggregates=["cost:sum"],
            )
        )
        return spent or 0.0

    def _llm_remaining_budget(self, config):
        """What may still be spent today; None when there is no cap."""
        self.ensure_one()
        if not config.daily_budget:
            return None
        return max(0.0, config.daily_budget - self._llm_spent_today())

    # the configuration a run reads ------------------------------------------------------------
    def _mcp_invalidate(self, tenants, resource_type, resource_id):
        result = super()._mcp_invalidate(tenants, resource_type, resource_id)
        # hours, services, FAQ, LLM settings: the kept crew configuration is out of date
        self.env.registry.clear_cache()
        return result

    def _crew_config(self):
        """The tenant's :class:`~crew_config.TenantCrewConfig`, read once per configuration
        and local day (the profile lists the holidays still to come)."""
        self.ensure_one()
        today = hours_service.local_time(fields.Datetime.now(), self.tz).date()
        return self._read_crew_config(self.id, today)

    @api.model
    @tools.ormcache("tenant_id", "today")
    def _read_crew_config(self, tenant_id, today):
        tenant = self.sudo().with_context(active_test=False).browse(tenant_id)
        profile = tenant._behaviour_profile()
        profile.pop("open_now")
        profile["faq"] = tenant._faq_for_agents()
        default_model = tenant._llm_default_model()
        crews = tenant.crew_ids.filtered("active").sorted(lambda crew: (crew.sequence, crew.id))
        return crew_config.TenantCrewConfig(
            tenant_id=tenant.id,
            account_id=tenant.account_id,
            active=tenant.active,
            language=tenant.language,
            llm_model=default_model,
            llm_api_base=tenant.llm_api_base or None,
            llm_api_key=tenant._llm_api_key(),
            daily_budget=tenant.llm_daily_budget,
            currency=tenant.company_id.currency_id.name or "BRL",
            schedule=tenant._schedule(),
            enabled_services=frozenset(tenant.service_ids.mapped("code")),
            profile=MappingProxyType(profile),
            routes=tuple(crew._route_dict() for crew in crews),
            router_settings=routing.RouterSettings(when_unsure=tenant.routing_when_unsure),
            crews=MappingProxyType({crew.code: crew._plan(default_model) for crew in crews}),
        )

    def _schedule(self):
        self.ensure_one()
        holidays = self.holiday_ids
        return fallback_answers.Schedule(
            tz=self.tz,
            intervals=self._weekly_intervals(),
            holidays=tuple(holidays.filtered(lambda day: not day.yearly).mapped("date")),
            yearly_holidays=tuple((day.date.month, day.date.day) for day in holidays if day.yearly),
        )

    # routing ---------------------------------------------------------------------------------
    @api.model
    def _crew_router(self, config, llm_classifier=None):
        """The tenant's Router, built once per process and routing configuration."""
        key = ("crew-router", self.env.cr.dbname, config.tenant_id)
        router = shared_pool().get(
            key,
            (config.routes, config.router_settings),
            lambda: routing.Router(
                config.routes, embedder=_embedder(), settings=config.router_settings
            ),
        )
        return router.with_classifier(llm_classifier) if llm_classifier else router

    @api.model
    def _open_now(self, config):
        """Whether the tenant is open now; None without opening hours."""
        schedule = config.schedule
        if not any(schedule.intervals.values()):
            return None
        return hours_service.is_open(
            fields.Datetime.now(),
            schedule.tz,
            schedule.intervals,
            holidays=schedule.holidays,
            yearly_holidays=schedule.yearly_holidays,
        )

    @api.model
    def _routing_request(self, config, text, channel):
        return routing.RoutingRequest(
            text=text,
            channel=channel or "",
            is_open=self._open_now(config),
            enabled_services=config.enabled_services,
        )

    # answers without an LLM ------------------------------------------------------------------
    @api.model
    def _fallback_answerer(self, config):
        """The tenant's answerer without an LLM, built once per process and configuration:
        its FAQ and rules are embedded once, not for every message."""
        faq = tuple(fallback_answers.FaqEntry(*entry) for entry in config.profile["faq"])
        rules = config.profile["business_rules"]
        return shared_pool().get(
            ("crew-fallback", self.env.cr.dbname, config.tenant_id),
            (config.language, config.schedule, faq, rules, config.currency),
            lambda: fallback_answers.FallbackAnswerer(
                config.language,
                hours_service=hours_service,
                schedule=config.schedule,
                faq=faq,
                rules=rules,
                embedder=_embedder(),
                currency=config.currency,
            ),
        )

    def _fallback_product_search(self):
        """``(text, limit) -> products`` through the tenant's enabled built-in product search
        tool (so its access rules and cache apply), or None without one."""
        tool = self.env["mcp.tool"].search(
            [
                ("tenant_id", "=", self.id),
                ("remote_name", "=", PRODUCT_SEARCH_TOOL),
                ("kind", "=", "odoo"),
                ("enabled", "=", True),
                ("available", "=", True),
            ],
            limit=1,
        )
        if not tool:
            return None
        integrator = self.env["mcp.integrator"]

        def search(text, limit):
            # the tool ANDs its words: one search per content word, longest (most telling) first
            found = {}
            words = sorted(set(fallback_answers.content_stems(text)), key=len, reverse=True)
            for word in words[:3]:
                result = integrator.call_tool(self, tool.name, {"query": word, "limit": limit})
                for product in result.get("products", []) if isinstance(result, dict) else []:
                    if "qty_available" in product:  # storable products only
                        product = {**product, "available": product["qty_available"] > 0}
                    found.setdefault(product.get("id"), product)
            return list(found.values())[:limit]

        return search

    def _faq_for_agents(self):
        """The FAQ as the agents' prompt carries it: ``[(question, answer)]``, bounded."""
        self.ensure_one()
        entries, size = [], 0
        for entry in self.faq_ids.filtered("active"):
            size += len(entry.question) + len(entry.answer)
            if len(entries) >= MAX_PROMPT_FAQ or size > MAX_PROMPT_FAQ_CHARS:
                break
            entries.append([entry.question, entry.answer])
        return entries

    def _crew_cache(self):
        """The integrator's Cache, or None when the settings cannot work."""
        return self.env["mcp.integrator"]._cache_or_none()

    def _routing_cache(self):
        self.ensure_one()
        return crew_requests.RoutingCache(self._crew_cache(), self.account_id)


def _embedder():
    """The offline embedding model shared by the process, or None when it is not installed
    (routing then works on keywords, answers without an LLM on keyword overlap)."""

    def load():
        embeddings.default_minilm_files()  # EmbeddingError now rather than at the first embed
        return embeddings.OnnxMiniLMEmbedder()

    try:
        return shared_pool().get(("embedder", "minilm"), None, load)
    except embeddings.EmbeddingError as exc:
        _logger.warning("Crew routing without the offline embedding model: %s", exc)
        return None
