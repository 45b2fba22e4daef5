# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import time

from odoo import models

from odoo.addons.mcp_integrator.services.oauth import OAuthError

from ..services.channels import ChannelSendError, ReauthorizationRequired


class McpCredential(models.Model):
    """What the OAuth providers of the platform channels share (``_oauth2_refresh_<provider>``
    in each platform's file): the channel that uses the credential, and the platform's
    renewal errors as the credential records them."""

    _inherit = "mcp.credential"

    def _channel_using(self, channel_type):
        """The channel of ``channel_type`` whose access credential this is: its API address and
        account ids are the renewal's."""
        return (
            self.env["mcp.channel"]
            .sudo()
            .with_context(active_test=False)
            .search(
                [("access_credential_id", "=", self.id), ("channel_type", "=", channel_type)],
                limit=1,
            )
        )

    def _channel_renewal(self, renew):
        """The result a provider hook returns, from ``renew()``: ``(access token, refresh token
        or None, expiry in epoch seconds or None)``. A refused grant becomes ``invalid_grant``
        (the credential asks for a new authorization), a failure that may pass ``network``."""
        started = time.time()
        try:
            access_token, refresh_token, expires_at = renew()
        except ReauthorizationRequired as exc:
            raise OAuthError(exc.reason, error="invalid_grant", status=exc.status) from None
        except ChannelSendError as exc:
            error = getattr(exc, "error", None) or ("network" if exc.retryable else "bad_response")
            raise OAuthError(exc.reason, error=error, status=exc.status) from None
        return {
            "access_token": access_token,
            "refresh_token": refresh_token,
            "expires_in": max(1, round(expires_at - started)) if expires_at else None,
        }
