# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""``POST /chatwoot/webhook/<path token>``: Chatwoot's deliveries (Agent Bot, API inboxes,
account webhook), verified, recorded once and handed to jobs; answered within milliseconds
(Chatwoot gives up after 5 s, and a failed Agent Bot delivery opens the conversation).

Databases: the route has ``auth="none"`` (the path token and the signature authenticate), so
Odoo must find the database from the request alone: one database, a ``dbfilter`` that picks
one from the host name, or the header ``X-Odoo-Database`` (see mcp_connectors' ``/mcp``).
"""

import logging
import time

from werkzeug.exceptions import RequestEntityTooLarge

from odoo import SUPERUSER_ID, http
from odoo.http import request

from odoo.addons.mcp_integrator.services import access_log, signing

from ..models.chatwoot_account import WEBHOOK_PATH
from ..services import webhook

_logger = logging.getLogger(__name__)
# the path token is the webhook's secret: never in the access log
access_log.hide_path_tokens(WEBHOOK_PATH)

#: Verified for an unknown path token, so that it takes as long as a known one.
_DUMMY_SECRETS = ("unknown-path-token",)


def _reply(http_status, **body):
    return request.make_json_response(body, status=http_status)


class ChatwootWebhook(http.Controller):
    @http.route(
        f"{WEBHOOK_PATH}<string:token>",
        type="http",
        auth="none",
        csrf=False,
        methods=["POST"],
        save_session=False,
        readonly=False,
    )
    def chatwoot_webhook(self, token):
        httprequest = request.httprequest
        try:
            webhook.check_content_type(httprequest.headers.get("Content-Type"))
        except webhook.WebhookRejected as error:
            return _reply(error.status, error=error.reason)
        httprequest.max_content_length = webhook.MAX_BODY_BYTES
        try:
            # kept: Odoo replays the request when its transaction fails to serialise
            # (concurrent deliveries of one conversation), and the replay reads it again
            raw = httprequest.get_data(cache=True)
        except RequestEntityTooLarge:
            return _reply(413, error="body too large")
        headers = httprequest.headers
        env = request.env(user=SUPERUSER_ID, su=True)
        config = env["chatwoot.account"]._webhook_config(token)
        try:
            signing_secrets = config.secrets if config else _DUMMY_SECRETS
            if signing_secrets:  # without secrets (Chatwoot < 4.11.2) the path token suffices
                signing.verify(
                    signing_secrets,
                    raw,
                    headers.get("X-Chatwoot-Timestamp"),
                    headers.get("X-Chatwoot-Signature"),
                    time.time(),
                )
        except signing.SignatureError as error:
            if config:
                _logger.warning(
                    "Chatwoot account %s: delivery refused: %s", config.id, error.reason
                )
                return _reply(401, error=error.reason)
        if not config:
            return _reply(404, error="unknown webhook")
        try:
            event = webhook.classify(webhook.read_json(raw, headers.get("Content-Type")))
        except webhook.WebhookRejected as error:
            _logger.warning("Chatwoot account %s: delivery refused: %s", config.id, error.reason)
            return _reply(error.status, error=error.reason)
        if event.account_id is not None and event.account_id != config.account_id:
            _logger.warning(
                "Chatwoot account %s: delivery for account %r refused",
                config.id,
                event.account_id,
            )
            return _reply(403, error="the payload is for another account")
        delivery = webhook.printable(headers.get("X-Chatwoot-Delivery") or "", 64) or None
        outcome = env["chatwoot.event"]._receive(config, event, delivery)
        return _reply(200, status=outcome)
