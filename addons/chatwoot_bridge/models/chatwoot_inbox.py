# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

#: Chatwoot's inbox channel types, as the channel names crews serve (mcp.crew.channels).
CHANNEL_NAMES = {
    "Channel::WebWidget": "webchat",
    "Channel::Whatsapp": "whatsapp",
    "Channel::FacebookPage": "facebook",
    "Channel::Instagram": "instagram",
    "Channel::Email": "email",
    "Channel::Sms": "sms",
    "Channel::TwilioSms": "sms",
    "Channel::Telegram": "telegram",
    "Channel::Line": "line",
    "Channel::Api": "api",
}


class ChatwootInbox(models.Model):
    """A Chatwoot inbox of an account: whether and by which crew the AI answers there, and,
    for an API inbox, the channel connector whose customers it holds (the hub)."""

    _name = "chatwoot.inbox"
    _description = "Chatwoot Inbox"
    _order = "account_id, name, id"
    _check_company_auto = True

    account_id = fields.Many2one("chatwoot.account", required=True, index=True, ondelete="cascade")
    tenant_id = fields.Many2one(related="account_id.tenant_id", store=True, index=True)
    company_id = fields.Many2one(related="account_id.company_id", store=True, index=True)
    inbox_id = fields.Integer(string="Chatwoot Inbox ID", required=True)
    name = fields.Char(required=True)
    channel_type = fields.Char(
        string="Chatwoot Channel", readonly=True, help="e.g. Channel::Api, Channel::Whatsapp"
    )
    ai_enabled = fields.Boolean(
        string="AI Answers", default=True, help="Off: the AI never answers in this inbox."
    )
    crew_id = fields.Many2one(
        "mcp.crew",
        check_company=True,
        domain="[('tenant_id', '=', tenant_id)]",
        help="The crew that answers every message of this inbox; empty: routing picks one.",
    )
    channel_connector_id = fields.Many2one(
        "mcp.channel",
        check_company=True,
        domain="[('tenant_id', '=', tenant_id)]",
        help="For an API inbox: the channel (Mercado Livre, Shopee...) whose conversations "
        "this inbox holds. Replies posted here are sent back through it.",
    )

    _inbox_per_account_uniq = models.Constraint(
        "UNIQUE(account_id, inbox_id)", "This Chatwoot inbox is already listed."
    )
    _connector_uniq = models.Constraint(
        "UNIQUE(channel_connector_id)", "A channel connector goes to one inbox only."
    )

    @api.constrains("crew_id", "channel_connector_id", "account_id")
    def _check_tenant(self):
        for inbox in self:
            for record in (inbox.crew_id, inbox.channel_connector_id):
                if record and record.tenant_id != inbox.tenant_id:
                    raise ValidationError(
                        self.env._(
                            "%(record)s belongs to another tenant than the inbox %(inbox)s.",
                            record=record.display_name,
                            inbox=inbox.name,
                        )
                    )

    @api.model_create_multi
    def create(self, vals_list):
        inboxes = super().create(vals_list)
        self.env.registry.clear_cache()  # the accounts' kept webhook configuration
        return inboxes

    def write(self, vals):
        result = super().write(vals)
        self.env.registry.clear_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()
        return result

    def _channel_name(self):
        """The channel name the crews see for messages of this inbox."""
        if self.channel_connector_id:
            return self.channel_connector_id.channel_type
        return CHANNEL_NAMES.get(self.channel_type or "", "chatwoot")

    @api.model
    def _sync_from_chatwoot(self, account, inboxes):
        """Add the inboxes Chatwoot lists, refresh the names of the known ones."""
        known = {inbox.inbox_id: inbox for inbox in account.inbox_ids}
        for data in inboxes:
            values = {
                "name": data.get("name") or str(data["id"]),
                "channel_type": data.get("channel_type"),
            }
            if data["id"] in known:
                known[data["id"]].write(values)
            else:
                self.create({**values, "account_id": account.id, "inbox_id": data["id"]})
