"""Catalogue of the built-in Odoo tools ("MCP-Odoo"): names, descriptions, input schemas,
annotations, and the Odoo models (so the apps) each one needs.

Plain Python, no Odoo import. ``mcp.server`` of kind ``odoo`` lists :func:`available_tools`
for the models of its database: a tool whose app is not installed (``sale``, ``stock``,
``crm``) is simply absent. Mutating tools and the generic read are ``disabled_by_default``:
discovery creates them disabled, and an admin enables them.

How a tool fails (the same for every tool of the set):

- what the model should read and act on (no such product, an order that is not the
  customer's — worded like one that does not exist —, an ambiguous reference) is a result
  ``{"isError": True, "content": [{"type": "text", "text": ...}]}``: the tools raise
  :class:`ToolFailure`, and the Odoo side turns it into :func:`error_result` after rolling
  back whatever the tool wrote;
- arguments that cannot work (an unknown field, a malformed domain) are permanent errors,
  like arguments that break the input schema;
- what is not allowed (the fixed deny-list of ``odoo_access_policy``, which also refuses a
  domain it cannot vouch for; the technical user's access rights and record rules; no usable
  technical user) is a refusal.
"""

import copy

MAX_PRODUCTS = 50
DEFAULT_PRODUCTS = 10
MAX_PARTNERS = 10
DEFAULT_PARTNERS = 5
MAX_RECORDS = 100
DEFAULT_RECORDS = 20
MAX_OFFSET = 10000
MAX_FIELDS = 30
MAX_QUOTATION_LINES = 50
MAX_TEXT = 5000

# record_type of odoo_log_activity -> the model it needs
ACTIVITY_TARGETS = {"partner": "res.partner", "lead": "crm.lead"}
# activity_type of odoo_log_activity -> XML id of the mail.activity.type
ACTIVITY_TYPES = {
    "todo": "mail.mail_activity_data_todo",
    "call": "mail.mail_activity_data_call",
    "email": "mail.mail_activity_data_email",
}

_READ_ONLY = {"read_only": True, "destructive": False, "idempotent": True, "open_world": False}
_CREATES = {"read_only": False, "destructive": False, "idempotent": False, "open_world": False}


def _object(properties, required=(), **extra):
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return {**schema, **extra}


def _id(description):
    return {"type": "integer", "minimum": 1, "description": description}


def _text(description, max_length=200, min_length=1):
    return {
        "type": "string",
        "minLength": min_length,
        "maxLength": max_length,
        "description": description,
    }


def _limit(default, maximum):
    return {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}


_PRICELIST = _id("Pricelist for the prices; the company's default pricelist when omitted.")
_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": "YYYY-MM-DD"}

