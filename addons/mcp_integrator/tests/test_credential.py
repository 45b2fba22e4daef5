# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Credentials: write-only secrets, audit without values, OAuth 2.0 renewal (alone, concurrent)."""

import json
import logging
import threading
from contextlib import contextmanager
from datetime import timedelta
from unittest.mock import patch

from psycopg2 import IntegrityError

from odoo import SUPERUSER_ID, api, fields
from odoo.exceptions import UserError, ValidationError
from odoo.modules.registry import DummyRLock, Registry
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from .oauth_token_server import TokenServer
from .test_integrator_api import ACCOUNT_IDS, McpIntegratorCase

CREDENTIAL_LOGGER = "odoo.addons.mcp_integrator.models.mcp_credential"


@contextmanager
def captured_logs():
    """Every log record emitted while the block runs; this addon's loggers down to DEBUG."""
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    root = logging.getLogger()
    ours = logging.getLogger("odoo.addons.mcp_integrator")
    previous_level = ours.level
    root.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        ours.setLevel(previous_level)


def oauth2_vals(server, **vals):
    return {
        "name": "Marketplace",
        "kind": "oauth2",
        "token_url": server.url,
        "client_id": server.client_id,
        "secret_input": server.client_secret,
        "access_token_input": "access-0",
        "refresh_token_input": "refresh-0",
        "expires_at": fields.Datetime.now() - timedelta(minutes=5),
    } | vals


