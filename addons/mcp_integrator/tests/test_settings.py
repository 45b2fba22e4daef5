# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The AI Integration block of Settings: defaults, validation, Redis password, status, test."""

from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models.res_config_settings import default_namespace
from .test_integrator_api import (
    CACHE_LOGGER,
    DEAD_REDIS_URL,
    REDIS_URL,
    McpIntegratorCase,
    conf_redis_url,
)

PREFIX = "mcp_integrator."


@tagged("post_install", "-at_install")
class TestSettings(McpIntegratorCase):
    def settings(self, **values):
        return self.env["res.config.settings"].create(values)

    def param(self, name):
        return self.env["ir.config_parameter"].sudo().get_param(PREFIX + name)

    def test_defaults(self):
        params = self.env["ir.config_parameter"].sudo()
        for name in ("cache_namespace", "ttl_transient_minutes", "default_llm_model"):
            params.set_param(PREFIX + name, False)
        settings = self.settings()
        self.assertRecordValues(
            settings,
            [
                {
                    "mcp_cache_namespace": default_namespace(self.env.cr.dbname),
                    "mcp_ttl_transient_minutes": 10,
                    "mcp_ttl_session_hours": 12,
                    "mcp_ttl_config_days": 3,
                    "mcp_default_llm_model": "openai/gpt-4o-mini",
                    "mcp_audit_retention_days": 30,
                }
            ],
        )
        stored = self.integrator.settings()
        self.assertEqual(stored.namespace, default_namespace(self.env.cr.dbname))
        self.assertEqual(
            (stored.ttl_transient, stored.ttl_session, stored.ttl_config), (600, 43200, 259200)
        )

    def test_default_namespace_is_a_valid_identifier(self):
        self.assertEqual(default_namespace("Prod DB:1"), "prod_db_1")
        self.assertEqual(len(default_namespace("x" * 100)), 64)
        self.assertEqual(default_namespace(""), "odoo")

    def test_save_stores_parameters_and_feeds_the_cache(self):
        self.settings(
            mcp_ttl_transient_minutes=15,
            mcp_ttl_session_hours=1,
            mcp_ttl_config_days=7,
            mcp_default_llm_model="ollama/llama3.1:8b",
            mcp_audit_retention_days=90,
        ).execute()
        self.assertEqual(self.param("ttl_transient_minutes"), "15")
        self.assertEqual(self.param("default_llm_model"), "ollama/llama3.1:8b")
        self.assertEqual(self.param("audit_retention_days"), "90")
        stored = self.integrator.settings()
        self.assertEqual(
            (stored.ttl_transient, stored.ttl_session, stored.ttl_config), (900, 3600, 604800)
        )
        self.assertEqual(self.integrator.cache().settings, stored)

    def test_invalid_values_are_refused_and_nothing_is_written(self):
        cases = [
            ({"mcp_ttl_transient_minutes": 20}, "between 5 and 15 minutes"),
            ({"mcp_ttl_transient_minutes": 4}, "between 5 and 15 minutes"),
            ({"mcp_ttl_session_hours": 0}, "between 1 and 24 hours"),
            ({"mcp_ttl_session_hours": 25}, "between 1 and 24 hours"),
            ({"mcp_ttl_config_days": 8}, "between 1 and 7 days"),
            ({"mcp_default_llm_model": "gpt-4o"}, "provider/model"),
            ({"mcp_default_llm_model": "openai/ gpt"}, "provider/model"),
            ({"mcp_audit_retention_days": 1}, "between 2 and 3650 days"),
            ({"mcp_redis_url": "http://127.0.0.1:6379"}, "must start with one of"),
            ({"mcp_redis_url": "redis://:hunter2@127.0.0.1:6379/0"}, "must not contain a password"),
            ({"mcp_redis_url": "redis://127.0.0.1:port/0"}, "port must be a number"),
            ({"mcp_redis_url": "sentinel://127.0.0.1:26379"}, "master service"),
            ({"mcp_cache_namespace": "Bad Namespace"}, "namespace"),
        ]
        before = {
            name: self.param(name)
            for name in ("redis_url", "ttl_transient_minutes", "default_llm_model")
        }
        for values, message in cases:
            with self.subTest(values=values), self.assertRaisesRegex(UserError, message) as caught:
                self.settings(**values).execute()
            self.assertNotIn("hunter2", str(caught.exception))
        after = {name: self.param(name) for name in before}
        self.assertEqual(after, before)

    def test_url_forms_accepted(self):
        for url in (
            "redis://127.0.0.1:6379/0",
            "rediss://cache.example.com:6380/1",
            "redis://reader@127.0.0.1:6379/2",
            "unix:///var/run/redis/redis.sock?db=3",
            "sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0",
        ):
            with self.subTest(url=url):
                self.settings(mcp_redis_url=url)._mcp_check()

    @mute_logger(CACHE_LOGGER)  # the local Redis has no password: saving one makes it fail
    def test_redis_password_comes_from_a_credential(self):
        credential = self.env["mcp.credential"].create(
            {"name": "Redis", "kind": "api_key", "secret": "s3cret-pass"}
        )
        self.settings(mcp_redis_credential_id=credential.id).execute()
        stored = self.integrator.settings()
        self.assertEqual(stored.password, "s3cret-pass")
        self.assertNotIn("s3cret-pass", repr(stored))
        basic = self.env["mcp.credential"].create(
            {"name": "Redis ACL", "kind": "basic", "username": "app", "secret": "b4sic-pass"}
        )
        self.settings(mcp_redis_credential_id=basic.id).execute()
        self.assertEqual(self.integrator.settings().password, "b4sic-pass")
        # a new password in the credential applies without saving the settings again
        basic.secret_input = "n3w-pass"
        self.assertEqual(self.integrator.settings().password, "n3w-pass")
        bearer = self.env["mcp.credential"].create(
            {"name": "Not a password", "kind": "bearer", "secret": "tok"}
        )
        with self.assertRaisesRegex(UserError, "Basic or API key"):
            self.settings(mcp_redis_credential_id=bearer.id).execute()

    def test_test_connection_reports_latency(self):
        action = self.settings(mcp_redis_url=REDIS_URL).action_mcp_test_connection()
        self.assertEqual(
            (action["type"], action["tag"]), ("ir.actions.client", "display_notification")
        )
        self.assertEqual(action["params"]["type"], "success")
        self.assertRegex(action["params"]["message"], r"\d+\.\d ms")

    @mute_logger(CACHE_LOGGER)
    def test_test_connection_reports_the_exact_error(self):
        action = self.settings(mcp_redis_url=DEAD_REDIS_URL).action_mcp_test_connection()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("127.0.0.1:1", action["params"]["message"])
        self.assertIn("Connection", action["params"]["message"])
        action = self.settings(mcp_redis_url="ftp://nowhere").action_mcp_test_connection()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("must start with one of", action["params"]["message"])

    @mute_logger(CACHE_LOGGER)
    def test_wrong_password_is_reported_without_the_password(self):
        credential = self.env["mcp.credential"].create(
            {"name": "Wrong", "kind": "api_key", "secret": "wr0ng-pa55word"}
        )
        settings = self.settings(mcp_redis_url=REDIS_URL, mcp_redis_credential_id=credential.id)
        action = settings.action_mcp_test_connection()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertNotIn("wr0ng-pa55word", action["params"]["message"])
        self.assertIn("Error", action["params"]["message"])
        # saved anyway, the suite keeps working without the cache
        settings.execute()
        computed = []
        for _ in range(2):
            self.integrator.cached(self.tenant, "m", "t", 1, "a", lambda: computed.append(1))
        self.assertEqual(len(computed), 2)
        self.assertNotIn("wr0ng-pa55word", self.settings().mcp_cache_status)

    @mute_logger(CACHE_LOGGER)
    def test_status_line(self):
        settings = self.settings()
        self.assertTrue(settings.mcp_cache_up)
        self.assertRegex(settings.mcp_cache_status, r"^Up \(\d+\.\d ms\)$")
        with conf_redis_url(DEAD_REDIS_URL):
            settings = self.settings()
            self.assertFalse(settings.mcp_cache_up)
            self.assertIn("Down", settings.mcp_cache_status)
            self.assertIn("127.0.0.1:1", settings.mcp_cache_status)

    def test_odoo_conf_overrides_the_url(self):
        with conf_redis_url("redis://127.0.0.1:6379/5"):
            settings = self.settings()
            self.assertEqual(settings.mcp_redis_url_conf, "redis://127.0.0.1:6379/5")
            self.assertEqual(self.integrator.settings().url, "redis://127.0.0.1:6379/5")
        self.assertFalse(self.settings().mcp_redis_url_conf)
        self.assertEqual(self.integrator.settings().url, REDIS_URL)

    def test_saving_changed_settings_invalidates_cached_copies(self):
        computed = []

        def read():
            return self.integrator.cached(
                self.tenant, "crew", "config", "default", "model", lambda: computed.append(1)
            )

        read()
        read()
        self.assertEqual(len(computed), 1)
        self.settings().execute()  # nothing changed: cached copies stay
        read()
        self.assertEqual(len(computed), 1)
        self.settings(mcp_default_llm_model="anthropic/claude-3-5-haiku-latest").execute()
        read()
        self.assertEqual(len(computed), 2)
