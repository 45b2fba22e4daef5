# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
import time

from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL, format_datetime

from ..services import masking
from ..services import oauth as oauth_service
from .mcp_tenant import NO_AUDIT

_logger = logging.getLogger(__name__)

MANAGER = "mcp_integrator.group_mcp_manager"
# Stored secrets; each has a write-only "<name>_input" field and a "<name>_set_at" date.
SECRET_FIELDS = ("secret", "access_token", "refresh_token")
REFRESH_MARGIN_SECONDS = 60
REFRESH_TIMEOUT_SECONDS = 10.0
# Class id of the PostgreSQL advisory locks serialising token renewals (object id = record id).
REFRESH_LOCK_CLASS = 0x6D637063  # "mcpc"


class McpCredential(models.Model):
    """A credential of an external service: the only place where the suite keeps secrets.

    Secret values are readable by managers only, never displayed again once saved (the form has
    write-only inputs) and reach server-side code through :meth:`_get_secret_values` and
    :meth:`_get_access_token` only.
    """

    _name = "mcp.credential"
    _inherit = "mcp.config.mixin"
    _description = "AI Integration Credential"
    _order = "name, id"
    _check_company_auto = True
    _mcp_secret_fields = SECRET_FIELDS

    name = fields.Char(required=True)
    active = fields.Boolean(default=True)
    tenant_id = fields.Many2one(
        "mcp.tenant",
        index=True,
        ondelete="restrict",
        check_company=True,
        help="Leave empty for a credential shared by every tenant of the company.",
    )
    company_id = fields.Many2one(
        "res.company",
        compute="_compute_company_id",
        store=True,
        readonly=False,
        precompute=True,
        required=True,
        index=True,
    )
    kind = fields.Selection(
        [
            ("api_key", "API Key"),
            ("bearer", "Bearer Token"),
            ("basic", "Basic (user and password)"),
            ("oauth2", "OAuth 2.0"),
            ("hmac", "HMAC Signing Secret"),
        ],
        required=True,
        default="api_key",
    )
    username = fields.Char(help="User name of a Basic credential.")
    client_id = fields.Char(string="Client ID", help="OAuth 2.0 client identifier.")
    token_url = fields.Char(
        string="Token URL", help="OAuth 2.0 token endpoint (https) used to renew the tokens."
    )
    scope = fields.Char(help="OAuth 2.0 scope requested on renewal (optional).")
    oauth_provider = fields.Selection(
        [("generic", "Generic (RFC 6749)")],
        string="OAuth Provider",
        default="generic",
        help="How the tokens are renewed; connector modules add their providers.",
    )
    oauth_client_auth = fields.Selection(
        [("basic", "HTTP Basic"), ("body", "In the request body")],
        string="Client Authentication",
        default="basic",
        help="How the client ID and secret are sent to the token endpoint.",
    )
    expires_at = fields.Datetime(
        string="Access Token Expiry", copy=False, help="Empty when the provider gave no lifetime."
    )
    last_refresh_at = fields.Datetime(string="Last Renewal", readonly=True, copy=False)
    last_refresh_error = fields.Char(string="Last Renewal Error", readonly=True, copy=False)
    reauthorization_needed = fields.Boolean(
        readonly=True,
        copy=False,
        help="The provider refused the refresh token for good (revoked, expired or already "
        "used): authorize the application again and store the new tokens.",
    )

    # Stored secrets: managers only, never copied, never prefetched with the other fields.
    secret = fields.Char(groups=MANAGER, copy=False, prefetch=False)
    access_token = fields.Char(groups=MANAGER, copy=False, prefetch=False)
    refresh_token = fields.Char(groups=MANAGER, copy=False, prefetch=False)
    # Write-only inputs: always read empty; a value typed in replaces the stored secret.
    secret_input = fields.Char(
        string="New Secret",
        compute="_compute_secret_inputs",
        inverse="_inverse_secret_inputs",
        groups=MANAGER,
    )
    access_token_input = fields.Char(
        string="New Access Token",
        compute="_compute_secret_inputs",
        inverse="_inverse_secret_inputs",
        groups=MANAGER,
    )
    refresh_token_input = fields.Char(
        string="New Refresh Token",
        compute="_compute_secret_inputs",
        inverse="_inverse_secret_inputs",
        groups=MANAGER,
    )
    secret_set_at = fields.Datetime(readonly=True, copy=False)
    access_token_set_at = fields.Datetime(readonly=True, copy=False)
    refresh_token_set_at = fields.Datetime(readonly=True, copy=False)
    secret_state = fields.Char(string="Secret Status", compute="_compute_secret_states")
    access_token_state = fields.Char(string="Access Token Status", compute="_compute_secret_states")
    refresh_token_state = fields.Char(
        string="Refresh Token Status", compute="_compute_secret_states"
    )

    @api.depends("tenant_id.company_id")
    def _compute_company_id(self):
        for credential in self:
            if credential.tenant_id:
                credential.company_id = credential.tenant_id.company_id
            elif not credential.company_id:
                credential.company_id = self.env.company

    def _compute_secret_inputs(self):
        for credential in self:
            for name in SECRET_FIELDS:
                credential[f"{name}_input"] = False

    def _inverse_secret_inputs(self):
        now = fields.Datetime.now()
        for credential in self:
            vals = {}
            for name in SECRET_FIELDS:
                value = (credential[f"{name}_input"] or "").strip()
                if value:  # an empty input keeps the stored secret
                    vals.update({name: value, f"{name}_set_at": now})
            if vals:
                # Audited once, by the write that carried the inputs (field names only).
                credential.with_context(**{NO_AUDIT: True}).write(vals)

    @api.depends("secret_set_at", "access_token_set_at", "refresh_token_set_at")
    def _compute_secret_states(self):
        for credential in self:
            for name in SECRET_FIELDS:
                changed = credential[f"{name}_set_at"]
                credential[f"{name}_state"] = (
                    self.env._(
                        "Set (last changed on %(date)s)", date=format_datetime(self.env, changed)
                    )
                    if changed
                    else self.env._("Not set")
                )

    @api.constrains("kind", "username", "token_url", "oauth_provider")
    def _check_kind_settings(self):
        for credential in self:
            if credential.kind == "basic" and not credential.username:
                raise ValidationError(
                    self.env._(
                        "Credential %(name)s: a Basic credential needs a user name.",
                        name=credential.display_name,
                    )
                )
            if credential.kind != "oauth2" or credential.oauth_provider != "generic":
                continue
            try:
                oauth_service.check_token_url(credential.token_url)
            except oauth_service.OAuthError:
                raise ValidationError(
                    self.env._(
                        "Credential %(name)s: the token URL must be an https:// address "
                        "(plain http:// is accepted only on the local machine).",
                        name=credential.display_name,
                    )
                ) from None

    # configuration mixin ---------------------------------------------------------------------
    def _mcp_tenants(self):
        if self.tenant_id:
            return self.tenant_id
        # A shared credential serves every tenant of its company.
        return (
            self.env["mcp.tenant"]
            .with_context(active_test=False)
            .search([("company_id", "=", self.company_id.id)])
        )

    def _mcp_cache_resource(self):
        return "credential", self.id

    # buttons ---------------------------------------------------------------------------------
    def action_clear_secrets(self):
        """Forget every stored secret of the credentials (they must be typed in again)."""
        vals = {name: False for name in SECRET_FIELDS}
        vals.update({f"{name}_set_at": False for name in SECRET_FIELDS})
        vals.update(expires_at=False, last_refresh_error=False)
        self.write(vals)
        return True

    def action_refresh_token(self):
        """Renew the access token of an OAuth 2.0 credential now (button)."""
        self.ensure_one()
        self.check_access("write")
        self._oauth2_refresh(force=True)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "message": self.env._(
                    "The access token of %(name)s was renewed.", name=self.display_name
                ),
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    # server-side API -------------------------------------------------------------------------
    def _mcp_invalidate(self, tenants, resource_type, resource_id):
        result = super()._mcp_invalidate(tenants, resource_type, resource_id)
        self.env["mcp.integrator"]._settings_credential_changed(self)
        return result

    def _get_secret_values(self):
        """The secret values of the credential, for server-side code only (not callable over RPC).

        The caller's environment must be allowed to read the credential (record rules of its
        companies); the values themselves are read as superuser. Keys depend on ``kind``:
        ``api_key`` -> ``api_key``; ``bearer`` -> ``token``; ``basic`` -> ``username``,
        ``password``; ``oauth2`` -> ``client_id``, ``client_secret``, ``access_token``,
        ``refresh_token`` (stored values: use :meth:`_get_access_token` for a valid token);
        ``hmac`` -> ``secret``. Values not set are ``None``.
        """
        self.ensure_one()
        self.check_access("read")
        credential = self.sudo()
        secret = credential.secret or None
        if credential.kind == "api_key":
            return {"api_key": secret}
        if credential.kind == "bearer":
            return {"token": secret}
        if credential.kind == "basic":
            return {"username": credential.username or None, "password": secret}
        if credential.kind == "oauth2":
            return {
                "client_id": credential.client_id or None,
                "client_secret": secret,
                "access_token": credential.access_token or None,
                "refresh_token": credential.refresh_token or None,
            }
        return {"secret": secret}

    def _get_access_token(self):
        """A valid OAuth 2.0 access token, renewed first when it expires within a minute.

        Safe when several workers ask at once: see :meth:`_oauth2_refresh`.
        """
        self.ensure_one()
        self.check_access("read")
        credential = self.sudo()
        if credential.kind != "oauth2":
            raise UserError(
                self.env._(
                    "Credential %(name)s is not an OAuth 2.0 credential.", name=self.display_name
                )
            )
        expired = oauth_service.needs_refresh(
            credential.expires_at or None, fields.Datetime.now(), REFRESH_MARGIN_SECONDS
        )
        if credential.access_token and not expired:
            return credential.access_token
        return self._oauth2_refresh()

    def _oauth2_refresh(self, force=False):
        """Renew the tokens once, even when several workers try at the same moment.

        Refresh tokens are often single-use, so: a transaction-level advisory lock per credential
        is taken in a cursor of its own; the renewal itself runs in a second cursor opened after
        the lock is granted (under REPEATABLE READ the lock cursor's snapshot predates the wait,
        the new one sees what the previous holder committed), re-reads the tokens, calls the
        provider hook only if they still need it, stores the new tokens and commits before the
        lock is released. The caller's transaction can roll back without losing a token; it
        gets the new access token as the return value (its own snapshot may still show the old
        one).

        :param force: renew even if the current access token is still valid
        :return: the valid access token
        """
        self.ensure_one()
        # Pending changes of this transaction become visible to (and lock the row against) the
        # renewal cursor: a credential edited by the caller itself is refused, not half-read.
        self.flush_recordset()
        failure = None
        with self.env.registry.cursor() as lock_cr:
            lock_cr.execute(
                SQL("SELECT pg_advisory_xact_lock(%s, %s)", REFRESH_LOCK_CLASS, self.id)
            )
            with self.env.registry.cursor() as cr:
                credential = self.with_env(self.env(cr=cr, su=True))
                try:
                    access_token = credential._oauth2_refresh_locked(force)
                except UserError as exc:
                    # Raised once both cursors are closed: the failure recorded is committed.
                    failure = exc
        # The renewal was committed elsewhere: forget this transaction's copy of the tokens.
        self.invalidate_recordset(
            [
                "access_token",
                "refresh_token",
                "expires_at",
                "last_refresh_at",
                "last_refresh_error",
                "reauthorization_needed",
            ]
        )
        if failure:
            raise failure
        return access_token

    def _oauth2_refresh_locked(self, force):
        """Body of :meth:`_oauth2_refresh`, in the renewal cursor, lock held."""
        cr = self.env.cr
        try:
            # NOWAIT: a transaction editing this credential (possibly our caller's) must not
            # leave us waiting; fail before the provider is called.
            with cr.savepoint(flush=False):
                cr.execute(
                    SQL(
                        "SELECT id FROM %s WHERE id = %s FOR UPDATE NOWAIT",
                        SQL.identifier(self._table),
                        self.id,
                    ),
                    log_exceptions=False,  # answered below with a clear message
                )
        except (pg_errors.LockNotAvailable, pg_errors.SerializationFailure):
            raise UserError(
                self.env._(
                    "Credential %(name)s is being modified (by another user, or earlier in "
                    "this same operation); try the renewal again once the change is saved.",
                    name=self.display_name,
                )
            ) from None
        if not cr.rowcount:
            raise UserError(
                self.env._("The credential to renew is not saved yet or no longer exists.")
            )
        now = fields.Datetime.now()
        expired = oauth_service.needs_refresh(self.expires_at or None, now, REFRESH_MARGIN_SECONDS)
        if self.access_token and not expired and not force:
            return self.access_token  # renewed by another worker while we waited for the lock
        if not self.refresh_token:
            raise UserError(
                self.env._(
                    "Credential %(name)s has no refresh token: authorize the application again "
                    "and store the new tokens.",
                    name=self.display_name,
                )
            )
        hook = getattr(self, f"_oauth2_refresh_{self.oauth_provider}", None)
        if hook is None:
            raise UserError(
                self.env._(
                    "Credential %(name)s: no module renews tokens of provider %(provider)s.",
                    name=self.display_name,
                    provider=self.oauth_provider,
                )
            )
        started = time.monotonic()
        try:
            result = self._check_refresh_result(hook(self.refresh_token))
        except (oauth_service.OAuthError, UserError) as exc:
            reauthorize = getattr(exc, "error", None) in oauth_service.REAUTHORIZE_ERRORS
            raise self._oauth2_refresh_failed(str(exc), started, reauthorize) from None
        return self._oauth2_store_tokens(result, now, started)

    def _check_refresh_result(self, result):
        if not isinstance(result, dict) or not result.get("access_token"):
            raise UserError(self.env._("The provider returned no access token."))
        return result

    def _oauth2_store_tokens(self, result, now, started):
        vals = {
            "access_token": result["access_token"],
            "access_token_set_at": now,
            "expires_at": oauth_service.expiry_from(result.get("expires_in"), now) or False,
            "last_refresh_at": now,
            "last_refresh_error": False,
            "reauthorization_needed": False,
        }
        if result.get("refresh_token"):
            vals.update(refresh_token=result["refresh_token"], refresh_token_set_at=now)
        # Committed when the renewal cursor closes, before the lock is released.
        self.with_context(**{NO_AUDIT: True}).write(vals)
        self.env["mcp.audit.log"]._log(
            "oauth.refresh",
            f"{self._name},{self.id}",
            tenant=self.tenant_id or None,
            duration_ms=(time.monotonic() - started) * 1000,
            arguments={"provider": self.oauth_provider},
        )
        return result["access_token"]

    def _oauth2_refresh_failed(self, reason, started, reauthorize=False):
        """Record a failed renewal and return the UserError to raise.

        :param reauthorize: the provider refused the grant for good (no retry can succeed)

        The record is committed with the renewal cursor, whatever the caller does next.
        """
        # A provider hook may echo what it was sent: mask this credential's secrets.
        reason = masking.mask_text(
            reason, secrets=[self[name] for name in SECRET_FIELDS if self[name]]
        )
        message = self.env._(
            "The access token of credential %(name)s could not be renewed: %(reason)s",
            name=self.display_name,
            reason=reason,
        )
        _logger.warning(
            "OAuth 2.0 renewal of credential %s (id %s) failed: %s", self.name, self.id, reason
        )
        self.with_context(**{NO_AUDIT: True}).write(
            {
                "last_refresh_at": fields.Datetime.now(),
                "last_refresh_error": reason[:250],
                "reauthorization_needed": reauthorize,
            }
        )
        self.env["mcp.audit.log"]._log(
            "oauth.refresh",
            f"{self._name},{self.id}",
            status="error",
            tenant=self.tenant_id or None,
            duration_ms=(time.monotonic() - started) * 1000,
            error=reason,
            arguments={"provider": self.oauth_provider},
        )
        return UserError(message)

    def _oauth2_refresh_generic(self, refresh_token):
        """Provider hook of the generic RFC 6749 token endpoint.

        Hooks of other providers (``_oauth2_refresh_<provider>``) take the refresh token and
        return ``dict(access_token, refresh_token=None, expires_in=None)``; they raise
        :class:`~..services.oauth.OAuthError` or a UserError with a message free of secrets.
        """
        return oauth_service.refresh_token_grant(
            self.token_url,
            refresh_token,
            client_id=self.client_id or None,
            client_secret=self.sudo().secret or None,
            scope=self.scope or None,
            client_auth=self.oauth_client_auth or "basic",
            timeout=REFRESH_TIMEOUT_SECONDS,
        )
