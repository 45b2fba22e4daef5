# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import functools
import re
from configparser import ConfigParser

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config

from ..services import cache as cache_service

PARAM_PREFIX = "mcp_integrator."
REDIS_CREDENTIAL_PARAM = PARAM_PREFIX + "redis_credential_id"
# the server configuration file's own section, as queue_job has [queue_job]: Odoo warns about
# unknown keys in [options]
CONF_SECTION = "mcp_integrator"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_LLM_MODEL = "openai/gpt-4o-mini"
DEFAULT_RETENTION_DAYS = 30
RETENTION_BOUNDS = (2, 3650)  # at least 2: the metrics recompute yesterday from its audit rows
# ttl class: (settings field, seconds per unit, default in units)
TTL_FIELDS = {
    "transient": ("mcp_ttl_transient_minutes", 60, 10),
    "session": ("mcp_ttl_session_hours", 3600, 12),
    "config": ("mcp_ttl_config_days", 86400, 3),
}
# litellm model strings: "<provider>/<model>", the model part may hold '/', ':', '@', '.'
LLM_MODEL = re.compile(r"[a-z0-9][a-z0-9_-]*/[A-Za-z0-9][A-Za-z0-9_.:@/+-]*")
# credential kinds whose secret can be a Redis password
REDIS_CREDENTIAL_KINDS = ("basic", "api_key")
REDIS_PASSWORD_KEYS = ("password", "api_key")


@functools.lru_cache(maxsize=4)
def _conf_section(path):
    parser = ConfigParser(interpolation=None)
    parser.read(path)
    return dict(parser[CONF_SECTION]) if parser.has_section(CONF_SECTION) else {}


def conf_redis_url():
    """``redis_url`` of the ``[mcp_integrator]`` section of odoo.conf (read once per process)."""
    path = config.get("config")
    return (_conf_section(path).get("redis_url") or None) if path else None