# Each entry: the MCP descriptor plus "requires", the models it needs (all of them).
TOOLS = (
    {
        "name": "odoo_product_search",
        "title": "Search products",
        "description": (
            "Find products for sale by name words, internal reference or barcode, and/or "
            "category. Returns id, name, reference, category, price with currency (from the "
            "pricelist given or the company's default) and, when Inventory is installed, the "
            "quantity on hand of stored products."
        ),
        "input_schema": _object(
            {
                "query": _text("Words of the name, an internal reference or a barcode."),
                "category": _text("Category name, or part of its full path (All / Saleable)."),
                "pricelist_id": _PRICELIST,
                "limit": _limit(DEFAULT_PRODUCTS, MAX_PRODUCTS),
            },
            anyOf=[{"required": ["query"]}, {"required": ["category"]}],
        ),
        "annotations": _READ_ONLY,
        "requires": ("product.product",),
    },
    {
        "name": "odoo_product_details",
        "title": "Product details",
        "description": (
            "One product for sale, by id or internal reference: description, price with "
            "currency, attributes and variants (each with its price), and stock on hand when "
            "Inventory is installed."
        ),
        "input_schema": _object(
            {
                "product_id": _id("Product (variant) id, as the search returns it."),
                "default_code": _text("Internal reference of the product.", 100),
                "pricelist_id": _PRICELIST,
            },
            oneOf=[{"required": ["product_id"]}, {"required": ["default_code"]}],
        ),
        "annotations": _READ_ONLY,
        "requires": ("product.product",),
    },
    {
        "name": "odoo_partner_lookup",
        "title": "Find a contact",
        "description": (
            "Find contacts (customers) by phone number (any formatting; with or without the "
            "country code, e.g. +55 11 98765-4321 or 11987654321), by e-mail, or by external "
            "id (module.name). Give exactly one of them."
        ),
        "input_schema": _object(
            {
                "phone": _text("Phone number, at least 8 digits.", 40, 8),
                "email": _text("E-mail address.", 254, 3),
                "external_id": {
                    "type": "string",
                    "pattern": r"^[A-Za-z0-9_]+\.[A-Za-z0-9_.-]+$",
                    "maxLength": 200,
                    "description": "External id, module.name (e.g. base.res_partner_1).",
                },
                "limit": _limit(DEFAULT_PARTNERS, MAX_PARTNERS),
            },
            oneOf=[
                {"required": ["phone"]},
                {"required": ["email"]},
                {"required": ["external_id"]},
            ],
        ),
        "annotations": _READ_ONLY,
        "requires": ("res.partner",),
    },
    {
        "name": "odoo_order_status",
        "title": "Order status",
        "description": (
            "Status of a sales order by its reference (e.g. S00042): state, delivery and "
            "invoice status, amounts with currency, dates and a summary of its lines. Give the "
            "customer's partner_id to answer only for that customer's orders."
        ),
        "input_schema": _object(
            {
                "reference": _text("Order reference.", 64),
                "partner_id": _id("The customer asking: orders of other customers are not found."),
            },
            required=["reference"],
        ),
        "annotations": _READ_ONLY,
        "requires": ("sale.order",),
    },
    {
        "name": "odoo_tenant_profile",
        "title": "Business profile",
        "description": (
            "The business the agents work for: tone, personality, language, opening hours, "
            "holidays, services, business rules, the local time and whether it is open now."
        ),
        "input_schema": _object({}),
        "annotations": _READ_ONLY,
        "requires": (),
    },
    {
        "name": "odoo_search_records",
        "title": "Search records",
        "description": (
            "Generic read of Odoo records: model, domain (a list of [field, operator, value] "
            "terms and '&', '|', '!'), fields, limit. Security, system and configuration "
            "models and secret fields are refused."
        ),
        "input_schema": _object(
            {
                "model": {
                    "type": "string",
                    "pattern": r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$",
                    "maxLength": 128,
                    "description": "Technical model name, e.g. res.partner.",
                },
                "domain": {
                    "type": "array",
                    "maxItems": 50,
                    "items": {
                        "oneOf": [
                            {"enum": ["&", "|", "!"]},
                            {"type": "array", "minItems": 3, "maxItems": 3},
                        ]
                    },
                    "default": [],
                },
                "fields": {
                    "type": "array",
                    "items": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"},
                    "maxItems": MAX_FIELDS,
                    "uniqueItems": True,
                    "description": "Fields to return; id and display name when omitted.",
                },
                "order": {
                    "type": "string",
                    "pattern": r"^[a-z_][a-z0-9_]*( (asc|desc))?$",
                    "description": "One field, optionally followed by asc or desc.",
                },
                "limit": _limit(DEFAULT_RECORDS, MAX_RECORDS),
                "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            },
            required=["model"],
        ),
        "annotations": _READ_ONLY,
        "disabled_by_default": True,
        "requires": (),
    },
    {
        "name": "odoo_create_lead",
        "title": "Create a lead",
        "description": (
            "Create one CRM lead (a sales opportunity to follow up), unassigned, for the sales "
            "team to pick up. Link the customer with partner_id when known."
        ),
        "input_schema": _object(
            {
                "name": _text("Title of the lead, e.g. 'Quote for 20 chairs'."),
                "partner_id": _id("The customer, when known."),
                "contact_name": _text("Name of the person to contact."),
                "email": _text("E-mail of the contact.", 254, 3),
                "phone": _text("Phone of the contact.", 40, 3),
                "description": _text("What the customer wants, in a few sentences.", MAX_TEXT),
                "expected_revenue": {"type": "number", "minimum": 0},
            },
            required=["name"],
        ),
        "annotations": _CREATES,
        "disabled_by_default": True,
        "requires": ("crm.lead",),
    },
    {
        "name": "odoo_log_activity",
        "title": "Schedule an activity",
        "description": (
            "Schedule a follow-up activity (to-do, call, e-mail) on a contact or a lead, for "
            "its salesperson (or the technical user when it has none)."
        ),
        "input_schema": _object(
            {
                "record_type": {"enum": sorted(ACTIVITY_TARGETS)},
                "record_id": _id("Id of the contact or lead."),
                "summary": _text("What to do, in a few words."),
                "note": _text("Details.", MAX_TEXT),
                "activity_type": {"enum": sorted(ACTIVITY_TYPES), "default": "todo"},
                "due_date": {**_DATE, "description": "Due date, YYYY-MM-DD; today if omitted."},
            },
            required=["record_type", "record_id", "summary"],
        ),
        "annotations": _CREATES,
        "disabled_by_default": True,
        "requires": ("mail.activity",),
    },
    {
        "name": "odoo_draft_quotation",
        "title": "Draft a quotation",
        "description": (
            "Create a draft quotation (never confirmed) for a customer with product lines "
            "(product id or internal reference, and quantity). Returns its reference and "
            "amounts; a salesperson reviews and sends it."
        ),
        "input_schema": _object(
            {
                "partner_id": _id("The customer."),
                "lines": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_QUOTATION_LINES,
                    "items": _object(
                        {
                            "product_id": _id("Product (variant) id."),
                            "default_code": _text("Internal reference.", 100),
                            "quantity": {
                                "type": "number",
                                "exclusiveMinimum": 0,
                                "maximum": 1000000,
                            },
                        },
                        required=["quantity"],
                        oneOf=[{"required": ["product_id"]}, {"required": ["default_code"]}],
                    ),
                },
                "note": _text("Note printed on the quotation.", 2000),
            },
            required=["partner_id", "lines"],
        ),
        "annotations": _CREATES,
        "disabled_by_default": True,
        "requires": ("sale.order",),
    },
)


