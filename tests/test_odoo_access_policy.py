"""The fixed deny-list of Odoo models, methods, fields and domains reached through tools."""

import pytest
from conftest import load_services

load_services("mcp_connectors")
from mcp_connectors_services import odoo_access_policy as policy

PolicyDenied = policy.PolicyDenied

# Comodels of the fields the path tests walk through; anything else is unknown.
RELATIONS = {
    ("sale.order", "partner_id"): "res.partner",
    ("sale.order", "user_id"): "res.users",
    ("sale.order", "name"): None,
    ("res.partner", "country_id"): "res.country",
    ("res.partner", "user_ids"): "res.users",
    ("res.partner", "name"): None,
    ("res.country", "code"): None,
    ("res.users", "login"): None,
    ("res.users", "name"): None,
}


def comodel_of(model, field):
    try:
        return RELATIONS[model, field]
    except KeyError:
        raise ValueError(f"unknown field {field} of {model}") from None


@pytest.mark.parametrize(
    "model",
    [
        "ir.model.access",
        "ir.rule",
        "res.users",
        "res.users.apikeys",
        "res.groups",
        "res.groups.privilege",
        "ir.config_parameter",
        "ir.cron",
        "ir.module.module",
        "ir.attachment",
        "ir.actions.server",
        "ir.actions.act_window",
        "ir.model",
        "ir.model.fields",
        "ir.model.data",
        "ir.ui.view",
        "ir.ui.menu",
        "ir.mail_server",
        "mcp.credential",
        "mcp.client.key",
        "mcp.audit.log",
        "res.config.settings",
        "base.module.upgrade",
        "base_import.import",
        "queue.job",
        "mail.mail",
        "payment.provider",
        "auth_totp.device",
        "change.password.wizard",
        "bus.bus",
    ],
)
def test_security_system_and_suite_models_are_refused(model):
    assert policy.is_denied_model(model)
    with pytest.raises(PolicyDenied, match=rf"model '{model}' is refused"):
        policy.check_model(model)


@pytest.mark.parametrize(
    "model",
    ["res.partner", "product.product", "sale.order", "crm.lead", "res.country", "mail.activity"],
)
def test_business_models_pass(model):
    assert not policy.is_denied_model(model)
    policy.check_model(model)


@pytest.mark.parametrize("name", ["RES.USERS", " res.users", "res.users ", "res..users", "", 3])
def test_a_malformed_model_name_cannot_slip_past_the_list(name):
    assert policy.is_denied_model(name)
    with pytest.raises(PolicyDenied, match="not a valid model name"):
        policy.check_model(name)


@pytest.mark.parametrize(
    "method",
    [
        "sudo",
        "with_user",
        "with_context",
        "with_env",
        "with_company",
        "create",
        "write",
        "unlink",
        "copy",
        "export_data",
        "load",
        "action_confirm",
        "button_validate",
        "message_post",
        "toggle_active",
    ],
)
def test_escapes_writes_and_bulk_methods_are_refused(method):
    with pytest.raises(PolicyDenied, match="only reading methods"):
        policy.check_method(method)


@pytest.mark.parametrize("method", ["_compute_price", "__init__", "_read_group"])
def test_private_methods_are_refused(method):
    with pytest.raises(PolicyDenied, match="private methods"):
        policy.check_method(method)


@pytest.mark.parametrize("method", ["search_read", "read", "read_group", "search_count"])
def test_reading_methods_pass(method):
    policy.check_method(method)


def test_a_method_name_that_is_not_an_identifier_is_refused():
    with pytest.raises(PolicyDenied, match="not a valid method name"):
        policy.check_method("read; drop")


@pytest.mark.parametrize(
    "field",
    [
        "password",
        "new_password",
        "access_token",
        "api_key",
        "stripe_secret_key",
        "totp_secret",
        "signup_type",
        "key",
        "oauth_access_token",
    ],
)
def test_secret_fields_are_refused(field):
    assert policy.is_secret_field(field)
    with pytest.raises(PolicyDenied, match=f"Fields {field} of res.partner are refused"):
        policy.check_fields("res.partner", ["name", field])


@pytest.mark.parametrize("field", ["name", "keywords", "website_meta_keywords", "tokenize"])
def test_ordinary_fields_pass(field):
    assert not policy.is_secret_field(field)
    policy.check_fields("res.partner", [field])


def test_a_malformed_field_name_is_refused():
    with pytest.raises(PolicyDenied, match="not a valid field name"):
        policy.check_fields("res.partner", ["name, password"])


def test_paths_may_end_on_a_denied_comodel_but_never_read_it():
    policy.check_field_path("sale.order", "partner_id.country_id.code", comodel_of)
    policy.check_field_path("sale.order", "user_id", comodel_of)
    with pytest.raises(PolicyDenied, match="model 'res.users' is refused"):
        policy.check_field_path("sale.order", "user_id.login", comodel_of)
    with pytest.raises(PolicyDenied, match="model 'res.users' is refused"):
        policy.check_field_path("sale.order", "partner_id.user_ids.name", comodel_of)


def test_paths_through_plain_fields_or_unknown_fields_are_refused():
    with pytest.raises(PolicyDenied, match="'name' of sale.order is not relational"):
        policy.check_field_path("sale.order", "name.code", comodel_of)
    with pytest.raises(ValueError, match="unknown field nope"):
        policy.check_field_path("sale.order", "nope", comodel_of)
    with pytest.raises(PolicyDenied, match="longer than"):
        policy.check_field_path("sale.order", ".".join(["partner_id"] * 6), comodel_of)


def test_a_valid_domain_is_normalised_with_its_paths():
    terms, paths = policy.check_domain(
        [
            "|",
            ["name", "ilike", "S00"],
            "!",
            ["partner_id.country_id.code", "in", ["BR", "AR"]],
            ["amount_total", ">=", 10.5],
            ("name", "!=", None),
        ]
    )
    assert terms[1] == ("name", "ilike", "S00")
    assert terms[3] == ("partner_id.country_id.code", "in", ["BR", "AR"])
    assert paths == ["name", "partner_id.country_id.code", "amount_total"]
    assert policy.check_domain([]) == ([], [])


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ({"name": "x"}, "must be a list"),
        ([["name", "ilike"]], "three items"),
        (["name", "=", "x"], "not a domain operator"),
        ([["name", "any", [["id", "=", 1]]]], "operator 'any' is not allowed"),
        ([["name", "any!", []]], "operator 'any!' is not allowed"),
        ([["name", "=", {"$ne": 1}]], "values must be"),
        ([["name", "in", [[1]]]], "values must be"),
        ([["name", "=", "x" * 501]], "longer than 500"),
        ([["id", "in", list(range(201))]], "more than 200 values"),
        ([["id", "=", 1]] * 51, "more than 50 items"),
        (["|", ["id", "=", 1]], "'|' lacks operands"),
        (["!"], "'!' lacks operands"),
        ([[1, "=", 1]], "must be a field name"),
    ],
)
def test_malformed_domains_are_refused(domain, message):
    with pytest.raises(PolicyDenied, match=message):
        policy.check_domain(domain)
