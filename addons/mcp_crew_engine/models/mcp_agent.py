# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..services import agent_loop
from .mcp_crew_config_mixin import check_llm_model

MAX_TEMPERATURE = 2.0


class McpAgent(models.Model):
    """One agent of a crew: who it is, what it may use, and how far it may go."""

    _name = "mcp.agent"
    _inherit = "mcp.crew.config.mixin"
    _description = "AI Agent"
    _order = "crew_id, sequence, id"
    _check_company_auto = True

    name = fields.Char(
        required=True, help="How the other agents of the crew call it (unique in the crew)."
    )
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    crew_id = fields.Many2one("mcp.crew", required=True, index=True, ondelete="cascade")
    tenant_id = fields.Many2one(related="crew_id.tenant_id", store=True, index=True)
    company_id = fields.Many2one(related="crew_id.company_id", store=True, index=True)
    role = fields.Char(required=True, help="e.g. a sales assistant of a clothing store")
    goal = fields.Text(help="What the agent is after, in one sentence.")
    instructions = fields.Text(help="How it works: steps, what to check, what never to do.")
    llm_model = fields.Char(
        string="LLM Model",
        help="A litellm model string (provider/model); empty: the tenant's or the default one.",
    )
    temperature = fields.Float(
        default=0.0,
        digits=(3, 2),
        help="0 gives the same answer to the same question, and lets identical requests be "
        "answered from the cache.",
    )
    tool_ids = fields.Many2many(
        "mcp.tool",
        string="Tools",
        domain="[('tenant_id', '=', tenant_id), ('enabled', '=', True)]",
        help="Tools of the tenant's MCP servers the agent may call.",
    )
    max_steps = fields.Integer(
        string="Step Limit", default=6, help="LLM calls this agent may make in one run."
    )

    _name_per_crew_uniq = models.Constraint(
        "UNIQUE(crew_id, name)", "This crew already has an agent with this name."
    )
    _max_steps_positive = models.Constraint(
        "CHECK(max_steps >= 1)", "An agent's step limit must be at least 1."
    )
    _temperature_range = models.Constraint(
        f"CHECK(temperature >= 0 AND temperature <= {MAX_TEMPERATURE})",
        "The temperature must be between 0 and 2.",
    )

    @api.constrains("llm_model")
    def _check_llm_model(self):
        for agent in self:
            check_llm_model(self.env, agent.llm_model)

    @api.constrains("tool_ids", "crew_id")
    def _check_tools(self):
        for agent in self:
            for tool in agent.tool_ids:
                refusal = agent._tool_refusal(tool)
                if refusal:
                    raise ValidationError(refusal)

    def _tool_refusal(self, tool):
        """Why the agent may not have ``tool``: another tenant's, or not for its crew."""
        self.ensure_one()
        if tool.tenant_id != self.tenant_id:
            return self.env._(
                "Agent %(agent)s cannot use %(tool)s: it is another tenant's tool.",
                agent=self.name,
                tool=tool.name,
            )
        allowed = tool.crew_list()
        if allowed and self.crew_id.code not in allowed:
            return self.env._(
                "Agent %(agent)s cannot use %(tool)s: the tool is only for the crews %(crews)s.",
                agent=self.name,
                tool=tool.name,
                crews=", ".join(allowed),
            )
        return None

    def _usable_tools(self):
        """The tools the agent may call now: allowed for its crew, enabled and available."""
        self.ensure_one()
        return self.tool_ids.filtered(
            lambda tool: not self._tool_refusal(tool) and not tool._call_refusal(self.tenant_id)
        )

    def _loop_agent(self, default_model):
        self.ensure_one()
        return agent_loop.Agent(
            name=self.name,
            role=self.role,
            model=self.llm_model or default_model,
            goal=self.goal or "",
            instructions=self.instructions or "",
            temperature=self.temperature,
            tools=tuple(tool._mcp_descriptor() for tool in self._usable_tools()),
            max_steps=self.max_steps,
        )
