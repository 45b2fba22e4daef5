# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Channel connectors: the ``mcp.channel`` model, replies of the custom signed-webhook channel
to a real receiver on 127.0.0.1, and what ``/mcp/channel/<token>`` refuses (the accepted
path is the hub's, tested end to end by the Chatwoot bridge)."""

import json
import logging
import socket
import time
from datetime import timedelta

from psycopg2.errors import UniqueViolation

from odoo import fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.mcp_integrator.services import signing
from odoo.addons.mcp_integrator.tests.oauth_token_server import TokenServer

from ..services import channels
from ..services.channels import ChannelSendError, ReauthorizationRequired
from .channel_receiver import ChannelReceiver
from .common import McpConnectorsCase

SECRET = "channel-secret-5f0c9a7e1d"
CONTROLLER_LOGGER = "odoo.addons.mcp_connectors.controllers.channel_webhook"
CHANNEL_LOGGER = "odoo.addons.mcp_connectors.models.mcp_channel"


def closed_port():
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class McpChannelCase(McpConnectorsCase):
    """A tenant's HMAC credential, a real reply receiver and ``make_channel``."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.receiver = ChannelReceiver()
        cls.addClassCleanup(cls.receiver.stop)
        cls.credential = cls.make_credential(SECRET)
        cls.user = new_test_user(
            cls.env,
            login=f"mcp_channel_user_{cls.tenant.account_id}",
            groups="base.group_user,mcp_integrator.group_mcp_user",
        )

    @classmethod
    def make_credential(cls, secret, kind="hmac", tenant=None):
        return cls.env["mcp.credential"].create(
            {
                "name": f"Channel secret {kind}",
                "kind": kind,
                "tenant_id": (tenant or cls.tenant).id,
                "secret_input": secret,
            }
        )

    @classmethod
    def make_channel(cls, **vals):
        return (
            cls.env["mcp.channel"]
            .with_user(cls.manager)
            .create(
                {
                    "name": "Store app",
                    "tenant_id": cls.tenant.id,
                    "channel_type": "webhook",
                    "signing_credential_id": cls.credential.id,
                    "reply_url": cls.receiver.url,
                    **vals,
                }
            )
            .sudo()
        )

    def setUp(self):
        super().setUp()
        self.receiver.requests.clear()

    def failed_reply(self, channel):
        """The ChannelSendError of a reply on ``channel``, caught without a savepoint (unlike
        assertRaises), so that what the channel recorded stays visible."""
        try:
            channel.send_reply("t-1", {"id": "c"}, "Oi")
        except ChannelSendError as exc:
            return exc
        self.fail("the reply was delivered")


@tagged("post_install", "-at_install")
class TestChannel(McpChannelCase):
    # configuration ------------------------------------------------------------------------------
    def test_each_channel_gets_an_unguessable_inbound_url(self):
        first, second = self.make_channel(), self.make_channel(name="Other app")
        self.assertGreaterEqual(len(first.inbound_token), 43)
        self.assertNotEqual(first.inbound_token, second.inbound_token)
        base_url = first.get_base_url()
        self.assertEqual(first.inbound_url, f"{base_url}/mcp/channel/{first.inbound_token}")
        copied = first.copy()
        self.assertTrue(copied.inbound_token)
        self.assertNotEqual(copied.inbound_token, first.inbound_token)

    def test_inbound_tokens_are_unique(self):
        first, second = self.make_channel(), self.make_channel(name="Other app")
        with mute_logger("odoo.sql_db"), self.assertRaises(UniqueViolation), self.cr.savepoint():
            second.write({"inbound_token": first.inbound_token})
            second.flush_recordset()

    def test_a_manager_regenerates_the_inbound_url(self):
        channel = self.make_channel()
        old = channel.inbound_token
        channel.with_user(self.manager).action_regenerate_token()
        self.assertNotEqual(channel.inbound_token, old)
        self.assertIn(channel.inbound_token, channel.inbound_url)
        with self.assertRaises(AccessError):
            channel.with_user(self.user).action_regenerate_token()

    def test_the_reply_url_is_required_http_or_https_and_bounded(self):
        for url in (False, "ftp://app.example.com/r", "javascript:alert(1)", "https:///x"):
            with self.subTest(url=url), self.assertRaises(ValidationError):
                self.make_channel(reply_url=url)
        with self.assertRaisesRegex(ValidationError, "longer than 2048"):
            self.make_channel(reply_url="https://app.example.com/" + "a" * 2048)
        channel = self.make_channel(reply_url="https://app.example.com/replies")
        with self.assertRaises(ValidationError):
            channel.reply_url = "file:///etc/passwd"

    def test_the_signing_credential_is_an_hmac_secret_of_the_tenant(self):
        with self.assertRaisesRegex(ValidationError, "HMAC"):
            self.make_channel(signing_credential_id=self.make_credential("k", "api_key").id)
        other = self.make_tenant("Other")
        foreign = self.make_credential("s", tenant=other)
        with self.assertRaisesRegex(ValidationError, "another tenant"):
            self.make_channel(signing_credential_id=foreign.id)
        foreign_token = self.make_credential("t", kind="bearer", tenant=other)
        with self.assertRaisesRegex(ValidationError, "another tenant"):
            self.make_channel(access_credential_id=foreign_token.id)

    def test_users_read_channels_and_only_managers_change_them(self):
        channel = self.make_channel()
        as_user = channel.with_user(self.user)
        self.assertEqual(as_user.read(["name"])[0]["name"], "Store app")
        with self.assertRaises(AccessError):
            as_user.write({"name": "Renamed"})
        with self.assertRaises(AccessError):
            as_user.unlink()
        with self.assertRaises(AccessError):
            self.env["mcp.channel"].with_user(self.user).create(
                {"name": "X", "tenant_id": self.tenant.id, "reply_url": self.receiver.url}
            )

    def test_channels_of_other_companies_are_hidden(self):
        channel = self.make_channel()
        company = self.env["res.company"].create({"name": "Other Channel Co"})
        outsider = new_test_user(
            self.env,
            login=f"mcp_channel_outsider_{self.tenant.account_id}",
            groups="base.group_user,mcp_integrator.group_mcp_manager",
            company_id=company.id,
            company_ids=[company.id],
        )
        self.assertFalse(self.env["mcp.channel"].with_user(outsider).search([]) & channel)

    def test_configuration_changes_are_audited_without_the_token(self):
        channel = self.make_channel()
        rows = self.audit_rows(operation="config.create", target=f"mcp.channel,{channel.id}")
        self.assertEqual(len(rows), 1)
        self.assertNotIn(channel.inbound_token, rows.arguments)

    # replies ----------------------------------------------------------------------------------
    def test_a_reply_is_posted_signed_to_the_reply_url(self):
        channel = self.make_channel()
        self.receiver.answer(200, {"message_id": "out-1"})
        result = channel.send_reply(
            "order-1001",
            {"id": "c-7", "name": "Ana"},
            "Seu pedido saiu para entrega.",
            attachments=[{"name": "nf.pdf", "mimetype": "application/pdf", "url": "https://x"}],
            metadata={"order": "1001"},
        )
        self.assertEqual(result, {"external_id": "out-1"})
        (request,) = self.receiver.requests
        self.assertTrue(request.headers["X-MCP-Delivery"])
        self.assertEqual(
            request.verified_json(SECRET, signing.verify),
            {
                "thread_id": "order-1001",
                "contact": {"id": "c-7", "name": "Ana"},
                "text": "Seu pedido saiu para entrega.",
                "attachments": [
                    {"name": "nf.pdf", "mimetype": "application/pdf", "url": "https://x"}
                ],
                "metadata": {"order": "1001"},
            },
        )
        self.assertTrue(channel.last_sent_at)
        self.assertFalse(channel.last_error)
        self.assertFalse(
            self.audit_rows(operation="config.write", target=f"mcp.channel,{channel.id}"),
            "the channel's health is not a configuration change",
        )

    def test_a_user_of_the_hub_can_send_replies(self):
        channel = self.make_channel()
        self.assertEqual(
            channel.with_user(self.user).send_reply("t-1", {"id": "c"}, "Oi")["external_id"],
            "reply-1",
        )

    def test_rate_limits_and_server_errors_are_retryable(self):
        channel = self.make_channel()
        for status, headers, retry_after in ((429, {"Retry-After": "12"}, 12), (503, {}, None)):
            with self.subTest(status=status):
                self.receiver.answer(status, {"error": "busy"}, headers=headers)
                error = self.failed_reply(channel)
                self.assertEqual((error.retryable, error.retry_after), (True, retry_after))
                self.assertIn(f"HTTP {status}", error.reason)
                self.assertEqual(channel.last_error, error.reason)

    def test_a_refused_reply_is_permanent_and_never_shows_the_secret(self):
        channel = self.make_channel()
        self.receiver.answer(422, {"error": f"thread closed; we know {SECRET}"})
        error = self.failed_reply(channel)
        self.assertFalse(error.retryable)
        self.assertIn("HTTP 422: thread closed", error.reason)
        for text in (error.reason, str(error), channel.last_error):
            self.assertNotIn(SECRET, text)
        self.receiver.answer(200, {"message_id": 5})
        self.assertEqual(channel.send_reply("t-1", {"id": "c"}, "Oi"), {"external_id": "5"})
        self.assertFalse(channel.last_error, "a delivery clears the last error")

    def test_an_unreachable_reply_url_is_retryable(self):
        channel = self.make_channel(reply_url=f"http://127.0.0.1:{closed_port()}/r?key=hidden")
        error = self.failed_reply(channel)
        self.assertTrue(error.retryable)
        self.assertNotIn("hidden", error.reason)

    def test_no_reply_leaves_unsigned_or_from_an_archived_channel(self):
        unsigned = self.make_channel(signing_credential_id=False)
        empty = self.make_channel(signing_credential_id=self.make_credential(False).id)
        archived = self.make_channel()
        archived.active = False
        for channel in (unsigned, empty, archived):
            with self.subTest(channel=channel.id):
                error = self.failed_reply(channel)
                self.assertFalse(error.retryable)
                self.assertEqual(channel.last_error, error.reason)
        self.assertFalse(self.receiver.requests)


@tagged("post_install", "-at_install")
class TestChannelAuthorization(McpChannelCase):
    """What every platform channel shares: its access token, renewed through the credential,
    and the alert when the platform refuses the authorization for good."""

    LOGGERS = (CHANNEL_LOGGER, "odoo.addons.mcp_integrator.models.mcp_credential")

    def oauth_channel(self, server, **credential_vals):
        credential = self.env["mcp.credential"].create(
            {
                "name": "Marketplace tokens",
                "kind": "oauth2",
                "tenant_id": self.tenant.id,
                "token_url": server.url,
                "client_id": server.client_id,
                "secret_input": server.client_secret,
                "access_token_input": "access-0",
                "refresh_token_input": "refresh-0",
                "expires_at": fields.Datetime.now() - timedelta(minutes=5),
                **credential_vals,
            }
        )
        return self.make_channel(access_credential_id=credential.id)

    def access_token_error(self, channel):
        """The ChannelSendError of ``_access_token``, caught without a savepoint (what the
        renewal committed stays visible)."""
        try:
            with mute_logger(*self.LOGGERS):
                channel._access_token()
        except ChannelSendError as exc:
            return exc
        self.fail("a token was returned")

    def warnings_of(self, channel):
        return channel.activity_ids.filtered(
            lambda activity: (
                activity.activity_type_id == self.env.ref("mail.mail_activity_data_warning")
            )
        )

    def test_an_expired_token_is_renewed_through_the_credential(self):
        with TokenServer() as server:
            channel = self.oauth_channel(server)
            self.assertEqual(channel._access_token(), "access-1")
            self.assertEqual(channel._access_token(), "access-1", "valid now: no second call")
        self.assertEqual(server.refresh_count, 1)

    def test_a_bearer_token_is_used_as_it_is(self):
        credential = self.make_credential("system-user-token", kind="bearer")
        channel = self.make_channel(access_credential_id=credential.id)
        self.assertEqual(channel._access_token(), "system-user-token")
        with self.assertRaises(ReauthorizationRequired):
            channel._renew_access_token()  # nothing to renew a bearer token with

    def test_no_access_credential_is_a_clear_permanent_error(self):
        exc = self.access_token_error(self.make_channel())
        self.assertFalse(exc.retryable)
        self.assertIn("no access credential", exc.reason)

    def test_a_refused_grant_alerts_the_managers_once(self):
        with TokenServer(refresh_token="not-the-stored-one") as server:
            channel = self.oauth_channel(server)
            first = self.access_token_error(channel)
            second = self.access_token_error(channel)
        for exc in (first, second):
            self.assertIsInstance(exc, ReauthorizationRequired)
            self.assertFalse(exc.retryable)
            self.assertNotIn("refresh-0", exc.reason)
        channel.invalidate_recordset()
        self.assertTrue(channel.reauthorization_needed)
        self.assertIn("invalid_grant", channel.reauthorization_reason)
        self.assertEqual(len(self.warnings_of(channel)), 1, "one to-do, not one per reply")
        self.assertIn(channel, channel.search([("reauthorization_needed", "=", True)]))

    def test_an_unreachable_token_endpoint_is_retried_without_an_alert(self):
        channel = self.make_channel(
            access_credential_id=self.env["mcp.credential"]
            .create(
                {
                    "name": "Dead endpoint",
                    "kind": "oauth2",
                    "tenant_id": self.tenant.id,
                    "token_url": f"http://127.0.0.1:{closed_port()}/token",
                    "refresh_token_input": "refresh-0",
                }
            )
            .id
        )
        exc = self.access_token_error(channel)
        self.assertNotIsInstance(exc, ReauthorizationRequired)
        self.assertTrue(exc.retryable)
        self.assertFalse(channel.reauthorization_needed)

    def test_a_passing_test_clears_the_alert(self):
        channel = self.make_channel()
        channel._alert_reauthorization("invalid_grant: the seller revoked the app")
        self.assertEqual(len(self.warnings_of(channel)), 1)
        channel._clear_reauthorization()
        self.assertFalse(channel.reauthorization_needed)
        self.assertFalse(self.warnings_of(channel))

    def test_the_schedule_renews_only_tokens_that_expire_soon(self):
        with TokenServer() as server:
            soon = self.oauth_channel(
                server, expires_at=fields.Datetime.now() + timedelta(minutes=30)
            )
            later = self.oauth_channel(
                server,
                name="Later",
                refresh_token_input="refresh-later",
                expires_at=fields.Datetime.now() + timedelta(days=3),
            )
            server.valid_refresh_tokens.add("refresh-later")
            self.env["mcp.channel"]._cron_renew_tokens()
        self.assertEqual(server.refresh_count, 1)
        soon.access_credential_id.invalidate_recordset()
        self.assertGreater(
            soon.access_credential_id.expires_at, fields.Datetime.now() + timedelta(minutes=30)
        )
        self.assertEqual(later.access_credential_id.sudo().access_token, "access-0")

    def test_a_custom_channel_has_nothing_to_test_and_no_mcp_server(self):
        channel = self.make_channel()
        self.assertFalse(channel.server_id)
        with self.assertRaises(UserError):
            channel.action_test()


@tagged("post_install", "-at_install")
class TestChannelWebhook(McpChannelCase, HttpCase):
    # McpIntegratorCase puts the registry in test mode itself (once per class is allowed)
    registry_test_mode = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.channel = cls.make_channel()

    def post(self, payload, token=None, secret=SECRET, timestamp=None, headers=None):
        """POST ``payload`` (JSON-encoded unless bytes) signed with ``secret`` (None: unsigned)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        timestamp = int(time.time()) if timestamp is None else timestamp
        all_headers = {"Content-Type": "application/json"}
        if secret is not None:
            all_headers.update(
                {
                    channels.TIMESTAMP_HEADER: str(timestamp),
                    channels.SIGNATURE_HEADER: signing.sign(secret, timestamp, body),
                }
            )
        all_headers.update(headers or {})
        url = f"/mcp/channel/{token or self.channel.inbound_token}"
        with mute_logger(CONTROLLER_LOGGER, CHANNEL_LOGGER):
            return self.url_open(url, data=body, headers=all_headers, timeout=30)

    def assertRefused(self, response, status, reason):
        self.assertEqual(response.status_code, status, response.text)
        self.assertIn(reason, response.json()["error"])
        for channel in self.env["mcp.channel"].with_context(active_test=False).search([]):
            channel.invalidate_recordset()
            self.assertFalse(channel.last_received_at, "the hub was not reached")

    @staticmethod
    def message(**overrides):
        return {
            "thread_id": "order-1001",
            "message_id": "m-1",
            "contact": {"id": "c-7", "name": "Ana"},
            "text": "Meu pedido chegou?",
            **overrides,
        }

    def test_an_unknown_token_is_404(self):
        self.assertRefused(self.post(self.message(), token="x" * 43), 404, "unknown channel")

    def test_the_inbound_token_never_reaches_the_access_log(self):
        lines = []
        handler = logging.Handler()
        handler.emit = lambda record: lines.append(record.getMessage())
        access_logger = logging.getLogger("werkzeug")  # Odoo's HTTP server logs requests there
        access_logger.addHandler(handler)
        self.addCleanup(access_logger.removeHandler, handler)
        # whatever the run's log level: request lines are INFO records
        self.addCleanup(access_logger.setLevel, access_logger.level)
        access_logger.setLevel(logging.INFO)
        self.post(self.message(), token="x" * 43)
        self.post(self.message())
        # the server thread logs a request line once its answer is on the way
        self.wait_until(lambda: len(lines) >= 2)
        self.assertIn("/mcp/channel/***", "\n".join(lines))
        for line in lines:
            self.assertNotIn("x" * 43, line)
            self.assertNotIn(self.channel.inbound_token, line)

    def test_a_custom_channel_takes_only_post(self):
        with mute_logger(CONTROLLER_LOGGER):
            known = self.url_open(f"/mcp/channel/{self.channel.inbound_token}", timeout=30)
            unknown = self.url_open(f"/mcp/channel/{'x' * 43}", timeout=30)
        self.assertRefused(known, 405, "POST")
        self.assertRefused(unknown, 404, "unknown channel")

    def test_an_archived_channel_or_tenant_is_404(self):
        archived = self.make_channel()
        archived.active = False
        self.assertRefused(self.post(self.message(), archived.inbound_token), 404, "unknown")
        other = self.make_tenant("Closed")
        closed = self.make_channel(tenant_id=other.id, signing_credential_id=False)
        other.active = False
        self.assertRefused(self.post(self.message(), closed.inbound_token), 404, "unknown")

    def test_a_regenerated_token_replaces_the_old_one(self):
        channel = self.make_channel()
        old = channel.inbound_token
        channel.action_regenerate_token()
        self.assertRefused(self.post(self.message(), old), 404, "unknown channel")

    def test_unsigned_wrongly_signed_and_stale_messages_are_401(self):
        cases = {
            "missing signature": {"secret": None},
            "signature mismatch": {"secret": "not-the-secret"},
            "stale timestamp": {"timestamp": int(time.time()) - 3600},
            "timestamp is not an integer": {"headers": {channels.TIMESTAMP_HEADER: "soon"}},
            "malformed signature": {"headers": {channels.SIGNATURE_HEADER: "md5=abc"}},
        }
        for reason, options in cases.items():
            with self.subTest(reason=reason):
                self.assertRefused(self.post(self.message(), **options), 401, reason)

    def test_a_body_changed_after_signing_is_401(self):
        body = json.dumps(self.message()).encode()
        timestamp = int(time.time())
        headers = {
            channels.TIMESTAMP_HEADER: str(timestamp),
            channels.SIGNATURE_HEADER: signing.sign(SECRET, timestamp, body),
        }
        tampered = body.replace(b"Meu pedido", b"Teu pedido")
        response = self.post(tampered, secret=None, headers=headers)
        self.assertRefused(response, 401, "signature mismatch")

    def test_a_channel_without_a_signing_secret_refuses_everything(self):
        unsigned = self.make_channel(signing_credential_id=False)
        self.assertRefused(
            self.post(self.message(), unsigned.inbound_token), 401, "no signing secret"
        )
        empty = self.make_channel(signing_credential_id=self.make_credential(False).id)
        self.assertRefused(self.post(self.message(), empty.inbound_token), 401, "no signing")

    def test_a_body_that_is_not_json_is_415(self):
        response = self.post(self.message(), headers={"Content-Type": "text/plain"})
        self.assertRefused(response, 415, "application/json")

    def test_a_body_over_one_mebibyte_is_413(self):
        big = self.message(text="a" * channels.MAX_INBOUND_BYTES)
        self.assertRefused(self.post(big), 413, "larger than")

    def test_malformed_json_is_400(self):
        for body in (b'{"thread_id": "1"', b"[1, 2]", b"\xff"):
            with self.subTest(body=body):
                self.assertRefused(self.post(body), 400, "JSON")

    def test_missing_or_wrong_fields_are_400(self):
        cases = {
            "thread_id": self.message(thread_id=None),
            "message_id": self.message(message_id=["m"]),
            "contact": self.message(contact=None),
            "contact.id": self.message(contact={"name": "Ana"}),
            "neither text nor attachments": self.message(text=""),
            "attachments[0]": self.message(attachments=[{"name": "a"}]),
            "metadata": self.message(metadata="order 1"),
        }
        for reason, payload in cases.items():
            with self.subTest(reason=reason):
                self.assertRefused(self.post(payload), 400, reason)

    def test_a_message_no_hub_takes_is_503_for_the_sender_to_retry(self):
        # without the Chatwoot bridge no hub is installed; with it, no inbox is mapped to this
        # channel: either way the hub refuses and nothing of the message is kept
        response = self.post(self.message())
        self.assertRefused(response, 503, "")
        self.assertTrue(response.json()["error"], "the hub's reason is answered")
