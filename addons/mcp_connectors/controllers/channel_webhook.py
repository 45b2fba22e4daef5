# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""``/mcp/channel/<token>``: the inbound URL of every channel connector.

Platform channels (WhatsApp, Messenger, Instagram, Mercado Livre, Shopee) answer through their
model's ``_inbound_<type>`` (handshake on GET, signature and acknowledgement on POST, the work
queued); the rest of this docstring is the custom channel (``channel_type`` "webhook"): signed
JSON messages, handed to the conversation hub.

The request format and its checks are ``services/channels.py``; the signature is the
integrator's ``services/signing.py`` (Chatwoot's scheme) with the secret of the channel's
signing credential. Answers: 200 ``{"status": "accepted"}``; otherwise ``{"error": reason}``
with 413 (body over 1 MiB), 415 (not JSON), 404 (no active channel has this token), 401 (no
signing secret on the channel, or a missing, wrong or stale signature), 400 (not a JSON
object, or a field missing or wrong), 503 (no hub could take the message: the sender tries
again later).

Databases: the route has ``auth="none"`` (the signature authenticates, not a session), so
Odoo must find the database from the request alone:

- a server with one database (or whose ``db_name`` / ``dbfilter`` leaves one) uses it;
- with several, either make ``dbfilter`` pick one from the host name (``dbfilter = ^%d$``
  serves ``https://acme.example.com/mcp/channel/...`` from the database ``acme``), or have the
  channel send the header ``X-Odoo-Database: <database>``, which Odoo 19 honours on any
  request (when ``db_name`` / ``dbfilter`` let that database through);
- otherwise Odoo does not know the route and answers 404.
"""

import logging
import secrets
import time

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

from odoo.addons.mcp_integrator.services import access_log, signing

from ..models.mcp_channel import INBOUND_PATH
from ..services import channels

_logger = logging.getLogger(__name__)
# the inbound token (and Meta's verify token in its handshake) never in the access log
access_log.hide_path_tokens(INBOUND_PATH)

# Checked instead when the token is unknown or the channel has no secret: every request costs
# the same work, so the time taken does not tell a known token from an unknown one.
STAND_IN_SECRET = secrets.token_bytes(32)


class McpChannelWebhook(http.Controller):
    @http.route(
        "/mcp/channel/<string:token>",
        type="http",
        auth="none",
        csrf=False,
        methods=["GET", "POST"],
        save_session=False,
        # auth="none" routes default to a read-only cursor; the hub writes, and a write on a
        # read-only cursor makes Odoo replay the whole request
        readonly=False,
    )
    def receive(self, token, **_params):  # a platform's handshake arrives as query parameters
        httprequest = request.httprequest
        channel = _channel_of(token)
        if channel and channel.channel_type != "webhook":
            return _platform_answer(channel, httprequest)
        if httprequest.method != "POST":
            if not channel:
                return _error(404, "unknown channel")
            return _error(405, "custom channels receive POST requests")
        try:
            channel, message = _accepted_message(channel, httprequest)
        except channels.InboundRejected as exc:
            return _error(exc.status, exc.reason)
        try:
            channel._hand_to_hub(message)
        except UserError as exc:
            return _error(503, str(exc))
        return request.make_json_response({"status": "accepted"})


def _channel_of(token):
    """The active channel of an active tenant with this inbound token, or an empty recordset."""
    channel = request.env["mcp.channel"].sudo().browse()
    if token:
        channel = channel.search(
            [("inbound_token", "=", token), ("tenant_id.active", "=", True)], limit=1
        )
    return channel


def _platform_answer(channel, httprequest):
    """A platform channel's answer; the body is read only when its size is acceptable."""
    if (httprequest.content_length or 0) > channels.MAX_PLATFORM_BYTES:
        return _error(413, f"the body is larger than {channels.MAX_PLATFORM_BYTES} bytes")
    raw = httprequest.get_data(cache=True)  # kept: Odoo may replay the request
    if len(raw) > channels.MAX_PLATFORM_BYTES:
        return _error(413, f"the body is larger than {channels.MAX_PLATFORM_BYTES} bytes")
    answer = channel._inbound(
        channels.InboundRequest(
            method=httprequest.method,
            body=raw,
            headers=httprequest.headers,
            args=httprequest.args.to_dict(),
        )
    )
    return request.make_response(
        answer.body, headers=[("Content-Type", answer.content_type)], status=answer.status
    )


def _accepted_message(channel, httprequest):
    """``(channel, message)`` of a custom channel's request that passes every check.

    The signature is checked on the raw bytes before anything of the body is parsed.
    :raise channels.InboundRejected: with the status and reason to answer
    """
    content_type = httprequest.headers.get("Content-Type")
    channels.check_envelope(httprequest.content_length, content_type)
    # kept: Odoo replays a request whose transaction failed to serialise
    raw = httprequest.get_data(cache=True)
    # a chunked body announces no length
    channels.check_envelope(len(raw), content_type)
    secret = channel._signing_secret() if channel else None
    try:
        signing.verify(
            [secret or STAND_IN_SECRET],
            raw,
            httprequest.headers.get(channels.TIMESTAMP_HEADER),
            httprequest.headers.get(channels.SIGNATURE_HEADER),
            time.time(),
        )
        refusal = None
    except signing.SignatureError as exc:
        refusal = exc.reason
    if not channel:
        _logger.info("Channel message refused: unknown token")
        raise channels.InboundRejected(404, "unknown channel")
    if not secret:
        refusal = "the channel has no signing secret"
    if refusal:
        _logger.info("Channel %s: message refused: %s", channel.id, refusal)
        raise channels.InboundRejected(401, refusal)
    try:
        return channel, channels.parse_message(channels.decode_json_object(raw))
    except channels.InboundRejected as exc:
        _logger.info("Channel %s: message refused: %s", channel.id, exc.reason)
        raise


def _error(status, reason):
    return request.make_json_response({"error": reason}, status=status)