def default_namespace(dbname):
    """The database name, made a valid cache namespace ([a-z0-9_.-], 64 characters at most)."""
    return re.sub(r"[^a-z0-9_.-]", "_", (dbname or "odoo").lower())[:64] or "odoo"


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    mcp_redis_url = fields.Char(
        string="Redis URL",
        config_parameter=PARAM_PREFIX + "redis_url",
        default=DEFAULT_REDIS_URL,
        help="redis://host:port/db, rediss:// (TLS), unix:///path/redis.sock?db=0 or "
        "sentinel://host:26379/<service>/<db>. A user name may be given (redis://user@host); "
        "the password never goes in the URL: choose a credential below.",
    )
    mcp_redis_url_conf = fields.Char(
        string="Redis URL from odoo.conf",
        compute="_compute_mcp_redis_url_conf",
        help="The redis_url option of the [mcp_integrator] section of the server configuration "
        "file. When set, it is used "
        "instead of the URL above.",
    )
    mcp_redis_credential_id = fields.Many2one(
        "mcp.credential",
        string="Redis Password",
        config_parameter=REDIS_CREDENTIAL_PARAM,
        domain=[("kind", "in", REDIS_CREDENTIAL_KINDS)],
        help="Credential (basic or API key) holding the Redis password.",
    )
    mcp_cache_namespace = fields.Char(
        string="Cache Namespace",
        config_parameter=PARAM_PREFIX + "cache_namespace",
        default=lambda self: default_namespace(self.env.cr.dbname),
        help="Prefix of every cache key, so that several databases can share one Redis. "
        "1-64 characters among a-z, 0-9, '_', '.', '-'. Default: the database name.",
    )
    mcp_ttl_transient_minutes = fields.Integer(
        string="Transient TTL (minutes)",
        config_parameter=PARAM_PREFIX + "ttl_transient_minutes",
        default=TTL_FIELDS["transient"][2],
        help="Lifetime of transient values such as tool results (5 to 15 minutes).",
    )
    mcp_ttl_session_hours = fields.Integer(
        string="Session TTL (hours)",
        config_parameter=PARAM_PREFIX + "ttl_session_hours",
        default=TTL_FIELDS["session"][2],
        help="Idle lifetime of session values such as conversation context (1 to 24 hours); "
        "every use extends it.",
    )
    mcp_ttl_config_days = fields.Integer(
        string="Configuration TTL (days)",
        config_parameter=PARAM_PREFIX + "ttl_config_days",
        default=TTL_FIELDS["config"][2],
        help="Lifetime of cached configuration (1 to 7 days); changes invalidate it at once.",
    )
    mcp_default_llm_model = fields.Char(
        string="Default LLM Model",
        config_parameter=PARAM_PREFIX + "default_llm_model",
        default=DEFAULT_LLM_MODEL,
        help="A litellm model string, provider/model, e.g. openai/gpt-4o-mini or "
        "ollama/llama3.1:8b.",
    )
    mcp_audit_retention_days = fields.Integer(
        string="Audit Retention (days)",
        config_parameter=PARAM_PREFIX + "audit_retention_days",
        default=DEFAULT_RETENTION_DAYS,
        help="Audit rows older than this are deleted every day.",
    )
    mcp_cache_status = fields.Char(string="Cache Status", compute="_compute_mcp_cache_status")
    mcp_cache_up = fields.Boolean(string="Cache Up", compute="_compute_mcp_cache_status")

    def _compute_mcp_redis_url_conf(self):
        for settings in self:
            settings.mcp_redis_url_conf = conf_redis_url() or False

    def _compute_mcp_cache_status(self):
        for settings in self:
            up, message = self.env["mcp.integrator"]._cache_health()
            settings.mcp_cache_up = up
            settings.mcp_cache_status = message

    # building CacheSettings ------------------------------------------------------------------
    @api.model
    def _mcp_cache_settings(self, url, credential, namespace, ttl_units):
        """CacheSettings from setting values; ``ttl_units`` maps a TTL class to its value in the
        unit of its field. The URL of odoo.conf, when set, wins over ``url``."""
        password = ""
        if credential:
            secrets = credential.sudo()._get_secret_values()
            password = next((secrets[k] for k in REDIS_PASSWORD_KEYS if secrets.get(k)), "")
        return cache_service.CacheSettings(
            url=conf_redis_url() or url or DEFAULT_REDIS_URL,
            namespace=namespace or default_namespace(self.env.cr.dbname),
            password=password,
            **{
                f"ttl_{ttl_class}": ttl_units[ttl_class] * unit
                for ttl_class, (_field, unit, _default) in TTL_FIELDS.items()
            },
        )

    @api.model
    def _mcp_stored_cache_settings(self):
        """CacheSettings as saved (ir.config_parameter); defaults for what was never saved."""
        params = self.env["ir.config_parameter"].sudo()
        ttl_units = {}
        for ttl_class, (field_name, _unit, default) in TTL_FIELDS.items():
            value = params.get_param(self._fields[field_name].config_parameter)
            ttl_units[ttl_class] = int(value) if value and value.isdigit() else default
        credential_id = params.get_param(self._fields["mcp_redis_credential_id"].config_parameter)
        credential = (
            self.env["mcp.credential"]
            .sudo()
            .browse(int(credential_id) if credential_id and credential_id.isdigit() else [])
        )
        return self._mcp_cache_settings(
            params.get_param(self._fields["mcp_redis_url"].config_parameter),
            credential.exists(),
            params.get_param(self._fields["mcp_cache_namespace"].config_parameter),
            ttl_units,
        )

    def _mcp_form_cache_settings(self):
        """CacheSettings from the values on the screen (saved or not)."""
        self.ensure_one()
        return self._mcp_cache_settings(
            self.mcp_redis_url,
            self.mcp_redis_credential_id,
            self.mcp_cache_namespace,
            {ttl_class: self[field_name] for ttl_class, (field_name, *_rest) in TTL_FIELDS.items()},
        )

    # validation and saving -------------------------------------------------------------------
    def _mcp_check(self):
        """Raise a UserError naming the first AI Integration setting that cannot work."""
        self.ensure_one()
        bounds = {
            "transient": self.env._("between 5 and 15 minutes"),
            "session": self.env._("between 1 and 24 hours"),
            "config": self.env._("between 1 and 7 days"),
        }
        for ttl_class, (field_name, unit, _default) in TTL_FIELDS.items():
            low, high = cache_service.TTL_BOUNDS[ttl_class]
            if not low <= self[field_name] * unit <= high:
                raise UserError(
                    self.env._(
                        "%(setting)s must be %(bounds)s (got %(value)s).",
                        setting=self._fields[field_name].get_description(self.env)["string"],
                        bounds=bounds[ttl_class],
                        value=self[field_name],
                    )
                )
        if self.mcp_redis_credential_id.kind not in (False, *REDIS_CREDENTIAL_KINDS):
            raise UserError(
                self.env._("The Redis password must be a credential of kind Basic or API key.")
            )
        if not LLM_MODEL.fullmatch(self.mcp_default_llm_model or ""):
            raise UserError(
                self.env._(
                    'The default LLM model "%(model)s" is not a litellm model string: write it as '
                    "provider/model, for example openai/gpt-4o-mini.",
                    model=self.mcp_default_llm_model or "",
                )
            )
        low, high = RETENTION_BOUNDS
        if not low <= self.mcp_audit_retention_days <= high:
            raise UserError(
                self.env._(
                    "Audit retention must be between %(low)s and %(high)s days.",
                    low=low,
                    high=high,
                )
            )
        try:
            self._mcp_form_cache_settings().validate()
        except cache_service.CacheConfigError as exc:
            raise UserError(
                self.env._("Invalid cache settings: %(reason)s", reason=str(exc))
            ) from None

    @api.model
    def _mcp_snapshot(self):
        """What the saved settings amount to for cached data, to tell whether a save changed it."""
        model = (
            self.env["ir.config_parameter"]
            .sudo()
            .get_param(self._fields["mcp_default_llm_model"].config_parameter)
        )
        return self.env["mcp.integrator"].settings(), model or DEFAULT_LLM_MODEL

    def set_values(self):
        self._mcp_check()
        before = self._mcp_snapshot()
        result = super().set_values()
        if self._mcp_snapshot() != before:
            self.env["mcp.integrator"]._invalidate_config_caches()
        return result

    def action_mcp_test_connection(self):
        """Ping Redis with the values on the screen (saved or not) and say how it went."""
        self.ensure_one()
        try:
            latency = self.env["mcp.integrator"]._ping(self._mcp_form_cache_settings())
        except (cache_service.CacheConfigError, cache_service.CacheUnavailable) as exc:
            notification = {
                "title": self.env._("Redis connection failed"),
                "message": str(exc),
                "type": "danger",
                "sticky": True,
            }
        else:
            notification = {
                "title": self.env._("Redis connection works"),
                "message": self.env._("Round trip: %(ms).1f ms", ms=latency),
                "type": "success",
                "sticky": False,
            }
        return {"type": "ir.actions.client", "tag": "display_notification", "params": notification}
