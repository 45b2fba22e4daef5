# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import hashlib
import hmac
import logging
import secrets
import time
from datetime import datetime, timezone

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from odoo.addons.mcp_integrator.models.mcp_credential import REFRESH_LOCK_CLASS

from ..services.channels import ChannelSendError, clean_reason
from .mcp_server import MANAGER

_logger = logging.getLogger(__name__)

# Where a platform sends the browser back once the seller authorized the app.
AUTHORIZATION_PATH = "/mcp/channel/oauth/"
AUTHORIZATION_STATE_BYTES = 32
# Seconds between the click on Authorize and the platform sending the seller back.
AUTHORIZATION_LIFETIME = 600


class McpChannel(models.Model):
    """The *Authorize* button of platform channels whose sellers authorize the app in the
    browser (OAuth authorization code): the platform's page, the way back
    (``controllers/channel_oauth.py``) and the tokens stored in the access credential."""

    _inherit = "mcp.channel"  # pylint: disable=consider-merging-classes-inherited

    authorization_pending = fields.Json(
        readonly=True,
        copy=False,
        groups=MANAGER,
        prefetch=False,
        help="The authorization started by the Authorize button: the digest of its state, who "
        "clicked, until when it may come back, and what else must stay on the server (the "
        "PKCE verifier).",
    )
    authorization_redirect_url = fields.Char(
        string="Redirect URI",
        compute="_compute_authorization_redirect_url",
        help="Where the platform sends the seller back after the authorization: register it "
        "exactly in the platform's app. It contains the inbound URL's token: regenerating the "
        "inbound URL changes it too.",
    )
    authorization_ready = fields.Boolean(
        compute="_compute_authorization_ready",
        help="The channel can be authorized from Odoo: its access credential is OAuth 2.0 with "
        "the app's client ID and secret.",
    )

    @api.depends("inbound_token", "channel_type")
    def _compute_authorization_redirect_url(self):
        for channel in self:
            channel.authorization_redirect_url = (
                f"{channel.get_base_url()}{AUTHORIZATION_PATH}{channel.inbound_token}"
                if channel.inbound_token and channel._authorization_hook("request")
                else False
            )

    @api.depends(
        "channel_type",
        "access_credential_id.kind",
        "access_credential_id.client_id",
        "access_credential_id.secret_set_at",
    )
    def _compute_authorization_ready(self):
        for channel in self:
            credential = channel.sudo().access_credential_id
            channel.authorization_ready = bool(
                channel._authorization_hook("request")
                and credential.kind == "oauth2"
                and credential.client_id
                and credential.secret_set_at
            )

    # authorization in the browser -------------------------------------------------------------
    # Shared by the platforms that implement ``_authorization_request_<type>(redirect_uri,
    # state)`` -> ``(url, kept)`` (``kept``: what the callback needs and must stay on the server)
    # and ``_authorization_tokens_<type>(params, kept)`` -> ``(account_ref, tokens)`` (tokens
    # with ``access_token``, ``refresh_token``, ``expires_at`` in Unix seconds), raising
    # ChannelSendError when the platform refuses.
    def _authorization_hook(self, step):
        return getattr(self, f"_authorization_{step}_{self.channel_type}", None)

    def action_authorize(self):
        """Button: the platform's page where the seller authorizes the app. The platform sends
        the browser back to the redirect URI (``controllers/channel_oauth.py``), which must
        bring the state issued here, unspent, within 10 minutes, to the user who clicked."""
        self.ensure_one()
        self.check_access("write")
        if not self.authorization_ready:
            raise UserError(
                self.env._(
                    "Channel %(channel)s cannot be authorized from Odoo: it needs an OAuth 2.0 "
                    "access credential with the app's client ID and secret.",
                    channel=self.display_name,
                )
            )
        state = secrets.token_urlsafe(AUTHORIZATION_STATE_BYTES)
        try:
            url, kept = self._authorization_hook("request")(self.authorization_redirect_url, state)
        except ChannelSendError as exc:
            raise UserError(exc.reason) from None
        self.sudo().authorization_pending = {
            **kept,
            "state": _state_digest(state),
            "user_id": self.env.uid,
            "expires": int(time.time()) + AUTHORIZATION_LIFETIME,
        }
        _logger.info("Channel %s: authorization started by %s", self.id, self.env.user.login)
        return {"type": "ir.actions.act_url", "url": url, "target": "self"}

    def _authorization_complete(self, params):
        """The platform sent the browser back with ``params`` (its query): check the state,
        exchange the code, check the account, store the tokens in the access credential.

        :raise UserError: with what went wrong; nothing is stored, and the authorization is
            spent all the same (the caller commits that)
        """
        self.ensure_one()
        self.check_access("write")
        kept = self._authorization_take(params.get("state"))
        platform = dict(self._fields["channel_type"]._description_selection(self.env)).get(
            self.channel_type
        )
        if params.get("error"):
            raise UserError(
                self.env._(
                    "%(platform)s did not authorize the app: %(reason)s",
                    platform=platform,
                    reason=clean_reason(params.get("error_description") or params["error"]),
                )
            )
        if not params.get("code"):
            raise UserError(
                self.env._("%(platform)s sent no authorization code back.", platform=platform)
            )
        try:
            account_ref, tokens = self._authorization_hook("tokens")(params, kept)
        except ChannelSendError as exc:
            raise UserError(
                self.env._(
                    "%(platform)s refused the authorization: %(reason)s",
                    platform=platform,
                    reason=exc.reason,
                )
            ) from None
        self._authorization_check_account(account_ref)
        self._authorization_store(account_ref, tokens)
        _logger.info(
            "Channel %s: authorization of account %s stored by %s",
            self.id,
            account_ref,
            self.env.user.login,
        )
        message = self.env._(
            "%(platform)s authorization stored by %(user)s for account %(account)s.",
            platform=platform,
            user=self.env.user.name,
            account=account_ref,
        )
        self.sudo().message_post(body=message, subtype_xmlid="mail.mt_note")
        return message

    def _authorization_take(self, state):
        """What the Authorize button kept for the authorization that ``state`` proves. Any
        callback spends the pending authorization: a state serves once."""
        # two callbacks at once: the second waits, then finds the authorization spent
        self.env.cr.execute(
            SQL("SELECT 1 FROM %s WHERE id = %s FOR UPDATE", SQL.identifier(self._table), self.id)
        )
        channel = self.sudo()
        channel.invalidate_recordset(["authorization_pending"])
        pending = dict(channel.authorization_pending or {})
        if pending:
            channel.authorization_pending = False
        if not (
            isinstance(state, str)
            and isinstance(pending.get("state"), str)
            and hmac.compare_digest(_state_digest(state), pending["state"])
        ):
            raise UserError(
                self.env._(
                    "This authorization is unknown, was already used or was replaced by a newer "
                    "one: click Authorize on the channel again."
                )
            )
        if pending.get("user_id") != self.env.uid:
            raise UserError(
                self.env._(
                    "This authorization was started by another user: click Authorize on the "
                    "channel yourself."
                )
            )
        if pending.get("expires", 0) < time.time():
            raise UserError(
                self.env._(
                    "This authorization expired (it lasts %(minutes)s minutes): click Authorize "
                    "on the channel again.",
                    minutes=AUTHORIZATION_LIFETIME // 60,
                )
            )
        for name in ("state", "user_id", "expires"):
            del pending[name]
        return pending

    def _authorization_check_account(self, account_ref):
        if not account_ref:
            raise UserError(self.env._("The platform did not say which account authorized."))
        if self.account_ref and account_ref != self.account_ref:
            raise UserError(
                self.env._(
                    "Account %(account)s authorized the app, but the channel receives account "
                    "%(channel_account)s: log in on the platform as the channel's account, or "
                    "empty the channel's Account ID first.",
                    account=account_ref,
                    channel_account=self.account_ref,
                )
            )
        if not self.account_ref:
            other = (
                self.sudo()
                .with_context(active_test=False)
                .search(
                    [
                        ("channel_type", "=", self.channel_type),
                        ("account_ref", "=", account_ref),
                        ("id", "!=", self.id),
                    ],
                    limit=1,
                )
            )
            if other:
                raise UserError(
                    self.env._(
                        "Account %(account)s is already received by channel %(other)s.",
                        account=account_ref,
                        other=other.display_name,
                    )
                )

    def _authorization_store(self, account_ref, tokens):
        """The new tokens in the access credential (and the account in the channel when it
        had none): all or nothing."""
        credential = self.sudo().access_credential_id
        vals = {
            "access_token_input": tokens.access_token,
            "refresh_token_input": tokens.refresh_token,
            "expires_at": datetime.fromtimestamp(tokens.expires_at, timezone.utc).replace(
                tzinfo=None
            ),
            "reauthorization_needed": False,
            "last_refresh_error": False,
        }
        # the renewal hook of the platform has the channel type's name
        if self.channel_type in dict(credential._fields["oauth_provider"].selection):
            vals["oauth_provider"] = self.channel_type
        with self.env.cr.savepoint():
            # a renewal running now ends first; one starting later reads these tokens
            self.env.cr.execute(
                SQL("SELECT pg_advisory_xact_lock(%s, %s)", REFRESH_LOCK_CLASS, credential.id)
            )
            if not self.account_ref:
                self.sudo().account_ref = account_ref
            credential.write(vals)
        self._clear_reauthorization()


def _state_digest(state):
    return hashlib.sha256(state.encode()).hexdigest()
