# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, models
from odoo.exceptions import UserError

from ..services import routing


class McpIntegrator(models.AbstractModel):
    _inherit = "mcp.integrator"

    @api.model
    def ask(
        self,
        tenant,
        text,
        channel=None,
        conversation=None,
        message_id=None,
        record=None,
        run_now=False,
        reply_to=None,
        crew=None,
        handoff=None,
    ):
        """Have ``tenant``'s crews answer ``text``; return the ``mcp.crew.run`` recording it.

        :param tenant: an ``mcp.tenant`` record, or its Chatwoot account id
        :param channel: where the message came from (``whatsapp``, ``internal``...); crews may
            serve some channels only
        :param conversation: the conversation's reference on that channel: turns of one
            conversation share their context, and a ``message_id`` seen before in it returns
            the run already recorded instead of a new one
        :param record: a record with a chatter asking for itself; the answer is posted there
        :param run_now: answer in this transaction instead of a queued job (no retries: an LLM
            provider failure hands off at once)
        :param reply_to: the delivery hook that receives the answer (``_mcp_deliver_<name>`` of
            ``mcp.crew.run``, e.g. the Chatwoot bridge's); ``record`` sets it to ``record``
        :param crew: an ``mcp.crew`` of the tenant that answers without routing (a channel
            served by one crew)
        :param handoff: ``(reason, detail)``: record the request and hand it to a person
            without asking the crews (``reason`` one of ``mcp.crew.run``'s handoff reasons,
            e.g. ``out_of_hours``)
        """
        tenant = self._ask_tenant(tenant)
        if channel and not routing.CHANNEL_PATTERN.fullmatch(channel):
            raise UserError(
                self.env._(
                    "Invalid channel %(channel)r: use lowercase letters, digits, '_', '.' or '-'.",
                    channel=channel,
                )
            )
        extra = {}
        if record is not None:
            record.ensure_one()
            extra = {"origin_model": record._name, "origin_id": record.id}
            reply_to = reply_to or "record"
        runs = self.env["mcp.crew.run"].sudo()
        if crew:
            if crew.tenant_id != tenant:
                raise UserError(
                    self.env._(
                        "Crew %(crew)s is not a crew of this tenant.", crew=crew.display_name
                    )
                )
            extra["crew_id"] = crew.id
        if handoff:
            extra["handoff_reason"], extra["handoff_detail"] = handoff
        if reply_to:
            if reply_to not in runs._fields["reply_to"].get_values(self.env):
                raise UserError(
                    self.env._(
                        "No delivery %(reply_to)r: no installed addon delivers answers there.",
                        reply_to=reply_to,
                    )
                )
            extra["reply_to"] = reply_to
        run, created = runs._record_request(
            tenant, text, channel or "internal", conversation, message_id, **extra
        )
        if created:
            if run_now:
                run._perform()
            else:
                run._enqueue()
        return run

    @api.model
    def _ask_tenant(self, tenant):
        """The tenant asked for (a record or a Chatwoot account id), of a company the caller
        works in. An archived tenant's requests are recorded and handed off to a person."""
        if isinstance(tenant, int) and not isinstance(tenant, bool):
            tenant = (
                self.env["mcp.tenant"]
                .sudo()
                .with_context(active_test=False)
                .search([("account_id", "=", tenant)], limit=1)
            )
        if not isinstance(tenant, models.BaseModel) or tenant._name != "mcp.tenant" or not tenant:
            raise UserError(self.env._("No AI tenant has this account id or record."))
        tenant.ensure_one()
        if tenant.company_id not in self.env.companies:
            raise UserError(
                self.env._(
                    "The AI tenant %(tenant)s belongs to a company you do not work in.",
                    tenant=tenant.sudo().display_name,
                )
            )
        return tenant.sudo()
