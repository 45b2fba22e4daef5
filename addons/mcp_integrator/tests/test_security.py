# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Multi-company isolation of tenants and credentials; secrets closed to non-managers everywhere."""

import json
from datetime import datetime, timedelta

from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from .test_integrator_api import ACCOUNT_IDS, McpIntegratorCase

SECRETS = ("sec-A-111111", "acc-A-222222", "ref-A-333333", "sec-B-444444")
STORED_SECRET_FIELDS = ("secret", "access_token", "refresh_token")
USER_GROUPS = "base.group_user,base.group_allow_export,mcp_integrator.group_mcp_user"
MANAGER_GROUPS = "base.group_user,mcp_integrator.group_mcp_manager"


def setup_two_companies(cls):
    """Company A (the test company) and B, each with a tenant, hours, a holiday, a credential."""
    cls.company_a = cls.env.company
    cls.company_b = cls.env["res.company"].create({"name": "Company B"})
    cls.tenants = {}
    cls.credentials = {}
    for key, company, secret in (
        ("a", cls.company_a, SECRETS[0]),
        ("b", cls.company_b, SECRETS[3]),
    ):
        account_id = next(ACCOUNT_IDS)
        cls.tenants[key] = cls.env["mcp.tenant"].create(
            {
                "name": f"Tenant {key.upper()}",
                "code": f"t{account_id}",
                "account_id": account_id,
                "company_id": company.id,
                "hours_ids": [(0, 0, {"weekday": "0", "hour_from": 8.0, "hour_to": 18.0})],
                "holiday_ids": [(0, 0, {"date": "2026-12-25", "name": "Christmas"})],
            }
        )
        cls.credentials[key] = cls.env["mcp.credential"].create(
            {
                "name": f"Credential {key.upper()}",
                "kind": "oauth2",
                "tenant_id": cls.tenants[key].id,
                "token_url": "https://auth.example.com/token",
                "client_id": f"client-{key}",
                "secret_input": secret,
                "access_token_input": SECRETS[1] if key == "a" else False,
                "refresh_token_input": SECRETS[2] if key == "a" else False,
            }
        )
    common = {"company_id": cls.company_a.id, "company_ids": [(6, 0, cls.company_a.ids)]}
    cls.user_a = new_test_user(cls.env, "mcp_user_a", groups=USER_GROUPS, **common)
    cls.manager_a = new_test_user(cls.env, "mcp_manager_a", groups=MANAGER_GROUPS, **common)


