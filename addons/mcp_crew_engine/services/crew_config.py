"""A tenant's crew configuration as plain, immutable data (no Odoo).

The Odoo side reads it from the database once per configuration and keeps it per process
(``mcp.tenant._crew_config``, cleared by any change of a tenant, crew, agent, FAQ entry, tool
or server): a run then reads nothing of the configuration from the database. Only what changes
by the minute is computed per run: whether the tenant is open now, what is left of its budget.
"""

from dataclasses import dataclass, field
from types import MappingProxyType

from .agent_loop import Limits, LitellmChat


@dataclass(frozen=True)
class CrewPlan:
    """One crew as a run uses it: ``agents`` are ``agent_loop.Agent`` objects, the manager
    first; ``reusable_tools`` the tools whose results a conversation may keep."""

    crew_id: int
    code: str
    process: str
    limits: dict
    agents: tuple = ()
    #: every active agent names its own model (the crew works without a default model)
    agents_have_models: bool = False
    reusable_tools: frozenset = frozenset()

    def run_limits(self, budget):
        return Limits(**self.limits, budget=budget)


@dataclass(frozen=True)
class TenantCrewConfig:
    """What a run needs of its tenant. ``profile`` is the behaviour profile without
    ``open_now`` (a copy is handed to each run); ``schedule`` the opening hours."""

    tenant_id: int
    account_id: int
    active: bool
    language: str
    llm_model: str
    llm_api_base: str | None
    daily_budget: float
    #: the company's, for prices in answers without an LLM
    currency: str
    schedule: object
    enabled_services: frozenset
    profile: MappingProxyType
    routes: tuple
    router_settings: object
    crews: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    #: kept in this process's memory only, like every credential Odoo reads
    llm_api_key: str | None = field(default=None, repr=False)

    def llm_chat(self):
        """A client for the tenant's LLM provider (a new one per run: it holds no state)."""
        return LitellmChat(api_base=self.llm_api_base, api_key=self.llm_api_key)

    def run_profile(self, open_now):
        """A fresh, mutable copy of the profile for one run."""
        profile = dict(self.profile)
        if any(self.schedule.intervals.values()):
            profile["open_now"] = open_now
        return profile
