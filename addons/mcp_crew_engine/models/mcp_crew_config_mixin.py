# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models
from odoo.exceptions import ValidationError

from odoo.addons.mcp_integrator.models.res_config_settings import LLM_MODEL


class McpCrewConfigMixin(models.AbstractModel):
    """Crews and agents: a tenant's configuration records whose changes also drop its routing
    decisions, stored answers and kept crew configuration."""

    _name = "mcp.crew.config.mixin"
    _inherit = "mcp.config.mixin"
    _description = "AI Crew Configuration Mixin"

    def _mcp_tenants(self):
        return self.tenant_id

    def _mcp_cache_resource(self):
        return self._table, self.id

    def _mcp_invalidate(self, tenants, resource_type, resource_id):
        result = super()._mcp_invalidate(tenants, resource_type, resource_id)
        self.env["mcp.crew.run"]._forget_decisions(tenants)
        return result


def check_llm_model(env, model):
    """Refuse ``model`` unless it is empty or a litellm model string (provider/model)."""
    if model and not LLM_MODEL.fullmatch(model):
        raise ValidationError(
            env._(
                'The LLM model "%(model)s" is not a litellm model string: write it as '
                "provider/model, e.g. openai/gpt-4o-mini.",
                model=model,
            )
        )
