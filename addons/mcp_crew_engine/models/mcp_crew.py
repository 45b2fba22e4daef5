# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..services import agent_loop, crew_config, routing


class McpCrew(models.Model):
    """A team of agents for one kind of request (sales, orders, returns...) of one tenant.

    The router picks the crew of each message from its routing hints: channels, keywords,
    example messages and purpose, the tenant's opening hours and enabled services.
    """

    _name = "mcp.crew"
    _inherit = "mcp.crew.config.mixin"
    _description = "AI Crew"
    _order = "tenant_id, sequence, id"
    _check_company_auto = True

    name = fields.Char(required=True, translate=True)
    code = fields.Char(
        required=True,
        help="Short identifier (a-z, 0-9, '_', '-'): what routing reasons and tools' crew "
        "lists use.",
    )
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    tenant_id = fields.Many2one("mcp.tenant", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="tenant_id.company_id", store=True, index=True)
    purpose = fields.Text(
        required=True,
        help="What the crew handles, in the customers' language; routing compares messages "
        "with it.",
    )
    keywords = fields.Text(help="Words or phrases that point to this crew, separated by commas.")
    examples = fields.Text(
        string="Example Messages", help="Messages this crew should take, one per line."
    )
    channels = fields.Char(
        help="Channels the crew serves, comma-separated (whatsapp, instagram, email...); "
        "empty: every channel."
    )
    service_id = fields.Many2one(
        "mcp.service",
        string="Needs Service",
        help="The crew only takes messages while the tenant offers this service.",
    )
    hours = fields.Selection(
        [
            ("any", "Any time"),
            ("open", "Only while open"),
            ("closed", "Only while closed"),
        ],
        string="Works",
        default="any",
        required=True,
    )
    process = fields.Selection(
        [
            (agent_loop.SEQUENTIAL, "Sequential"),
            (agent_loop.HIERARCHICAL, "Hierarchical (the first agent manages)"),
        ],
        default=agent_loop.SEQUENTIAL,
        required=True,
        help="Sequential: each agent in turn, the last one answers. Hierarchical: the first "
        "agent delegates to the others and combines their answers.",
    )
    agent_ids = fields.One2many("mcp.agent", "crew_id", string="Agents", copy=True)
    # bounds of every run of the crew, over all its agents (agent_loop.Limits)
    max_steps = fields.Integer(
        string="Run Step Limit", default=10, help="LLM calls one run may make, all agents."
    )
    max_tokens = fields.Integer(
        string="Run Token Limit", default=40_000, help="Prompt and answer tokens of one run."
    )
    max_seconds = fields.Float(
        string="Run Time Limit (s)", default=90.0, help="Wall time of one run, tools included."
    )
    llm_timeout = fields.Float(
        string="LLM Call Timeout (s)", default=30.0, help="Wait for one LLM answer at most."
    )
    run_count = fields.Integer(compute="_compute_run_count")

    _code_per_tenant_uniq = models.Constraint(
        "UNIQUE(tenant_id, code)", "This tenant already has a crew with this code."
    )
    _limits_positive = models.Constraint(
        "CHECK(max_steps >= 1 AND max_tokens >= 1 AND max_seconds > 0 AND llm_timeout > 0)",
        "A crew's run limits must be positive.",
    )

    def _compute_run_count(self):
        counts = dict(
            self.env["mcp.crew.run"]._read_group(
                [("crew_id", "in", self.ids)], ["crew_id"], ["__count"]
            )
        )
        for crew in self:
            crew.run_count = counts.get(crew, 0)

    @api.constrains("code", "purpose", "keywords", "examples", "channels", "hours")
    def _check_routing_hints(self):
        for crew in self:
            try:
                routing.CrewRoute.from_dict(crew._route_dict())
            except routing.RoutingConfigError as exc:
                raise ValidationError(
                    self.env._(
                        "Crew %(crew)s cannot be routed to: %(reason)s",
                        crew=crew.display_name,
                        reason=str(exc),
                    )
                ) from None

    def _route_dict(self):
        """What the router knows of the crew (``routing.CrewRoute.from_dict``)."""
        self.ensure_one()
        return {
            "code": self.code,
            "purpose": self.purpose or "",
            "keywords": self.keywords or "",
            "examples": self.examples or "",
            "channels": self.channels or "",
            "service": self.service_id.code or "",
            "hours": self.hours,
            "active": self.active,
        }

    # actions ----------------------------------------------------------------------------------
    def action_view_runs(self):
        self.ensure_one()
        actions = self.env["ir.actions.act_window"]
        action = actions._for_xml_id("mcp_crew_engine.action_mcp_crew_run")
        action["domain"] = [("crew_id", "=", self.id)]
        action["context"] = {}
        return action

    def action_try(self):
        self.ensure_one()
        actions = self.env["ir.actions.act_window"]
        action = actions._for_xml_id("mcp_crew_engine.action_mcp_crew_try")
        action["context"] = {"default_tenant_id": self.tenant_id.id}
        return action

    def _plan(self, default_model):
        """The crew as runs use it (:class:`~crew_config.CrewPlan`), kept with the tenant's
        configuration; agents without a model of their own take ``default_model``."""
        self.ensure_one()
        agents = self.agent_ids.filtered("active").sorted(lambda agent: (agent.sequence, agent.id))
        has_models = bool(agents) and all(agents.mapped("llm_model"))
        tools = agents.tool_ids
        return crew_config.CrewPlan(
            crew_id=self.id,
            code=self.code,
            process=self.process,
            limits={
                "max_steps": self.max_steps,
                "max_tokens": self.max_tokens,
                "max_seconds": self.max_seconds,
                "llm_timeout": min(self.llm_timeout, self.max_seconds),
            },
            # without any model the run answers without an LLM: no Agent can be built
            agents=tuple(agent._loop_agent(default_model) for agent in agents)
            if default_model or has_models
            else (),
            agents_have_models=has_models,
            reusable_tools=frozenset(
                tools.filtered(lambda tool: tool.read_only and tool.cache_class != "none").mapped(
                    "name"
                )
            ),
        )
