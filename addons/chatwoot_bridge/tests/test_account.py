# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The Chatwoot account screen: Connect, the webhook URL, secrets, access and companies."""

import uuid

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged

from .common import API_INBOX, SITE_INBOX, ChatwootBridgeCase


@tagged("post_install", "-at_install")
class TestAccount(ChatwootBridgeCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = new_test_user(
            cls.env,
            login=f"chatwoot_user_{cls.tenant.account_id}",
            groups="base.group_user,mcp_integrator.group_mcp_user",
        )

    def test_connect_lists_the_inboxes_and_shows_the_webhook_url(self):
        self.assertEqual(
            sorted(self.account.inbox_ids.mapped("inbox_id")), sorted([API_INBOX, SITE_INBOX])
        )
        self.assertEqual(self.inbox(API_INBOX).channel_type, "Channel::Api")
        action = self.account.action_connect()
        self.assertIn(self.webhook_url, action["params"]["message"])
        self.assertIn("Ana Souza", action["params"]["message"])
        self.assertEqual(len(self.account.inbox_ids), 2, "connecting again adds no duplicate")
        self.assertTrue(self.account.webhook_url.endswith(self.account.path_token))

    def test_connect_with_a_wrong_token_says_why(self):
        self.account.user_credential_id.secret_input = "not-the-token"
        with self.assertRaisesRegex(UserError, "Chatwoot refused the connection: .*401"):
            self.account.action_connect()
        self.assertIn("401", self.account.last_error)
        self.assertNotIn("not-the-token", self.account.last_error)
        self.assertIn("last error", self.account.health)

    def test_connect_needs_the_user_token(self):
        self.account.user_credential_id = False
        with self.assertRaisesRegex(UserError, "user access token"):
            self.account.action_connect()

    def test_the_chatwoot_url_must_be_http(self):
        with self.assertRaises(ValidationError):
            self.account.base_url = "ftp://chatwoot.example.com"

    def test_one_account_per_tenant(self):
        with self.assertViolates("chatwoot_account_tenant_uniq"):
            self.env["chatwoot.account"].create(
                {"name": "Again", "tenant_id": self.tenant.id, "base_url": self.chatwoot.url}
            )

    def test_health_shows_the_last_delivery(self):
        self.assertIn("No delivery", self.account.health)
        self.deliver(self.message_payload(conversation_id=6001))
        self.account.invalidate_recordset()
        self.assertTrue(self.account.last_delivery_at)
        self.assertIn("Last delivery", self.account.health)

    def test_a_new_webhook_url_retires_the_old_one(self):
        old_url = self.webhook_url
        self.account.action_regenerate_path_token()
        self.assertEqual(self.deliver(self.message_payload(), url=old_url).status_code, 404)
        new_url = self.webhook_url_of(self.account)
        self.assertEqual(self.deliver(self.message_payload(), url=new_url).status_code, 200)

    def test_a_rotated_secret_applies_at_once(self):
        new_secret = f"whsec-{uuid.uuid4().hex}"
        self.account.signing_credential_ids[0].secret_input = new_secret
        self.assertEqual(self.deliver(self.message_payload()).status_code, 401)
        response = self.deliver(self.message_payload(), secret=new_secret)
        self.assertEqual(response.status_code, 200)

    def test_an_archived_account_receives_nothing(self):
        self.account.active = False
        self.assertEqual(self.deliver(self.message_payload()).status_code, 404)

    def test_users_read_but_only_managers_change_or_see_the_path_token(self):
        account = self.account.with_user(self.user)
        self.assertEqual(account.name, self.account.name)
        with self.assertRaises(AccessError):
            account.write({"handoff_message": "x"})
        with self.assertRaises(AccessError):
            account.read(["path_token"])
        self.assertEqual(self.account.with_user(self.manager).path_token, self.account.path_token)
        with self.assertRaises(AccessError):
            self.env["chatwoot.sent.message"].with_user(self.user).search([])

    def test_other_companies_accounts_are_hidden(self):
        company = self.env["res.company"].create({"name": "Outra Empresa"})
        tenant = self.make_tenant("Outra", company_id=company.id)
        other = self.env["chatwoot.account"].create(
            {"name": "Outra", "tenant_id": tenant.id, "base_url": "https://chat.example.com"}
        )
        self.assertNotIn(other, self.env["chatwoot.account"].with_user(self.manager).search([]))

    def test_configuration_changes_are_audited_without_secrets(self):
        self.account.action_regenerate_path_token()
        [row] = self.audit_rows(
            operation="config.write", target=f"chatwoot.account,{self.account.id}"
        )
        self.assertIn("path_token", str(row.read()), "the change is audited")
        self.assertNotIn(self.account.path_token, str(row.read()), "its value is not")
