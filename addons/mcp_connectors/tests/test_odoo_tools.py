# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The built-in Odoo tools ("MCP-Odoo") through the integrator, as a technical user whose
access rights and record rules apply, with the fixed deny-list on top."""

from odoo import Command
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.mcp_integrator.models.mcp_integrator import McpToolError, McpToolRefused

from ..services import odoo_tool_catalog
from .common import McpConnectorsCase

INTEGRATOR_LOGGER = "odoo.addons.mcp_integrator.models.mcp_integrator"
MUTATING = ("odoo_create_lead", "odoo_log_activity", "odoo_draft_quotation")


@tagged("post_install", "-at_install")
class TestOdooTools(McpConnectorsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        # contact creation: scheduling an activity on a contact needs write access to it
        groups = ["base.group_user", "base.group_partner_manager"]
        for model, group in (
            ("sale.order", "sales_team.group_sale_salesman_all_leads"),
            ("stock.quant", "stock.group_stock_user"),
        ):
            if model in env:
                groups.append(group)
        cls.bot = new_test_user(
            env, login=f"mcp_bot_{cls.tenant.account_id}", groups=",".join(groups), name="Bot"
        )
        cls.server = cls.make_server(code="odoo", kind="odoo", run_as_user_id=cls.bot.id)
        cls.server.action_discover()
        cls.currency = env.company.currency_id.name

        cls.category = env["product.category"].create({"name": "Camisetas MCP"})
        cls.shirt = env["product.product"].create(
            {
                "name": "Camiseta Azul Marinho",
                "default_code": "CAM-AZ-01",
                "barcode": "7891234567895",
                "list_price": 49.9,
                "categ_id": cls.category.id,
                "description_sale": "Algodão orgânico.",
                **({"is_storable": True} if "stock.quant" in env else {}),
            }
        )
        cls.not_for_sale = env["product.product"].create(
            {"name": "Camiseta Azul de Uniforme", "default_code": "UNI-01", "sale_ok": False}
        )
        cls.maria = env["res.partner"].create(
            {
                "name": "Maria Silva",
                "phone": "+55 (11) 98765-4321",
                "email": "Maria.Silva@Example.com",
                "city": "São Paulo",
            }
        )
        cls.joao = env["res.partner"].create({"name": "João Souza", "phone": "21 98765-4321"})

    # helpers --------------------------------------------------------------------------------
    def call(self, tool, arguments=None, tenant=None):
        return self.integrator.call_tool(tenant or self.tenant, tool, arguments or {})

    def tool(self, name):
        return self.server.tool_ids.filtered(lambda tool: tool.name == name)

    def enable(self, *names):
        for name in names:
            self.tool(name).enabled = True

    def needs(self, model):
        if model not in self.env:
            self.skipTest(f"needs the app that provides {model}")

    def assertToolError(self, result, text):
        self.assertTrue(result.get("isError"), result)
        self.assertIn(text, result["content"][0]["text"])

    def make_order(self, partner, **vals):
        return self.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "order_line": [Command.create({"product_id": self.shirt.id, "product_uom_qty": 2})],
                **vals,
            }
        )

    # discovery and health -------------------------------------------------------------------
    def test_discovery_lists_the_installed_tools_with_the_mutating_ones_disabled(self):
        expected = {tool["name"] for tool in odoo_tool_catalog.available_tools(self.env)}
        self.assertEqual(set(self.server.tool_ids.mapped("name")), expected)
        self.assertIn("odoo_tenant_profile", expected)
        for tool in self.server.tool_ids:
            with self.subTest(tool=tool.name):
                should_run = tool.name not in (*MUTATING, "odoo_search_records")
                self.assertEqual(tool.enabled, should_run)
                self.assertEqual(tool.read_only, tool.name not in MUTATING)
                self.assertEqual(tool.input_schema["type"], "object")
        self.server.action_check_health()
        self.assertEqual(self.server.health_state, "up")

    def test_no_usable_technical_user_is_a_clear_refusal(self):
        self.server.run_as_user_id = False
        with (
            mute_logger(INTEGRATOR_LOGGER),
            self.assertRaisesRegex(McpToolRefused, "has no technical user"),
        ):
            self.call("odoo_tenant_profile")
        self.server.action_check_health()
        self.assertEqual(self.server.health_state, "down")
        self.assertIn("has no technical user", self.server.last_error)
        self.server.run_as_user_id = self.bot
        self.bot.active = False
        with (
            mute_logger(INTEGRATOR_LOGGER),
            self.assertRaisesRegex(McpToolRefused, "archived or not an internal user"),
        ):
            self.call("odoo_tenant_profile")
        self.assertEqual(self.audit_rows(operation="tool.call")[-1].status, "refused")

    # products -------------------------------------------------------------------------------
    def test_product_search_by_words_reference_barcode_and_category(self):
        for arguments in (
            {"query": "azul camiseta"},
            {"query": "cam-az"},
            {"query": "7891234567895"},
            {"category": "camisetas mcp"},
        ):
            with self.subTest(arguments=arguments):
                result = self.call("odoo_product_search", arguments)
                self.assertEqual([p["id"] for p in result["products"]], [self.shirt.id])
        [found] = self.call("odoo_product_search", {"query": "Camiseta Azul"})["products"]
        self.assertEqual(found["name"], "[CAM-AZ-01] Camiseta Azul Marinho")
        self.assertEqual(found["price"], 49.9)
        self.assertEqual(found["category"], "Camisetas MCP")
        self.assertNotIn("UNI-01", str(found), "a product not for sale is never offered")

    def test_product_search_with_a_pricelist_and_stock(self):
        pricelist = self.env["product.pricelist"].create(
            {
                "name": "Promo MCP",
                "item_ids": [
                    Command.create(
                        {
                            "applied_on": "0_product_variant",
                            "product_id": self.shirt.id,
                            "compute_price": "fixed",
                            "fixed_price": 39.9,
                        }
                    )
                ],
            }
        )
        if "stock.quant" in self.env:
            self.env["stock.quant"]._update_available_quantity(
                self.shirt, self.env.ref("stock.warehouse0").lot_stock_id, 7
            )
        result = self.call(
            "odoo_product_search", {"query": "CAM-AZ-01", "pricelist_id": pricelist.id}
        )
        self.assertEqual(result["pricelist"], "Promo MCP")
        self.assertEqual(result["currency"], pricelist.currency_id.name)
        [found] = result["products"]
        self.assertEqual(found["price"], 39.9)
        if "stock.quant" in self.env:
            self.assertEqual(found["qty_available"], 7)
        else:
            self.assertNotIn("qty_available", found)
        result = self.call("odoo_product_search", {"query": "x", "pricelist_id": 10**8})
        self.assertToolError(result, "No pricelist")

    def test_product_details_with_attributes_and_variants(self):
        size = self.env["product.attribute"].create(
            {
                "name": "Tamanho",
                "value_ids": [Command.create({"name": "P"}), Command.create({"name": "M"})],
            }
        )
        template = self.env["product.template"].create(
            {
                "name": "Camiseta Estampada",
                "list_price": 59.0,
                "description_sale": "Estampa exclusiva.",
                "attribute_line_ids": [
                    Command.create(
                        {"attribute_id": size.id, "value_ids": [Command.set(size.value_ids.ids)]}
                    )
                ],
            }
        )
        small = template.product_variant_ids[0]
        small.default_code = "EST-P"
        result = self.call("odoo_product_details", {"default_code": "EST-P"})
        self.assertEqual(result["id"], small.id)
        self.assertEqual(result["description"], "Estampa exclusiva.")
        self.assertEqual(result["attributes"], [{"name": "Tamanho", "values": ["P", "M"]}])
        self.assertEqual(len(result["variants"]), 2)
        self.assertEqual({v["price"] for v in result["variants"]}, {59.0})
        by_id = self.call("odoo_product_details", {"product_id": self.shirt.id})
        self.assertEqual(by_id["variants"], [], "a product without variants lists none")
        self.assertToolError(
            self.call("odoo_product_details", {"default_code": "UNI-01"}),
            "No single product for sale matches UNI-01",
        )

    def test_product_arguments_that_break_the_schema_are_rejected(self):
        with mute_logger(INTEGRATOR_LOGGER):
            with self.assertRaisesRegex(McpToolError, "limit: 51 is greater than the maximum"):
                self.call("odoo_product_search", {"query": "x", "limit": 51})
            with self.assertRaisesRegex(McpToolError, "input schema"):
                self.call("odoo_product_search", {"limit": 5})
            with self.assertRaisesRegex(McpToolError, "input schema"):
                self.call("odoo_product_details", {"product_id": 1, "default_code": "x"})

    def test_a_loosened_stored_schema_lifts_no_bound(self):
        tool = self.tool("odoo_product_search")
        tool.input_schema = {"type": "object"}
        with (
            mute_logger(INTEGRATOR_LOGGER),
            self.assertRaisesRegex(McpToolError, "limit: 1000 is greater than the maximum"),
        ):
            self.call("odoo_product_search", {"query": "x", "limit": 1000})

    # contacts -------------------------------------------------------------------------------
    def test_partner_lookup_by_phone_ignores_formatting_and_country_code(self):
        for phone in ("11987654321", "+55 11 98765-4321", "0055 11 98765 4321", "(11) 987654321"):
            with self.subTest(phone=phone):
                result = self.call("odoo_partner_lookup", {"phone": phone})
                self.assertEqual([p["id"] for p in result["partners"]], [self.maria.id])
        [joao] = self.call("odoo_partner_lookup", {"phone": "+55 21 98765-4321"})["partners"]
        self.assertEqual(joao["name"], "João Souza")
        self.assertToolError(
            self.call("odoo_partner_lookup", {"phone": "+55 31 98765-4321"}), "No contact found"
        )
        with (
            mute_logger(INTEGRATOR_LOGGER),
            self.assertRaisesRegex(McpToolError, "at least 8 digits"),
        ):
            self.call("odoo_partner_lookup", {"phone": "12-34-56-7"})

    def test_partner_lookup_by_email_and_external_id(self):
        result = self.call("odoo_partner_lookup", {"email": " maria.silva@example.COM "})
        self.assertEqual(result["partners"][0]["email"], "Maria.Silva@Example.com")
        self.env["ir.model.data"].create(
            {"module": "mcp_test", "name": "maria", "model": "res.partner", "res_id": self.maria.id}
        )
        result = self.call("odoo_partner_lookup", {"external_id": "mcp_test.maria"})
        self.assertEqual(result["partners"][0]["id"], self.maria.id)
        self.assertToolError(
            self.call("odoo_partner_lookup", {"external_id": "base.main_company"}),
            "No contact found",
        )
        with mute_logger(INTEGRATOR_LOGGER), self.assertRaisesRegex(McpToolError, "input schema"):
            self.call("odoo_partner_lookup", {"email": "a@b.c", "phone": "11987654321"})

    # orders ---------------------------------------------------------------------------------
    def test_order_status_by_reference_and_only_for_its_customer(self):
        self.needs("sale.order")
        order = self.make_order(self.maria)
        result = self.call("odoo_order_status", {"reference": order.name.lower()})
        self.assertEqual(result["reference"], order.name)
        self.assertEqual((result["state"], result["invoice_status"]), ("draft", "no"))
        self.assertEqual(result["amount_untaxed"], 99.8)
        self.assertEqual(result["currency"], order.currency_id.name)
        self.assertEqual(result["lines"][0]["quantity"], 2)
        mine = self.call(
            "odoo_order_status", {"reference": order.name, "partner_id": self.maria.id}
        )
        self.assertEqual(mine["id"], order.id)
        theirs = self.call(
            "odoo_order_status", {"reference": order.name, "partner_id": self.joao.id}
        )
        self.assertToolError(theirs, f"No order {order.name} found")
        self.assertToolError(self.call("odoo_order_status", {"reference": "S%"}), "No order S%")

    def test_record_rules_and_access_rights_of_the_technical_user_apply(self):
        self.needs("sale.order")
        order = self.make_order(self.maria, user_id=self.manager.id)
        own_only = new_test_user(
            self.env, login="mcp_bot_own", groups="base.group_user,sales_team.group_sale_salesman"
        )
        self.server.run_as_user_id = own_only
        result = self.call("odoo_order_status", {"reference": order.name})
        self.assertToolError(result, "No order")  # another salesperson's order: not visible
        no_sales = new_test_user(self.env, login="mcp_bot_nosales", groups="base.group_user")
        self.server.run_as_user_id = no_sales
        with mute_logger(INTEGRATOR_LOGGER):
            with self.assertRaisesRegex(
                McpToolRefused, r"user mcp_bot_nosales .* may not do this: .*sale\.order"
            ):
                self.call("odoo_order_status", {"reference": order.name})
            self.enable("odoo_draft_quotation")
            before = self.env["sale.order"].search_count([])
            with self.assertRaisesRegex(McpToolRefused, "may not do this"):
                self.call(
                    "odoo_draft_quotation",
                    {
                        "partner_id": self.maria.id,
                        "lines": [{"product_id": self.shirt.id, "quantity": 1}],
                    },
                )
        self.assertEqual(self.env["sale.order"].search_count([]), before)
        self.assertEqual(self.audit_rows(operation="tool.call")[-1].status, "refused")

    # the business ---------------------------------------------------------------------------
    def test_tenant_profile(self):
        service = self.env["mcp.service"].create(
            {"name": "Entregas", "code": "mcp-delivery", "description": "Prazo e frete."}
        )
        self.tenant.write(
            {
                "business_rules": "Nunca prometa prazo de entrega.",
                "service_ids": [Command.set(service.ids)],
                "hours_ids": [Command.create({"weekday": "0", "hour_from": 8, "hour_to": 18})],
            }
        )
        profile = self.call("odoo_tenant_profile")
        self.assertEqual(profile["business_rules"], "Nunca prometa prazo de entrega.")
        self.assertEqual(profile["hours"]["monday"], ["08:00-18:00"])
        self.assertEqual(profile["open_now"], self.tenant.is_open())
        self.assertEqual(
            profile["service_details"],
            [{"code": "mcp-delivery", "name": "Entregas", "description": "Prazo e frete."}],
        )
        self.assertTrue(profile["local_time"])

    # generic read ---------------------------------------------------------------------------
    def test_search_records_is_disabled_until_enabled_then_reads_with_a_domain(self):
        arguments = {
            "model": "res.partner",
            "domain": ["|", ["name", "=ilike", "maria silva"], ["phone", "=", "x"]],
            "fields": ["name", "city", "create_date", "country_id"],
        }
        with (
            mute_logger(INTEGRATOR_LOGGER),
            self.assertRaisesRegex(McpToolRefused, "odoo_search_records is not enabled"),
        ):
            self.call("odoo_search_records", arguments)
        self.enable("odoo_search_records")
        result = self.call("odoo_search_records", arguments)
        [record] = result["records"]
        self.assertEqual((record["id"], record["name"]), (self.maria.id, "Maria Silva"))
        self.assertIsInstance(record["create_date"], str)
        self.assertFalse(result["more"])

    def test_search_records_refuses_the_deny_list_asked_by_name(self):
        self.enable("odoo_search_records")
        refused = (
            ({"model": "res.users"}, "model 'res.users' is refused"),
            ({"model": "ir.config_parameter"}, "model 'ir.config_parameter' is refused"),
            ({"model": "mcp.credential"}, "model 'mcp.credential' is refused"),
            ({"model": "res.partner", "fields": ["name", "signup_type"]}, "are never readable"),
            (
                {"model": "res.partner", "domain": [["user_ids.login", "=", "admin"]]},
                "model 'res.users' is refused",
            ),
            (
                {"model": "res.partner", "domain": [["name", "any!", []]]},
                "operator 'any!' is not allowed",
            ),
            ({"model": "res.partner", "domain": ["|", ["id", "=", 1]]}, "lacks operands"),
        )
        with mute_logger(INTEGRATOR_LOGGER):
            for arguments, message in refused:
                with (
                    self.subTest(arguments=arguments),
                    self.assertRaisesRegex(McpToolRefused, message),
                ):
                    self.call("odoo_search_records", arguments)
            with self.assertRaisesRegex(McpToolError, "res.partner has no field 'nope'"):
                self.call("odoo_search_records", {"model": "res.partner", "fields": ["nope"]})
            with self.assertRaisesRegex(McpToolError, "there is no model 'no.such.model'"):
                self.call("odoo_search_records", {"model": "no.such.model"})
        statuses = self.audit_rows(operation="tool.call", target="odoo_search_records")
        self.assertEqual(statuses.mapped("status").count("refused"), len(refused))

    # mutating tools -------------------------------------------------------------------------
    def test_create_lead_is_refused_until_enabled_then_creates_one_lead(self):
        self.needs("crm.lead")
        arguments = {
            "name": "Orçamento de 20 camisetas",
            "partner_id": self.maria.id,
            "description": "Quer <b>bordado</b>.",
        }
        with (
            mute_logger(INTEGRATOR_LOGGER),
            self.assertRaisesRegex(McpToolRefused, "odoo_create_lead is not enabled"),
        ):
            self.call("odoo_create_lead", arguments)
        self.enable("odoo_create_lead")
        before = self.env["crm.lead"].search([])
        result = self.call("odoo_create_lead", arguments)
        created = self.env["crm.lead"].search([]) - before
        self.assertEqual(len(created), 1)
        self.assertEqual(result["id"], created.id)
        self.assertEqual(created.partner_id, self.maria)
        self.assertFalse(created.user_id)
        self.assertIn("&lt;b&gt;bordado", created.description)

    def test_log_activity_on_a_partner_and_a_lead(self):
        self.enable("odoo_log_activity")
        result = self.call(
            "odoo_log_activity",
            {
                "record_type": "partner",
                "record_id": self.maria.id,
                "summary": "Ligar sobre o pedido",
                "activity_type": "call",
                "due_date": "2030-01-15",
            },
        )
        activity = self.maria.activity_ids
        self.assertEqual(len(activity), 1)
        self.assertEqual(result["id"], activity.id)
        self.assertEqual(result["due_date"], "2030-01-15")
        self.assertEqual(activity.activity_type_id, self.env.ref("mail.mail_activity_data_call"))
        self.assertToolError(
            self.call(
                "odoo_log_activity",
                {"record_type": "partner", "record_id": 10**8, "summary": "x"},
            ),
            "No partner with id",
        )
        with mute_logger(INTEGRATOR_LOGGER), self.assertRaisesRegex(McpToolError, "valid date"):
            self.call(
                "odoo_log_activity",
                {
                    "record_type": "partner",
                    "record_id": self.maria.id,
                    "summary": "x",
                    "due_date": "2030-02-31",
                },
            )
        self.assertEqual(len(self.maria.activity_ids), 1, "nothing more was written")
        if "crm.lead" in self.env:
            lead = self.env["crm.lead"].create({"name": "Lead MCP"})
            self.call(
                "odoo_log_activity", {"record_type": "lead", "record_id": lead.id, "summary": "x"}
            )
            self.assertEqual(len(lead.activity_ids), 1)

    def test_draft_quotation_creates_one_draft_order_and_nothing_on_failure(self):
        self.needs("sale.order")
        self.enable("odoo_draft_quotation")
        orders = self.env["sale.order"]
        before = orders.search([])
        failed = self.call(
            "odoo_draft_quotation",
            {
                "partner_id": self.maria.id,
                "lines": [
                    {"product_id": self.shirt.id, "quantity": 1},
                    {"default_code": "NOPE-1", "quantity": 1},
                    {"default_code": "UNI-01", "quantity": 1},
                ],
            },
        )
        self.assertToolError(failed, "NOPE-1, UNI-01")
        with (
            mute_logger(INTEGRATOR_LOGGER),
            self.assertRaisesRegex(McpToolError, "quantity: 0 is less than or equal"),
        ):
            self.call(
                "odoo_draft_quotation",
                {"partner_id": self.maria.id, "lines": [{"product_id": 1, "quantity": 0}]},
            )
        self.assertEqual(orders.search([]), before, "nothing written by the failed calls")
        result = self.call(
            "odoo_draft_quotation",
            {
                "partner_id": self.maria.id,
                "lines": [{"default_code": "CAM-AZ-01", "quantity": 3}],
                "note": "Entrega em São Paulo",
            },
        )
        created = orders.search([]) - before
        self.assertEqual(len(created), 1)
        self.assertEqual((created.state, created.partner_id), ("draft", self.maria))
        self.assertEqual(created.order_line.product_uom_qty, 3)
        self.assertEqual((result["reference"], result["state"]), (created.name, "draft"))
        self.assertEqual(result["amount_untaxed"], 149.7)
