"""The built-in Odoo tools' catalogue (absent when their app is not installed) and the phone
number matching of the partner lookup."""

import pytest
from conftest import load_services

load_services("mcp_connectors")
from mcp_connectors_services import odoo_tool_catalog as catalog
from mcp_connectors_services import phone_numbers
from mcp_connectors_services.mcp_server_protocol import check_input_schema, validate_arguments

BASE = {"res.partner", "product.product", "mail.activity"}
EVERYTHING = BASE | {"sale.order", "stock.quant", "crm.lead"}
MUTATING = {"odoo_create_lead", "odoo_log_activity", "odoo_draft_quotation"}


def names(installed):
    return [tool["name"] for tool in catalog.available_tools(installed)]


def schema(name, installed=EVERYTHING):
    return catalog.find_tool(name, installed)["input_schema"]


def test_every_tool_when_every_app_is_installed():
    assert names(EVERYTHING) == [entry["name"] for entry in catalog.TOOLS]
    assert len(set(names(EVERYTHING))) == 9


def test_tools_of_apps_that_are_not_installed_are_absent():
    assert set(names(BASE)) == {
        "odoo_product_search",
        "odoo_product_details",
        "odoo_partner_lookup",
        "odoo_tenant_profile",
        "odoo_search_records",
        "odoo_log_activity",
    }
    assert "odoo_order_status" in names(BASE | {"sale.order"})
    assert "odoo_draft_quotation" in names(BASE | {"sale.order"})
    assert "odoo_create_lead" in names(BASE | {"crm.lead"})
    assert "odoo_product_search" not in names(BASE - {"product.product"})
    assert catalog.find_tool("odoo_order_status", BASE) is None
    assert catalog.find_tool("no_such_tool", EVERYTHING) is None


def test_activities_target_leads_only_when_crm_is_installed():
    assert schema("odoo_log_activity", BASE)["properties"]["record_type"] == {"enum": ["partner"]}
    assert schema("odoo_log_activity")["properties"]["record_type"] == {"enum": ["lead", "partner"]}


@pytest.mark.parametrize("tool", catalog.available_tools(EVERYTHING), ids=lambda t: t["name"])
def test_descriptors_are_valid_tool_definitions(tool):
    assert "requires" not in tool
    assert check_input_schema(tool["input_schema"]) is None
    assert tool["input_schema"]["additionalProperties"] is False
    assert set(tool["annotations"]) == {"read_only", "destructive", "idempotent", "open_world"}
    assert tool["description"] and tool["title"]
    mutating = tool["name"] in MUTATING
    assert tool["annotations"]["read_only"] is not mutating
    assert tool["annotations"]["destructive"] is False
    assert tool.get("disabled_by_default", False) is (
        mutating or tool["name"] == "odoo_search_records"
    )


def test_callers_cannot_change_the_catalogue():
    tool = catalog.find_tool("odoo_product_search", EVERYTHING)
    tool["input_schema"]["properties"]["limit"]["maximum"] = 10**6
    tool["annotations"]["read_only"] = False
    assert schema("odoo_product_search")["properties"]["limit"]["maximum"] == 50
    assert catalog.find_tool("odoo_tenant_profile", EVERYTHING)["annotations"]["read_only"]


@pytest.mark.parametrize(
    ("tool", "arguments", "problem"),
    [
        ("odoo_product_search", {"query": "camiseta"}, None),
        ("odoo_product_search", {"category": "Roupas", "limit": 50}, None),
        ("odoo_product_search", {"limit": 5}, "is not valid under any of the given schemas"),
        ("odoo_product_search", {"query": "x", "limit": 51}, "limit: 51 is greater than"),
        ("odoo_product_search", {"query": "x", "sudo": True}, "'sudo' was unexpected"),
        ("odoo_product_details", {"default_code": "CAM-01"}, None),
        ("odoo_product_details", {"default_code": "a", "product_id": 1}, "is valid under each"),
        ("odoo_partner_lookup", {"phone": "+55 11 98765-4321"}, None),
        ("odoo_partner_lookup", {"phone": "1234567"}, "is too short"),
        ("odoo_partner_lookup", {"email": "a@b.c", "phone": "11987654321"}, "valid under each"),
        ("odoo_partner_lookup", {"external_id": "base.res_partner_1"}, None),
        ("odoo_partner_lookup", {"external_id": "no-module"}, "does not match"),
        ("odoo_order_status", {"reference": "S00042", "partner_id": 7}, None),
        ("odoo_order_status", {"partner_id": 7}, "'reference' is a required property"),
        ("odoo_tenant_profile", {}, None),
        ("odoo_search_records", {"model": "res.partner", "domain": [["name", "=", "x"]]}, None),
        ("odoo_search_records", {"model": "res.partner", "limit": 101}, "greater than"),
        ("odoo_search_records", {"model": "res.partner", "domain": [["name"]]}, "domain.0"),
        ("odoo_search_records", {"model": "res.partner", "order": "name; drop"}, "order"),
        ("odoo_create_lead", {"name": "Quote", "expected_revenue": -1}, "less than the min"),
        (
            "odoo_log_activity",
            {"record_type": "partner", "record_id": 1, "summary": "x", "due_date": "15/01"},
            "due_date",
        ),
        (
            "odoo_draft_quotation",
            {"partner_id": 1, "lines": [{"default_code": "A", "quantity": 2.5}]},
            None,
        ),
        ("odoo_draft_quotation", {"partner_id": 1, "lines": []}, "should be non-empty"),
        (
            "odoo_draft_quotation",
            {"partner_id": 1, "lines": [{"product_id": 1, "quantity": 0}]},
            "less than or equal to the minimum",
        ),
        (
            "odoo_draft_quotation",
            {"partner_id": 1, "lines": [{"quantity": 1}]},
            "is not valid under any",
        ),
    ],
)
def test_input_schemas(tool, arguments, problem):
    problems = validate_arguments(schema(tool), arguments)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in text for text in problems), problems


def test_error_result_is_an_mcp_tool_error():
    assert catalog.error_result("No product CAM-01.") == {
        "isError": True,
        "content": [{"type": "text", "text": "No product CAM-01."}],
    }


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("+55 11 98765-4321", "11987654321"),
        ("+55 (11) 98765-4321", "5511987654321"),
        ("0055 11 98765 4321", "(11) 98765-4321"),
        ("011 98765-4321", "11 98765 4321"),
        ("+55 11 98765-4321", "98765-4321"),
        ("3333-4444", "+55 11 3333-4444"),
    ],
)
def test_the_same_number_in_any_formatting(first, second):
    assert phone_numbers.same_number(first, second)
    assert phone_numbers.same_number(second, first)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("+55 11 98765-4321", "+55 21 98765-4321"),  # another area code
        ("11 98765-4321", "11 98765-4320"),
        ("+55 11 98765-4321", "765-4321"),  # too few digits to tell
        ("+1 555 0100 4321", "8765 4321"),
        ("", ""),
    ],
)
def test_different_numbers(first, second):
    assert not phone_numbers.same_number(first, second)


def test_search_suffix_needs_enough_digits():
    assert phone_numbers.search_suffix("+55 (11) 98765-4321") == "87654321"
    with pytest.raises(ValueError, match="at least 8 digits"):
        phone_numbers.search_suffix("12-34-56-7")
