# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import uuid

from odoo import fields, models
from odoo.exceptions import UserError


class McpCrewTry(models.TransientModel):
    """ "Try it": write as one of the tenant's customers and see the routing, the steps and
    the answer at once. Messages sent from one wizard are one conversation."""

    _name = "mcp.crew.try"
    _description = "Try the AI Crews"

    tenant_id = fields.Many2one("mcp.tenant", required=True)
    channel = fields.Char(default="whatsapp", required=True)
    message = fields.Text()
    conversation_ref = fields.Char(default=lambda self: f"try-{uuid.uuid4().hex[:16]}")
    run_id = fields.Many2one("mcp.crew.run", string="Last Run", readonly=True)
    crew_id = fields.Many2one(related="run_id.crew_id")
    routing_stage = fields.Selection(related="run_id.routing_stage")
    routing_reason = fields.Char(related="run_id.routing_reason")
    routing_score = fields.Float(related="run_id.routing_score")
    state = fields.Selection(related="run_id.state")
    answer = fields.Text(related="run_id.answer")
    handoff_reason = fields.Selection(related="run_id.handoff_reason")
    handoff_detail = fields.Char(related="run_id.handoff_detail")
    transcript = fields.Html(related="run_id.transcript")

    def action_send(self):
        self.ensure_one()
        if not (self.message or "").strip():
            raise UserError(self.env._("Write the customer's message first."))
        self.run_id = self.env["mcp.integrator"].ask(
            self.tenant_id,
            self.message,
            channel=self.channel.strip().lower(),
            conversation=self.conversation_ref,
            run_now=True,
        )
        self.message = False
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": self.env._("Try the AI Crews"),
        }