@tagged("post_install", "-at_install")
class TestCredential(McpIntegratorCase):
    def new_credential(self, **vals):
        return self.env["mcp.credential"].create({"name": "Service key", "kind": "api_key"} | vals)

    def stored(self, credential, name):
        credential.invalidate_recordset()
        return credential.sudo()[name]

    # write-only secrets ----------------------------------------------------------------------
    def test_inputs_are_write_only(self):
        credential = self.new_credential(secret_input="  key-123  ")
        self.assertEqual(self.stored(credential, "secret"), "key-123", "pasted spaces dropped")
        self.assertFalse(credential.secret_input, "an input never reads back")
        self.assertTrue(credential.secret_set_at)
        self.assertTrue(credential.secret_state.startswith("Set (last changed on "))
        self.assertEqual(credential.access_token_state, "Not set")

    def test_empty_input_keeps_the_secret(self):
        credential = self.new_credential(secret_input="key-123")
        credential.write({"secret_input": False, "name": "Renamed"})
        credential.write({"secret_input": "   "})
        self.assertEqual(self.stored(credential, "secret"), "key-123")
        credential.secret_input = "key-456"
        self.assertEqual(self.stored(credential, "secret"), "key-456")

    def test_clear_secrets(self):
        credential = self.new_credential(secret_input="key-123")
        credential.action_clear_secrets()
        self.assertFalse(self.stored(credential, "secret"))
        self.assertEqual(credential.secret_state, "Not set")

    def test_secrets_are_not_copied(self):
        credential = self.new_credential(secret_input="key-123")
        duplicate = credential.copy()
        self.assertFalse(self.stored(duplicate, "secret"))
        self.assertFalse(duplicate.secret_set_at)

    def test_secret_values_per_kind(self):
        cases = [
            ({"kind": "api_key", "secret_input": "k"}, {"api_key": "k"}),
            ({"kind": "bearer", "secret_input": "t"}, {"token": "t"}),
            (
                {"kind": "basic", "username": "bob", "secret_input": "pw"},
                {"username": "bob", "password": "pw"},
            ),
            ({"kind": "hmac", "secret_input": "h"}, {"secret": "h"}),
            (
                {
                    "kind": "oauth2",
                    "token_url": "https://auth.example.com/token",
                    "client_id": "cid",
                    "secret_input": "cs",
                    "access_token_input": "at",
                    "refresh_token_input": "rt",
                },
                {
                    "client_id": "cid",
                    "client_secret": "cs",
                    "access_token": "at",
                    "refresh_token": "rt",
                },
            ),
            ({"kind": "api_key"}, {"api_key": None}),
        ]
        for vals, expected in cases:
            with self.subTest(kind=vals["kind"]):
                self.assertEqual(self.new_credential(**vals)._get_secret_values(), expected)

    def test_kind_settings_are_checked(self):
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.new_credential(kind="basic", secret_input="pw")
        for url in (False, "http://auth.example.com/token", "not a url"):
            with self.subTest(url=url), self.assertRaises(ValidationError), self.cr.savepoint():
                self.new_credential(kind="oauth2", token_url=url)
        self.new_credential(kind="oauth2", token_url="https://auth.example.com/token")

    def test_company_follows_the_tenant(self):
        other_company = self.env["res.company"].create({"name": "Other Co"})
        shared = self.new_credential()
        self.assertEqual(shared.company_id, self.env.company)
        tenant = self.make_tenant("Other tenant", company_id=other_company.id)
        credential = self.new_credential(tenant_id=tenant.id)
        self.assertEqual(credential.company_id, other_company)
        tenant.company_id = self.env.company
        self.assertEqual(credential.company_id, self.env.company)

    def test_tenant_with_credentials_cannot_be_deleted(self):
        tenant = self.make_tenant("Has credentials")
        self.new_credential(tenant_id=tenant.id)
        with (
            mute_logger("odoo.sql_db"),
            self.assertRaises(IntegrityError),
            self.cr.savepoint(),
        ):
            tenant.unlink()

    # secrets never leak ---------------------------------------------------------------------
    def test_no_secret_in_repr_names_audit_or_logs(self):
        secrets = ("sk-live-123456789", "at-987654321", "rt-555555555")
        with captured_logs() as records:
            credential = self.new_credential(
                kind="oauth2",
                token_url="https://auth.example.com/token",
                secret_input=secrets[0],
                access_token_input=secrets[1],
                refresh_token_input=secrets[2],
                tenant_id=self.tenant.id,
            )
            credential.write({"secret_input": secrets[0] + "x", "name": "Renamed"})
        texts = [repr(credential), str(credential), credential.display_name]
        texts += [record.getMessage() for record in records]
        audit = self.env["mcp.audit.log"].search(
            [("target", "=", f"mcp.credential,{credential.id}")]
        )
        self.assertEqual(audit.mapped("operation"), ["config.write", "config.create"])
        texts += audit.mapped("arguments") + [str(audit.read())]
        for text in texts:
            for secret in secrets:
                self.assertNotIn(secret, text)
        write = json.loads(audit[0].arguments)
        self.assertEqual(write["fields"], ["name", "secret_input"], "secret changes: names only")
        self.assertEqual(write["values"], {"name": "Renamed"})
        self.assertEqual(audit.tenant_id, self.tenant)

    # cache invalidation ----------------------------------------------------------------------
    def test_writes_invalidate_the_cached_credential(self):
        second_tenant = self.make_tenant("Second")
        credential = self.new_credential(tenant_id=self.tenant.id)
        shared = self.new_credential()
        computed = []

        def read(tenant, record):
            self.integrator.cached(
                tenant,
                "mcp_integrator",
                "credential",
                record.id,
                "meta",
                lambda: computed.append(1) or record.name,
            )
            return len(computed)

        self.assertEqual(read(self.tenant, credential), 1)
        self.assertEqual(read(self.tenant, credential), 1)
        credential.name = "Renamed"
        self.assertEqual(read(self.tenant, credential), 2)
        self.assertEqual(read(self.tenant, shared), 3)
        self.assertEqual(read(second_tenant, shared), 4)
        shared.name = "Shared renamed"  # a shared credential is every tenant's
        self.assertEqual(read(self.tenant, shared), 5)
        self.assertEqual(read(second_tenant, shared), 6)
        self.assertEqual(read(second_tenant, shared), 6)

    # OAuth 2.0 --------------------------------------------------------------------------------
    def test_valid_token_is_returned_without_renewal(self):
        with TokenServer() as server:
            credential = self.new_credential(
                **oauth2_vals(server, expires_at=fields.Datetime.now() + timedelta(hours=1))
            )
            self.assertEqual(credential._get_access_token(), "access-0")
            credential.expires_at = False  # no lifetime given: kept until renewed by hand
            self.assertEqual(credential._get_access_token(), "access-0")
        self.assertEqual(server.refresh_count, 0)

    def test_expired_token_is_renewed(self):
        with TokenServer(expires_in=1800) as server:
            credential = self.new_credential(**oauth2_vals(server, tenant_id=self.tenant.id))
            before = fields.Datetime.now()
            self.assertEqual(credential._get_access_token(), "access-1")
            self.assertEqual(credential._get_access_token(), "access-1", "now valid: no renewal")
        self.assertEqual(server.refresh_count, 1)
        self.assertEqual(self.stored(credential, "access_token"), "access-1")
        self.assertEqual(self.stored(credential, "refresh_token"), "refresh-1", "rotated")
        self.assertAlmostEqual(
            credential.expires_at, before + timedelta(seconds=1800), delta=timedelta(seconds=5)
        )
        self.assertFalse(credential.last_refresh_error)
        self.assertTrue(server.requests[0]["authorization"].startswith("Basic "))
        audit = self.env["mcp.audit.log"].search(
            [
                ("target", "=", f"mcp.credential,{credential.id}"),
                ("operation", "=", "oauth.refresh"),
            ]
        )
        self.assertEqual(audit.status, "ok")
        self.assertEqual(audit.tenant_id, self.tenant)
        self.assertNotIn("refresh-", audit.arguments)

    def test_token_expiring_within_the_margin_is_renewed(self):
        with TokenServer() as server:
            credential = self.new_credential(
                **oauth2_vals(server, expires_at=fields.Datetime.now() + timedelta(seconds=30))
            )
            self.assertEqual(credential._get_access_token(), "access-1")

    def test_missing_access_token_is_fetched(self):
        with TokenServer() as server:
            credential = self.new_credential(
                **oauth2_vals(server, access_token_input=False, expires_at=False)
            )
            self.assertEqual(credential._get_access_token(), "access-1")

    def test_provider_without_rotation_keeps_the_refresh_token(self):
        with TokenServer(rotate=False) as server:
            credential = self.new_credential(**oauth2_vals(server, oauth_client_auth="body"))
            self.assertEqual(credential._get_access_token(), "access-1")
        self.assertEqual(self.stored(credential, "refresh_token"), "refresh-0")
        self.assertEqual(server.requests[0]["form"]["client_id"], server.client_id)

    def test_renew_button_forces_a_renewal(self):
        with TokenServer() as server:
            credential = self.new_credential(
                **oauth2_vals(server, expires_at=fields.Datetime.now() + timedelta(hours=1))
            )
            action = credential.action_refresh_token()
            self.assertEqual(action["tag"], "display_notification")
            credential.action_refresh_token()
        self.assertEqual(server.refresh_count, 2)
        self.assertEqual(self.stored(credential, "access_token"), "access-2")

    def test_failed_renewal_is_a_clear_error_without_tokens(self):
        with TokenServer(refresh_token="another-refresh-token") as server:
            credential = self.new_credential(**oauth2_vals(server, name="Shopee Acme"))
            # Not assertRaises: its savepoint would roll back what the renewal committed.
            with captured_logs() as records, self.assertLogs(CREDENTIAL_LOGGER) as ours:
                try:
                    credential._get_access_token()
                except UserError as exc:
                    message = str(exc)
                else:
                    self.fail("the renewal should have failed")
        self.assertIn("Shopee Acme", message)
        self.assertIn("invalid_grant", message)
        records += ours.records  # kept from the log file: the failure is expected here
        warnings = [
            record.getMessage()
            for record in records
            if record.name == CREDENTIAL_LOGGER and record.levelno == logging.WARNING
        ]
        self.assertEqual(len(warnings), 1)
        credential.invalidate_recordset()
        self.assertIn("invalid_grant", credential.last_refresh_error)
        self.assertTrue(credential.reauthorization_needed, "refused for good: authorize again")
        audit = self.env["mcp.audit.log"].search(
            [("target", "=", f"mcp.credential,{credential.id}"), ("status", "=", "error")]
        )
        self.assertEqual(audit.operation, "oauth.refresh")
        logged = [record.getMessage() for record in records]
        for text in [message, credential.last_refresh_error, audit.error, *logged]:
            for secret in ("refresh-0", "access-0", server.client_secret):
                self.assertNotIn(secret, text)
        self.assertEqual(self.stored(credential, "refresh_token"), "refresh-0", "kept")

    def test_unreachable_token_endpoint(self):
        credential = self.new_credential(
            kind="oauth2",
            token_url="http://127.0.0.1:9/token",
            refresh_token_input="refresh-0",
            name="Dead endpoint",
        )
        with mute_logger(CREDENTIAL_LOGGER), self.assertRaises(UserError) as caught:
            credential._get_access_token()
        self.assertIn("Dead endpoint", str(caught.exception))
        self.assertIn("could not be reached", str(caught.exception))
        credential.invalidate_recordset()
        self.assertFalse(credential.reauthorization_needed, "may work later: no alert")

    def test_a_new_authorization_clears_the_alert(self):
        with TokenServer() as server:
            credential = self.new_credential(**oauth2_vals(server))
            credential.sudo().reauthorization_needed = True
            self.assertEqual(credential._get_access_token(), "access-1")
        credential.invalidate_recordset()
        self.assertFalse(credential.reauthorization_needed)

    def test_renewal_needs_a_refresh_token(self):
        with TokenServer() as server:
            credential = self.new_credential(**oauth2_vals(server, refresh_token_input=False))
            with self.assertRaises(UserError) as caught:
                credential._get_access_token()
        self.assertIn("no refresh token", str(caught.exception))
        self.assertEqual(server.requests, [])

    def test_access_token_of_another_kind(self):
        with self.assertRaises(UserError):
            self.new_credential(secret_input="k")._get_access_token()

    def test_stale_caller_rereads_after_the_lock(self):
        """A worker whose snapshot still shows the expired token does not renew it twice.

        The other worker is a second environment on its own cursor (nested in the test
        transaction in test mode): it renews and commits; the first one, whose cache still holds
        the expired token, goes for the lock, re-reads in the renewal cursor and finds the new
        token. The real concurrent case is proven below on independent connections.
        """
        with TokenServer() as server:
            credential = self.new_credential(**oauth2_vals(server))
            self.assertEqual(credential.sudo().access_token, "access-0")  # stale in this cache
            self.env.flush_all()  # what a committed transaction would show the other worker
            with self.registry.cursor() as cr:
                other_worker = api.Environment(cr, SUPERUSER_ID, {})
                token = other_worker["mcp.credential"].browse(credential.id)._get_access_token()
                self.assertEqual(token, "access-1")
            self.assertEqual(credential._get_access_token(), "access-1")
        self.assertEqual(server.refresh_count, 1)
        self.assertEqual(server.rejected, 0)