@tagged("post_install", "-at_install")
class TestMultiCompany(McpIntegratorCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        setup_two_companies(cls)

    def test_company_a_users_cannot_read_company_b(self):
        tenant_b, credential_b = self.tenants["b"], self.credentials["b"]
        for user in (self.user_a, self.manager_a):
            env = self.env(user=user)
            records = {
                "mcp.tenant": tenant_b,
                "mcp.tenant.hours": tenant_b.hours_ids,
                "mcp.tenant.holiday": tenant_b.holiday_ids,
                "mcp.credential": credential_b,
            }
            for model, record in records.items():
                with self.subTest(user=user.login, model=model):
                    self.assertNotIn(record, env[model].search([]))
                    with self.assertRaises(AccessError):
                        env[model].browse(record.id).read(["display_name"])
            own = env["mcp.tenant"].search([("id", "in", list(map(int, self.tenants.values())))])
            self.assertEqual(own, self.tenants["a"])

    def test_user_of_both_companies_sees_the_active_ones(self):
        user = new_test_user(
            self.env,
            "mcp_user_ab",
            groups=USER_GROUPS,
            company_id=self.company_a.id,
            company_ids=[(6, 0, (self.company_a | self.company_b).ids)],
        )
        ids = [tenant.id for tenant in self.tenants.values()]
        env = self.env(user=user, context={"allowed_company_ids": self.company_a.ids})
        self.assertEqual(env["mcp.tenant"].search([("id", "in", ids)]), self.tenants["a"])
        both = (self.company_a | self.company_b).ids
        env = self.env(user=user, context={"allowed_company_ids": both})
        self.assertEqual(len(env["mcp.tenant"].search([("id", "in", ids)])), 2)

    def test_credential_of_another_company_tenant_is_refused(self):
        with (
            self.assertRaisesRegex(UserError, "company inconsistencies"),
            self.cr.savepoint(),
        ):
            self.env["mcp.credential"].create(
                {
                    "name": "Mismatch",
                    "tenant_id": self.tenants["b"].id,
                    "company_id": self.company_a.id,
                }
            )


@tagged("post_install", "-at_install")
class TestSecretsThroughTheOrm(McpIntegratorCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        setup_two_companies(cls)

    def assertNoSecret(self, data):
        text = json.dumps(data, default=str)
        for secret in SECRETS:
            self.assertNotIn(secret, text)

    def test_non_manager_cannot_read_secrets(self):
        credential = self.credentials["a"].with_user(self.user_a)
        Credential = credential.browse()
        for field_name in STORED_SECRET_FIELDS:
            with self.subTest(field=field_name):
                with self.assertRaises(AccessError):
                    credential.read([field_name])
                with self.assertRaises(AccessError):
                    Credential.search_read([], [field_name])
                with self.assertRaises(AccessError):
                    credential.export_data([field_name])
                with self.assertRaises(AccessError):
                    credential.web_read({field_name: {}})
                with self.assertRaises(AccessError):
                    Credential.web_search_read([], {field_name: {}})
                with self.assertRaises(AccessError):
                    Credential.formatted_read_group([], groupby=[field_name])
                with self.assertRaises(AccessError):
                    _value = credential[field_name]
                with self.assertRaises(AccessError):
                    # no guessing a secret through a search domain either
                    Credential.search([(field_name, "=", SECRETS[0])])
        self.assertNoSecret(credential.read())
        self.assertNoSecret(Credential.search_read([]))
        self.assertNoSecret(credential.export_data(["name", "kind", "secret_state"]))
        self.assertNoSecret(credential.web_read({"name": {}, "secret_state": {}}))
        for field_name in STORED_SECRET_FIELDS:
            self.assertNotIn(field_name, Credential.fields_get())
        self.assertTrue(credential.secret_state.startswith("Set"), "the indicator is public")

    def test_non_manager_cannot_write_secrets(self):
        credential = self.credentials["a"].with_user(self.user_a)
        for vals in ({"secret_input": "x"}, {"secret": "x"}, {"name": "x"}):
            with self.subTest(vals=vals), self.assertRaises(AccessError):
                credential.write(vals)

    def test_forms_never_show_stored_secrets(self):
        for user in (self.user_a, self.manager_a):
            arch = (
                self.env["mcp.credential"]
                .with_user(user)
                .get_views([(False, "form"), (False, "list")])["views"]
            )
            for view in arch.values():
                for field_name in STORED_SECRET_FIELDS:
                    self.assertNotIn(f'name="{field_name}"', view["arch"])
        user_form = self.env["mcp.credential"].with_user(self.user_a).get_views([(False, "form")])
        self.assertNotIn("secret_input", user_form["views"]["form"]["arch"])

    def test_manager_reads_secrets_through_the_orm(self):
        credential = self.credentials["a"].with_user(self.manager_a)
        self.assertEqual(credential.read(["secret"])[0]["secret"], SECRETS[0])

    def test_server_side_values_follow_record_rules(self):
        """``_get_secret_values`` is for server code; it still refuses another company's record."""
        self.assertEqual(
            self.credentials["a"].with_user(self.user_a)._get_secret_values()["client_secret"],
            SECRETS[0],
        )
        with self.assertRaises(AccessError):
            self.credentials["b"].with_user(self.user_a)._get_secret_values()


@tagged("post_install", "-at_install")
class TestSecretsOverRpc(HttpCase):
    """The HTTP routes a client can use: /web/dataset/call_kw (session) and /json/2 (API key)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        setup_two_companies(cls)
        cls.api_keys = {}
        for user in (cls.user_a, cls.manager_a):
            cls.api_keys[user.login] = (
                cls.env["res.users.apikeys"]
                .with_user(user)
                ._generate(
                    scope="rpc", name="test", expiration_date=datetime.now() + timedelta(days=1)
                )
            )

    def assertNoSecret(self, text):
        for secret in SECRETS:
            self.assertNotIn(secret, text)

    def call_kw(self, method, args=(), **kwargs):
        response = self.url_open(
            f"/web/dataset/call_kw/mcp.credential/{method}",
            data=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "call",
                    "id": 1,
                    "params": {
                        "model": "mcp.credential",
                        "method": method,
                        "args": list(args),
                        "kwargs": kwargs,
                    },
                }
            ),
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(response.status_code, 200)
        self.assertNoSecret(response.text)
        return response.json()

    def json2(self, login, method, **params):
        response = self.url_open(
            f"/json/2/mcp.credential/{method}",
            data=json.dumps(params),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.api_keys[login]}",
            },
        )
        self.assertNoSecret(response.text)
        return response

    @mute_logger("odoo.http", "odoo.models")
    def test_call_kw_as_user(self):
        self.authenticate(self.user_a.login, self.user_a.login)
        credential_id = self.credentials["a"].id
        rows = self.call_kw("search_read", [[]])["result"]
        self.assertEqual([row["id"] for row in rows], [credential_id])
        self.assertNotIn("secret", rows[0])
        for field_name in STORED_SECRET_FIELDS:
            with self.subTest(field=field_name):
                for answer in (
                    self.call_kw("search_read", [[]], fields=[field_name]),
                    self.call_kw("read", [[credential_id], [field_name]]),
                    self.call_kw("export_data", [[credential_id], [field_name]]),
                    self.call_kw("web_search_read", [], domain=[], specification={field_name: {}}),
                ):
                    self.assertEqual(
                        answer.get("error", {}).get("data", {}).get("name"),
                        "odoo.exceptions.AccessError",
                        answer,
                    )
        error = self.call_kw("_get_secret_values", [[credential_id]])["error"]
        self.assertIn("Private methods", error["data"]["message"])

    @mute_logger("odoo.http", "odoo.models")
    def test_call_kw_private_method_as_manager(self):
        self.authenticate(self.manager_a.login, self.manager_a.login)
        for method in ("_get_secret_values", "_get_access_token", "_oauth2_refresh_generic"):
            with self.subTest(method=method):
                error = self.call_kw(method, [[self.credentials["a"].id]])["error"]
                self.assertIn("Private methods", error["data"]["message"])

    @mute_logger("odoo.http", "odoo.models")
    def test_json2_as_user(self):
        login = self.user_a.login
        response = self.json2(login, "search_read", domain=[])
        self.assertEqual(response.status_code, 200)
        self.assertEqual([row["id"] for row in response.json()], [self.credentials["a"].id])
        for field_name in STORED_SECRET_FIELDS:
            with self.subTest(field=field_name):
                response = self.json2(login, "search_read", domain=[], fields=[field_name])
                self.assertEqual(response.status_code, 403)
        response = self.json2(login, "_get_secret_values", ids=[self.credentials["a"].id])
        self.assertEqual(response.status_code, 403)
        response = self.json2(login, "read", ids=[self.credentials["b"].id], fields=["name"])
        self.assertEqual(response.status_code, 403, "other company")

    @mute_logger("odoo.http", "odoo.models")
    def test_json2_private_method_as_manager(self):
        response = self.json2(
            self.manager_a.login, "_get_secret_values", ids=[self.credentials["a"].id]
        )
        self.assertEqual(response.status_code, 403)
        self.assertIn("Private methods", response.text)
