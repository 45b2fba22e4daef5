# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import json

from odoo import Command, api, fields, models
from odoo.fields import Domain
from odoo.tools import email_normalize, html2plaintext, json_default, plaintext2html
from odoo.tools.sql import SQL

from odoo.addons.mcp_integrator.services import hours, tool_calls

from ..services import odoo_access_policy, phone_numbers
from ..services.odoo_tool_catalog import (
    ACTIVITY_TARGETS,
    ACTIVITY_TYPES,
    DEFAULT_PARTNERS,
    DEFAULT_PRODUCTS,
    DEFAULT_RECORDS,
    ToolFailure,
)

MAX_ORDER_LINES = 20
MAX_VARIANTS = 50
MAX_VALUE_CHARS = 1000
PHONE_CANDIDATES = 200


class McpOdooTools(models.AbstractModel):
    """The built-in Odoo tools. Always used in the environment ``mcp.server`` builds for them
    (the tenant's technical user, no superuser rights), so every search, read and create below
    is checked by Odoo's access rights and record rules.

    ``_tool_<name>(tenant, arguments)``: one method per tool of ``odoo_tool_catalog``, with
    arguments already valid against its schema. A result is a compact JSON-serialisable dict;
    :class:`ToolFailure` reports what the model should read.
    """

    _name = "mcp.odoo.tools"
    _description = "Built-in Odoo Tools (MCP-Odoo)"

    # products -------------------------------------------------------------------------------
    @api.model
    def _tool_odoo_product_search(self, tenant, arguments):
        domain = Domain("sale_ok", "=", True)
        query = (arguments.get("query") or "").strip()
        if query:
            words = Domain.AND(Domain("name", "ilike", word) for word in query.split())
            domain &= words | Domain("default_code", "ilike", query) | Domain("barcode", "=", query)
        if arguments.get("category"):
            domain &= Domain("categ_id.complete_name", "ilike", arguments["category"].strip())
        limit = arguments.get("limit", DEFAULT_PRODUCTS)
        products = self.env["product.product"].search(domain, limit=limit + 1)
        pricelist = self._pricelist(arguments.get("pricelist_id"))
        prices = self._prices(pricelist, products[:limit])
        return {
            "products": [self._product_summary(product, prices) for product in products[:limit]],
            "more": len(products) > limit,
            **self._pricelist_summary(pricelist),
        }

    @api.model
    def _tool_odoo_product_details(self, tenant, arguments):
        product, asked = self._product_for_sale(arguments)
        if not product:
            raise ToolFailure(
                self.env._(
                    "No single product for sale matches %(asked)s: search for it first.",
                    asked=asked,
                )
            )
        template = product.product_tmpl_id
        variants = template.product_variant_ids[:MAX_VARIANTS]
        pricelist = self._pricelist(arguments.get("pricelist_id"))
        prices = self._prices(pricelist, product | variants)
        description = template.description_sale or html2plaintext(template.description or "")
        return {
            **self._product_summary(product, prices),
            "description": description[:MAX_VALUE_CHARS],
            "type": product.type,
            "attributes": [
                {"name": line.attribute_id.name, "values": line.value_ids.mapped("name")}
                for line in template.attribute_line_ids
            ],
            "variants": [
                {
                    **self._product_summary(variant, prices),
                    "attributes": variant.product_template_attribute_value_ids.mapped(
                        "display_name"
                    ),
                }
                for variant in variants
            ]
            if len(variants) > 1
            else [],
            **self._pricelist_summary(pricelist),
        }

    @api.model
    def _product_for_sale(self, arguments):
        """``(product, asked)``: the one product for sale with the ``product_id`` or the
        ``default_code`` of ``arguments`` (empty when none or several match), and what was
        asked, for messages."""
        if arguments.get("product_id"):
            domain = Domain("id", "=", arguments["product_id"])
            asked = self.env._("id %(id)s", id=arguments["product_id"])
        else:
            asked = arguments["default_code"].strip()
            domain = Domain("default_code", "=", asked)
        products = self.env["product.product"].search(
            domain & Domain("sale_ok", "=", True), limit=2
        )
        return products if len(products) == 1 else products.browse(), asked

    @api.model
    def _pricelist(self, pricelist_id):
        """The pricelist given (ToolFailure when the user cannot see it), else the company's
        default one (empty when pricelists are not used: prices are then the sales prices)."""
        if not pricelist_id:
            return self.env.company.partner_id.property_product_pricelist
        pricelist = self.env["product.pricelist"].search([("id", "=", pricelist_id)])
        if not pricelist:
            raise ToolFailure(self.env._("No pricelist with id %(id)s.", id=pricelist_id))
        return pricelist

    @api.model
    def _prices(self, pricelist, products):
        """``{product id: unit price}`` in the pricelist's currency, rounded to it."""
        currency = self._price_currency(pricelist)
        return {
            product_id: currency.round(price)
            for product_id, price in pricelist._get_products_price(products, 1.0).items()
        }

    @api.model
    def _price_currency(self, pricelist):
        return pricelist.currency_id or self.env.company.currency_id

    @api.model
    def _pricelist_summary(self, pricelist):
        return {
            "pricelist": pricelist.name or None,
            "currency": self._price_currency(pricelist).name,
        }

    @api.model
    def _product_summary(self, product, prices):
        summary = {
            "id": product.id,
            "name": product.display_name,
            "default_code": product.default_code or None,
            "barcode": product.barcode or None,
            "category": product.categ_id.complete_name or None,
            "price": prices[product.id],
            "uom": product.uom_id.name,
        }
        if "is_storable" in product._fields and product.is_storable:
            summary["qty_available"] = product.qty_available
        return summary

    # contacts -------------------------------------------------------------------------------
    @api.model
    def _tool_odoo_partner_lookup(self, tenant, arguments):
        limit = arguments.get("limit", DEFAULT_PARTNERS)
        if arguments.get("phone"):
            partners = self._partners_by_phone(arguments["phone"], limit)
            asked = arguments["phone"]
        elif arguments.get("email"):
            partners = self._partners_by_email(arguments["email"], limit)
            asked = arguments["email"]
        else:
            partners = self._partner_by_external_id(arguments["external_id"])
            asked = arguments["external_id"]
        if not partners:
            raise ToolFailure(self.env._("No contact found for %(asked)s.", asked=asked))
        return {"partners": [self._partner_summary(partner) for partner in partners]}

    @api.model
    def _partners_by_phone(self, phone, limit):
        try:
            suffix = phone_numbers.search_suffix(phone)
        except ValueError as exc:
            raise tool_calls.PermanentToolError(str(exc)) from None
        Partner = self.env["res.partner"]
        phone_fields = [
            name
            for name in ("phone", "mobile")
            if name in Partner._fields and Partner._fields[name].store
        ]
        # Candidates by the digits only (formatting ignored); the ORM search below applies the
        # technical user's record rules to them.
        Partner.flush_model(phone_fields)  # the SQL reads the table: pending writes first
        digits = SQL(" OR ").join(
            SQL(
                "regexp_replace(%s, '[^0-9]', '', 'g') LIKE %s",
                SQL.identifier(name),
                f"%{suffix}",
            )
            for name in phone_fields
        )
        self.env.cr.execute(
            SQL(
                "SELECT id FROM %s WHERE %s LIMIT %s",
                SQL.identifier(Partner._table),
                digits,
                PHONE_CANDIDATES,
            )
        )
        candidates = Partner.search([("id", "in", [row[0] for row in self.env.cr.fetchall()])])
        return candidates.filtered(
            lambda partner: any(
                phone_numbers.same_number(phone, partner[name]) for name in phone_fields
            )
        )[:limit]

    @api.model
    def _partners_by_email(self, email, limit):
        normalized = email_normalize(email)
        if not normalized:
            raise tool_calls.PermanentToolError(
                self.env._("%(email)r is not an e-mail address", email=email)
            )
        return self.env["res.partner"].search([("email_normalized", "=", normalized)], limit=limit)

    @api.model
    def _partner_by_external_id(self, external_id):
        model, res_id = self.env["ir.model.data"]._xmlid_to_res_model_res_id(external_id)
        if model != "res.partner":
            return self.env["res.partner"]
        return self.env["res.partner"].search([("id", "=", res_id)])

    @api.model
    def _partner(self, partner_id):
        """The contact ``partner_id`` the technical user can see, or ToolFailure."""
        partner = self.env["res.partner"].search([("id", "=", partner_id)])
        if not partner:
            raise ToolFailure(self.env._("No contact with id %(id)s.", id=partner_id))
        return partner

    @api.model
    def _partner_summary(self, partner):
        return {
            "id": partner.id,
            "name": partner.name,
            "company": partner.parent_id.name or None,
            "is_company": partner.is_company,
            "email": partner.email or None,
            "phone": partner.phone or None,
            "city": partner.city or None,
            "state": partner.state_id.name or None,
            "country": partner.country_id.name or None,
            "ref": partner.ref or None,
        }

    # sales ----------------------------------------------------------------------------------
    @api.model
    def _tool_odoo_order_status(self, tenant, arguments):
        reference = arguments["reference"].strip()
        order = self.env["sale.order"].search(
            [("name", "=ilike", _escape_like(reference))], limit=1
        )
        if arguments.get("partner_id"):
            customer = self._partner(arguments["partner_id"]).commercial_partner_id
            if order.partner_id.commercial_partner_id != customer:
                # worded like a missing order: another customer's order is none of this one's
                order = order.browse()
        if not order:
            raise ToolFailure(self.env._("No order %(reference)s found.", reference=reference))
        return self._order_summary(order)

    @api.model
    def _order_summary(self, order):
        currency = order.currency_id
        lines = order.order_line.filtered(lambda line: not line.display_type)
        summary = {
            "id": order.id,
            "reference": order.name,
            "customer": order.partner_id.display_name,
            "state": order.state,
            "state_label": _selection_label(order, "state"),
            "invoice_status": order.invoice_status or None,
            "date_order": self._local_time(order, order.date_order),
            "expected_date": self._local_time(order, order.expected_date),
            "commitment_date": self._local_time(order, order.commitment_date),
            "amount_untaxed": currency.round(order.amount_untaxed),
            "amount_tax": currency.round(order.amount_tax),
            "amount_total": currency.round(order.amount_total),
            "currency": currency.name,
            "lines": [
                {
                    "product": line.product_id.display_name or line.name,
                    "quantity": line.product_uom_qty,
                    "delivered": line.qty_delivered,
                    "invoiced": line.qty_invoiced,
                    "unit_price": currency.round(line.price_unit),
                    "subtotal": currency.round(line.price_subtotal),
                }
                for line in lines[:MAX_ORDER_LINES]
            ],
            "more_lines": len(lines) > MAX_ORDER_LINES,
        }
        if "delivery_status" in order._fields:
            summary["delivery_status"] = order.delivery_status or None
            summary["effective_date"] = self._local_time(order, order.effective_date)
        return summary

    @api.model
    def _local_time(self, record, value):
        return fields.Datetime.context_timestamp(record, value).isoformat() if value else None

    @api.model
    def _tool_odoo_draft_quotation(self, tenant, arguments):
        partner = self._partner(arguments["partner_id"])
        lines = [(*self._product_for_sale(line), line["quantity"]) for line in arguments["lines"]]
        missing = [asked for product, asked, _quantity in lines if not product]
        if missing:
            raise ToolFailure(
                self.env._(
                    "No single product for sale matches: %(asked)s.", asked=", ".join(missing)
                )
            )
        values = {
            "partner_id": partner.id,
            "company_id": self.env.company.id,
            "order_line": [
                Command.create({"product_id": product.id, "product_uom_qty": quantity})
                for product, _asked, quantity in lines
            ],
        }
        if arguments.get("note"):
            values["note"] = plaintext2html(arguments["note"])
        return self._order_summary(self.env["sale.order"].create(values))

    # CRM and activities ---------------------------------------------------------------------
    @api.model
    def _tool_odoo_create_lead(self, tenant, arguments):
        values = {
            "name": arguments["name"],
            "company_id": self.env.company.id,
            "user_id": False,  # for the sales team to pick up, not the technical user
        }
        if arguments.get("partner_id"):
            values["partner_id"] = self._partner(arguments["partner_id"]).id
        for argument, field in (
            ("contact_name", "contact_name"),
            ("email", "email_from"),
            ("phone", "phone"),
            ("expected_revenue", "expected_revenue"),
        ):
            if argument in arguments:
                values[field] = arguments[argument]
        if arguments.get("description"):
            values["description"] = plaintext2html(arguments["description"])
        lead = self.env["crm.lead"].create(values)
        return {
            "id": lead.id,
            "name": lead.name,
            "type": lead.type,
            "stage": lead.stage_id.name or None,
            "team": lead.team_id.name or None,
            "partner_id": lead.partner_id.id or None,
        }

    @api.model
    def _tool_odoo_log_activity(self, tenant, arguments):
        model = ACTIVITY_TARGETS[arguments["record_type"]]
        record = self.env[model].search([("id", "=", arguments["record_id"])])
        if not record:
            raise ToolFailure(
                self.env._(
                    "No %(kind)s with id %(id)s.",
                    kind=arguments["record_type"],
                    id=arguments["record_id"],
                )
            )
        responsible = record.user_id if "user_id" in record._fields else self.env["res.users"]
        if not responsible.active or responsible.share:
            responsible = self.env.user
        try:
            due = fields.Date.to_date(arguments.get("due_date")) or fields.Date.context_today(self)
        except ValueError:
            raise tool_calls.PermanentToolError(
                f"due_date {arguments['due_date']!r} is not a valid date"
            ) from None
        activity = record.activity_schedule(
            ACTIVITY_TYPES[arguments.get("activity_type", "todo")],
            date_deadline=due,
            summary=arguments["summary"],
            note=plaintext2html(arguments.get("note") or ""),
            user_id=responsible.id,
        )
        return {
            "id": activity.id,
            "record": record.display_name,
            "activity_type": activity.activity_type_id.name,
            "summary": activity.summary,
            "due_date": fields.Date.to_string(activity.date_deadline),
            "assigned_to": activity.user_id.name,
        }

    # the business ---------------------------------------------------------------------------
    @api.model
    def _tool_odoo_tenant_profile(self, tenant, arguments):
        profile = tenant._behaviour_profile()
        services = tenant.service_ids.sorted()
        return {
            **profile,
            "service_details": [
                {"code": s.code, "name": s.name, "description": s.description or ""}
                for s in services
            ],
            "local_time": hours.local_time(fields.Datetime.now(), tenant.tz).isoformat(
                timespec="minutes"
            ),
        }

    # generic read ---------------------------------------------------------------------------
    @api.model
    def _tool_odoo_search_records(self, tenant, arguments):
        model_name = arguments["model"]
        odoo_access_policy.check_model(model_name)
        if model_name not in self.env or self.env[model_name]._abstract:
            raise tool_calls.PermanentToolError(f"there is no model {model_name!r}")
        Model = self.env[model_name]
        field_names = arguments.get("fields") or ["display_name"]
        odoo_access_policy.check_fields(model_name, field_names)
        for name in field_names:
            if _field(self.env, model_name, name).type == "binary":
                raise tool_calls.PermanentToolError(
                    f"field {name!r} of {model_name} is binary: files are not returned"
                )
        terms, paths = odoo_access_policy.check_domain(arguments.get("domain", []))
        order = arguments.get("order")
        for path in paths + ([order.split()[0]] if order else []):
            odoo_access_policy.check_field_path(
                model_name, path, lambda model, name: _field(self.env, model, name).comodel_name
            )
        limit = arguments.get("limit", DEFAULT_RECORDS)
        rows = Model.search_read(
            terms, field_names, offset=arguments.get("offset", 0), limit=limit + 1, order=order
        )
        # dates, binary-free values as JSON; long texts clipped
        records = json.loads(json.dumps(rows[:limit], default=json_default))
        for record in records:
            for name, value in record.items():
                if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
                    record[name] = value[:MAX_VALUE_CHARS] + "…"
        return {"model": model_name, "records": records, "more": len(rows) > limit}


def _field(env, model_name, field_name):
    """The field ``field_name`` of ``model_name``; PermanentToolError when there is none."""
    field = env[model_name]._fields.get(field_name)
    if field is None:
        raise tool_calls.PermanentToolError(f"{model_name} has no field {field_name!r}")
    return field


def _selection_label(record, field_name):
    labels = dict(record._fields[field_name]._description_selection(record.env))
    return labels.get(record[field_name]) or None


def _escape_like(text):
    """``text`` as a literal (=)ilike pattern: its % and _ are no wildcards."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