class ToolFailure(Exception):
    """A failure the model should read: answered as an ``isError`` result."""


def error_result(message):
    """An MCP tool result reporting ``message`` as a failure."""
    return {"isError": True, "content": [{"type": "text", "text": message}]}


def find_tool(name, installed_models):
    """The descriptor of tool ``name`` when its models are installed, else None.

    ``installed_models``: anything that answers ``model_name in installed_models`` (an Odoo
    environment does). The descriptor has no ``requires`` key; for ``odoo_log_activity`` its
    ``record_type`` lists only the targets that are installed.
    """
    entry = next((tool for tool in TOOLS if tool["name"] == name), None)
    if entry is None or not all(model in installed_models for model in entry["requires"]):
        return None
    # a deep copy: callers may change what they get, never the catalogue
    descriptor = copy.deepcopy({key: value for key, value in entry.items() if key != "requires"})
    if name == "odoo_log_activity":
        targets = sorted(
            kind for kind, model in ACTIVITY_TARGETS.items() if model in installed_models
        )
        schema = descriptor["input_schema"]
        descriptor["input_schema"] = {
            **schema,
            "properties": {**schema["properties"], "record_type": {"enum": targets}},
        }
    return descriptor


def available_tools(installed_models):
    """The descriptors of the tools whose models are all installed, in catalogue order."""
    return [
        descriptor
        for descriptor in (find_tool(entry["name"], installed_models) for entry in TOOLS)
        if descriptor is not None
    ]
