# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Shared set-up of the bridge's Odoo tests: the crew engine's tenant and fake LLM, a fake
Chatwoot on loopback whose Agent Bot calls this Odoo, and helpers to deliver and run jobs."""

import copy
import json
import time
import traceback
import uuid
from pathlib import Path

from odoo.tests import HttpCase
from odoo.tools import mute_logger

from odoo.addons.mcp_crew_engine.tests import fake_llm_server as fake
from odoo.addons.mcp_crew_engine.tests.common import CrewEngineCase
from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.queue_job.job import Job

from ..models.chatwoot_account import WEBHOOK_PATH
from .fake_chatwoot import FakeChatwoot, sign_headers

REFERENCE = Path(__file__).resolve().parent / "data" / "chatwoot"
QUIET = ("odoo.addons.chatwoot_bridge.controllers.webhook", "odoo.http")
SITE_INBOX = 8  # the fake's web widget inbox
API_INBOX = 7  # the fake's API inbox


def reference_payload(name, account_id):
    """A sample webhook of the reference data, for ``account_id``."""
    payload = json.loads((REFERENCE / name).read_text())
    if "account" in payload:
        payload["account"]["id"] = account_id
    return payload


class ChatwootBridgeCase(CrewEngineCase, HttpCase):
    """A Chatwoot account of the tenant, in Agent Bot mode with a signing secret, pointing at
    a fake Chatwoot whose Agent Bot delivers to this Odoo's webhook URL."""

    registry_test_mode = False  # McpIntegratorCase puts the registry in test mode itself

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bot_token = f"bot-{uuid.uuid4().hex}"
        cls.user_token = f"user-{uuid.uuid4().hex}"
        cls.secret = f"whsec-{uuid.uuid4().hex}"
        cls.chatwoot = cls.fake_chatwoot(cls.tenant, cls.bot_token, cls.user_token)
        cls.account = cls.make_account(cls.tenant, cls.chatwoot)
        cls.webhook_url = cls.webhook_url_of(cls.account)
        cls.chatwoot.bot_url = cls.webhook_url
        cls.chatwoot.bot_secret = cls.secret

    def setUp(self):
        super().setUp()
        self.chatwoot.reset_faults()
        self.chatwoot.requests.clear()
        self.chatwoot.outbox.clear()
        self.addCleanup(self.assertEqual, self.chatwoot.violations, [], "Chatwoot's spec")

    # configuration ----------------------------------------------------------------------------
    @classmethod
    def fake_chatwoot(cls, tenant, bot_token=None, user_token=None):
        """A fake Chatwoot for ``tenant``'s account, running until the class is done."""
        chatwoot = FakeChatwoot(
            account_id=tenant.account_id,
            bot_token=bot_token or f"bot-{uuid.uuid4().hex}",
            user_token=user_token or f"user-{uuid.uuid4().hex}",
        )
        chatwoot.start()
        cls.addClassCleanup(chatwoot.stop)
        return chatwoot

    @classmethod
    def credential(cls, tenant, kind, secret, name):
        return cls.env["mcp.credential"].create(
            {"name": name, "kind": kind, "tenant_id": tenant.id, "secret_input": secret}
        )

    @classmethod
    def make_account(cls, tenant, chatwoot, secret=None, **vals):
        account = cls.env["chatwoot.account"].create(
            {
                "name": f"Chatwoot {tenant.name}",
                "tenant_id": tenant.id,
                "base_url": chatwoot.url,
                "bot_credential_id": cls.credential(
                    tenant, "api_key", chatwoot.bot_token, "bot"
                ).id,
                "user_credential_id": cls.credential(
                    tenant, "api_key", chatwoot.user_token, "user"
                ).id,
                "signing_credential_ids": [
                    (6, 0, [cls.credential(tenant, "hmac", secret or cls.secret, "signing").id])
                ],
                **vals,
            }
        )
        account.action_connect()  # lists the fake's inboxes
        return account

    @classmethod
    def webhook_url_of(cls, account):
        return f"{cls.base_url()}{WEBHOOK_PATH}{account.sudo().path_token}"

    @classmethod
    def inbox(cls, inbox_id, account=None):
        return (account or cls.account).inbox_ids.filtered(lambda i: i.inbox_id == inbox_id)

    # delivering -------------------------------------------------------------------------------
    def post(self, url, body, headers):
        with mute_logger(*QUIET):
            return self.url_open(url, data=body, headers=headers, timeout=30)

    def deliver(self, payload, secret=None, url=None, headers=None, delivery=None):
        """POST ``payload`` (a dict, or raw bytes) as Chatwoot does, signed with ``secret``
        (the account's by default; False: unsigned)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        all_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        secret = self.secret if secret is None else secret
        if secret:
            all_headers.update(sign_headers(secret, body, delivery=delivery))
        elif delivery:
            all_headers["X-Chatwoot-Delivery"] = delivery
        all_headers.update(headers or {})
        return self.post(url or self.webhook_url, body, all_headers)

    def deliver_outbox(self):
        """Deliver the webhooks the fake Chatwoot queued; their responses."""
        responses = self.chatwoot.deliver_webhooks(self.post)
        for response in responses:
            self.assertEqual(response.status_code, 200, response.text)
        return responses

    def customer_writes(self, text, conversation_id=None, inbox_id=SITE_INBOX):
        """A customer writes in Chatwoot (a new conversation unless one is given); the Agent
        Bot's delivery reaches Odoo. The conversation's display id."""
        if conversation_id is None:
            conversation_id = self.chatwoot.new_conversation(
                inbox_id, name="Maria", identifier=f"maria-{uuid.uuid4().hex[:8]}", content=text
            )
        else:
            self.chatwoot.customer_message(conversation_id, text)
        self.deliver_outbox()
        return conversation_id

    def message_payload(self, text="Oi", conversation_id=1042, message_id=None, **conversation):
        """The reference incoming message of a contact, in a pending conversation of the
        account, with a message id of its own."""
        payload = reference_payload(
            "wh_message_created_incoming_contact.json", self.tenant.account_id
        )
        payload["id"] = message_id or int(time.monotonic_ns() % 10**9)
        payload["content"] = text
        payload["conversation"]["id"] = conversation_id
        payload["conversation"]["status"] = "pending"
        payload["conversation"]["meta"]["assignee"] = None
        payload["conversation"]["meta"]["assignee_type"] = None
        payload["conversation"].update(conversation)
        return copy.deepcopy(payload)

    # jobs -------------------------------------------------------------------------------------
    def pending_jobs(self):
        return self.env["queue.job"].search([("state", "=", "pending")], order="id")

    def run_jobs(self, limit=20):
        """Perform the pending jobs, and those they queue, as the runner would: a job raising
        RetryableJobError is postponed, another error fails it. The jobs left undone."""
        waiting = self.env["queue.job"]
        for _round in range(limit):
            jobs = self.pending_jobs() - waiting
            if not jobs:
                return waiting
            for record in jobs:
                job = Job.load(self.env, record.uuid)
                try:
                    job.perform()
                except RetryableJobError as error:
                    job.postpone(result=str(error), seconds=error.seconds)  # as the runner does
                    job.set_pending(reset_retry=False)
                    job.store()
                    waiting |= record
                    continue
                except Exception as error:  # noqa: BLE001  the runner records any failure
                    job.set_failed(
                        exc_name=type(error).__name__,
                        exc_message=str(error),
                        exc_info=traceback.format_exc(),
                    )
                    job.store()
                    waiting |= record
                    continue
                job.set_done()
                job.store()
        raise AssertionError("jobs kept queueing jobs")

    def answered_with(self, answer):
        """The fake LLM answers the next chat request with ``answer``."""
        self.llm.script(fake.answer(answer))

    def answers_of(self, conversation_id, account=None):
        """The deliveries of a conversation the crews were asked to answer."""
        return self.env["chatwoot.event"].search(
            [
                ("account_id", "=", (account or self.account).id),
                ("conversation_id.conversation_id", "=", conversation_id),
                ("outcome", "=", "answer"),
            ]
        )

    def runs_of(self, conversation_id, account=None):
        conversation = self.env["chatwoot.conversation"].search(
            [
                ("account_id", "=", (account or self.account).id),
                ("conversation_id", "=", conversation_id),
            ]
        )
        return conversation.run_ids