@tagged("post_install", "-at_install")
class TestConcurrentRenewal(TransactionCase):
    """Two workers on independent database connections renew one credential at the same moment.

    No test mode here: every cursor is a real connection with its own REPEATABLE READ snapshot,
    exactly as in production. The credential is committed for real (and deleted afterwards).
    The token server takes 0.4 s per renewal so the second worker arrives while the first holds
    the lock; it rejects a reused refresh token, as single-use providers do.
    """

    def setUp(self):
        super().setUp()
        self.server = TokenServer(delay=0.4).__enter__()
        self.addCleanup(self.server.__exit__, None, None, None)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            account_id = next(ACCOUNT_IDS)
            tenant = env["mcp.tenant"].create(
                {"name": "Concurrent", "code": f"t{account_id}", "account_id": account_id}
            )
            credential = env["mcp.credential"].create(oauth2_vals(self.server, tenant_id=tenant.id))
            self.tenant_id, self.credential_id = tenant.id, credential.id
        self.addCleanup(self.delete_committed)

    def delete_committed(self):
        with self.registry.cursor() as cr:
            cr.execute(
                "DELETE FROM mcp_audit_log WHERE target IN %s OR tenant_id = %s",
                (
                    (f"mcp.credential,{self.credential_id}", f"mcp.tenant,{self.tenant_id}"),
                    self.tenant_id,
                ),
            )
            cr.execute("DELETE FROM mcp_credential WHERE id = %s", (self.credential_id,))
            cr.execute("DELETE FROM mcp_tenant WHERE id = %s", (self.tenant_id,))

    def test_two_workers_renew_once(self):
        # The test runner holds the registry class lock while it runs post-install tests; the
        # workers only look their registry up, as Odoo's own HTTP test mode lets them do.
        self.startPatcher(patch.object(Registry, "_lock", DummyRLock()))
        barrier = threading.Barrier(2, timeout=10)
        tokens, errors = [], []

        def worker():
            try:
                with self.registry.cursor() as cr:
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    credential = env["mcp.credential"].browse(self.credential_id)
                    # Both workers see the expired token before either one renews it.
                    self.assertTrue(credential.expires_at < fields.Datetime.now())
                    barrier.wait()
                    tokens.append(credential._get_access_token())
                    # The caller's transaction is lost: the renewal must not be.
                    cr.rollback()
            except Exception as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        self.assertEqual(errors, [])
        self.assertEqual(tokens, ["access-1", "access-1"])
        self.assertEqual(self.server.refresh_count, 1, "exactly one renewal")
        self.assertEqual(self.server.rejected, 0, "no reuse of the spent refresh token")
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            values = env["mcp.credential"].browse(self.credential_id)._get_secret_values()
        self.assertEqual(values["access_token"], "access-1")
        self.assertEqual(values["refresh_token"], "refresh-1")
        self.assertEqual(self.server.valid_refresh_tokens, {"refresh-1"})
