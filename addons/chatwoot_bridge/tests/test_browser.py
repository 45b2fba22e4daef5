# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""What an admin does in the browser: headless Chromium drives the real web client through the
tour of static/tests/tours/chatwoot_bridge_tours.js, Chatwoot being a fake on loopback."""

import uuid
from urllib.parse import urlencode, urlsplit

from odoo.tests import tagged

from .common import SITE_INBOX, ChatwootBridgeCase
from .fake_chatwoot import PROFILE_PATH


@tagged("post_install", "-at_install", "mcp_browser")
class TestBrowserTours(ChatwootBridgeCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # the names the tour types; the tenant has no Chatwoot account yet
        cls.tour_tenant = cls.make_tenant("Loja Tour")
        cls.tour_bot_token = f"bot-{uuid.uuid4().hex}"
        cls.tour_user_token = f"user-{uuid.uuid4().hex}"
        cls.tour_chatwoot = cls.fake_chatwoot(
            cls.tour_tenant, cls.tour_bot_token, cls.tour_user_token
        )
        cls.tour_bot = cls.credential(
            cls.tour_tenant, "api_key", cls.tour_bot_token, "Bot Loja Tour"
        )
        cls.tour_user = cls.credential(
            cls.tour_tenant, "api_key", cls.tour_user_token, "Usuário Loja Tour"
        )
        cls.tour_signing = cls.credential(
            cls.tour_tenant, "hmac", f"whsec-{uuid.uuid4().hex}", "Assinatura Loja Tour"
        )
        cls.tour_crew = cls.make_crew(cls.tour_tenant, code="vendas")

    def test_admin_connects_a_chatwoot_account(self):
        self.tour_chatwoot.requests.clear()
        self.addCleanup(self.assertEqual, self.tour_chatwoot.violations, [], "Chatwoot's spec")
        # the fake listens on a random port: the tour reads its URL from the start URL's query
        query = urlencode({"chatwoot_url": self.tour_chatwoot.url})
        self.start_tour(f"/odoo?{query}", "chatwoot_bridge_connect_tour", login="admin")
        # the browser's requests changed the records behind this environment's cache
        self.env.invalidate_all()

        account = self.env["chatwoot.account"].search([("tenant_id", "=", self.tour_tenant.id)])
        self.assertEqual(len(account), 1)
        self.assertEqual(
            (account.name, account.base_url, account.mode, account.handoff_priority),
            ("Chatwoot Loja Tour", self.tour_chatwoot.url, "agent_bot", "high"),
        )
        self.assertEqual(account.account_id, self.tour_tenant.account_id)
        self.assertEqual(
            (account.bot_credential_id, account.user_credential_id, account.signing_credential_ids),
            (self.tour_bot, self.tour_user, self.tour_signing),
        )
        self.assertFalse(account.last_error)
        self.assertEqual(account.webhook_url, self.webhook_url_of(account))

        inboxes = {inbox.inbox_id: inbox for inbox in account.inbox_ids}
        self.assertEqual(
            {(inbox.name, inbox.channel_type) for inbox in inboxes.values()},
            {("Site", "Channel::WebWidget"), ("Mercado Livre (API)", "Channel::Api")},
        )
        self.assertEqual(inboxes[SITE_INBOX].crew_id, self.tour_crew)
        self.assertFalse((account.inbox_ids - inboxes[SITE_INBOX]).crew_id)

        # Connect listed the inboxes with the user's token, the only one Chatwoot lists them to
        calls = {
            (request.method, urlsplit(request.path).path, request.headers.get("api_access_token"))
            for request in self.tour_chatwoot.requests
        }
        inboxes_path = f"/api/v1/accounts/{self.tour_tenant.account_id}/inboxes"
        self.assertEqual(calls, {("GET", PROFILE_PATH, "user"), ("GET", inboxes_path, "user")})
