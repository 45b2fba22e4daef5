# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Mercado Livre: pre-sale questions and post-sale messages through the hub.

The wire protocol is ``services/channel_mercadolivre.py``; this file only ties it to the
channel, its credential and its jobs. One Mercado Livre app (its id is the access
credential's client ID) may serve several sellers, each a channel of its tenant, through one
callback URL: any of the app's channels receives a notification and hands it to the channel
of the seller it names.

It also holds the *Authorize* button of the platforms whose sellers authorize the app in the
browser (OAuth authorization code: Mercado Livre, and Shopee through its own hooks): see
:meth:`McpChannel.action_authorize`.
"""

import logging

from odoo import api, fields, models

from odoo.addons.mcp_integrator.models.mcp_integrator import job_attempt
from odoo.addons.mcp_integrator.services import tool_calls
from odoo.addons.queue_job.exception import RetryableJobError

from ..services import channel_mercadolivre as ml
from ..services.channels import (
    ChannelSendError,
    InboundAnswer,
    InboundRejected,
    ReauthorizationRequired,
    SkippedEvent,
    decode_json_object,
)
from ..services.odoo_tool_catalog import error_result

_logger = logging.getLogger(__name__)

SITES = [
    ("MLB", "Brazil (MLB)"),
    ("MLA", "Argentina (MLA)"),
    ("MLM", "Mexico (MLM)"),
    ("MLC", "Chile (MLC)"),
    ("MCO", "Colombia (MCO)"),
    ("MLU", "Uruguay (MLU)"),
    ("MPE", "Peru (MPE)"),
]
# Seconds before a delivery job reads Mercado Livre again when it gave no Retry-After.
FETCH_RETRY_SECONDS = 60
# A notification read back from /missed_feeds is kept two days: pages read per app and run.
MISSED_FEEDS_MAX_PAGES = 20
# A notification that came while the seller's authorization lapsed is read again every hour,
# for two days: the seller has that long to authorize the app again.
AUTHORIZATION_WAIT_SECONDS = 3600
AUTHORIZATION_WAITS = 48
AUTHORIZATION_WAITS_KEY = "mcp_authorization_waits"


class McpChannel(models.Model):
    # one file per platform: they share nothing but the model
    _inherit = "mcp.channel"  # pylint: disable=consider-merging-classes-inherited

    channel_type = fields.Selection(
        selection_add=[("mercadolivre", "Mercado Livre")], ondelete={"mercadolivre": "cascade"}
    )
    mercadolivre_auth_base_url = fields.Char(
        string="Authorization Host",
        help="Empty for the site's own authorization page (auth.mercadolivre.com.br for "
        "Brazil); another host only for a test double.",
    )
    mercadolivre_site_id = fields.Selection(
        SITES,
        string="Mercado Livre Site",
        default="MLB",
        help="The country site of the seller's account (Mercado Livre > My data).",
    )
    mercadolivre_agent_id = fields.Char(
        string="Messaging Agent ID",
        default=lambda self: ml.DEFAULT_AGENT_IDS.get("MLB"),
        help="Since February 2026 Mercado Livre's messaging agent carries the post-sale "
        "messages of Brazil (MLB) and Chile (MLC): replies go to this user id, not to the "
        "buyer. Empty for other sites; MLB's is 3037675074.",
    )
    mercadolivre_answer_questions = fields.Boolean(
        string="Pre-sale Questions",
        default=True,
        help="Bring the buyers' questions on the listings to the inbox. Answers are public and "
        "final (at most 2000 characters).",
    )
    mercadolivre_answer_messages = fields.Boolean(
        string="Post-sale Messages",
        default=True,
        help="Bring the buyers' post-sale messages (per order or cart) to the inbox. Replies are "
        "private, sent in parts of at most 350 characters.",
    )

    @api.onchange("mercadolivre_site_id")
    def _onchange_mercadolivre_site_id(self):
        if self.channel_type == "mercadolivre":
            self.mercadolivre_agent_id = ml.DEFAULT_AGENT_IDS.get(self.mercadolivre_site_id)

    def _app_key(self):
        if self.channel_type != "mercadolivre":
            return super()._app_key()
        return self.sudo().access_credential_id.client_id or False

    def _mercadolivre_client(self):
        return ml.MercadoLivreClient(base_url=self.api_base_url or ml.API_BASE_URL)

    def _mercadolivre_agent_ids(self):
        return {**ml.DEFAULT_AGENT_IDS, self.mercadolivre_site_id: self.mercadolivre_agent_id}

    def _mercadolivre_call(self, operation):
        """``operation(client, access_token)`` with the seller's token; a token Mercado Livre
        refuses is renewed once and the operation tried once more."""
        client = self._mercadolivre_client()
        return self._with_access_token(lambda token: operation(client, token))

    # inbound ------------------------------------------------------------------------------------
    def _inbound_mercadolivre(self, request):
        """Notifications are POSTed, unsigned and without content: check that they are for
        our app, queue their job for the seller's channel, answer 200 at once (Mercado Livre
        waits 500 ms, then retries for an hour).

        Another app's notification is refused (403: it is not ours to take); an unknown seller
        of our app gets 200 and is skipped, so Mercado Livre stops retrying it.
        """
        if request.method != "POST":
            return InboundAnswer.refused(
                InboundRejected(405, "Mercado Livre notifications are POST requests")
            )
        try:
            app_id = self._app_key()
            if not app_id:
                raise InboundRejected(
                    403, "the channel has no Mercado Livre app id (its credential's client ID)"
                )
            notification = ml.parse_notification(decode_json_object(request.body), app_id)
        except InboundRejected as exc:
            _logger.info("Channel %s: Mercado Livre notification refused: %s", self.id, exc.reason)
            return InboundAnswer.refused(exc)
        seller_channel = self._sibling_channel(notification.seller_id)
        if not seller_channel:
            self._skip_event(_unknown_seller(notification))
            return InboundAnswer.json({"status": "skipped"})
        seller_channel._enqueue_delivery(notification.payload(), notification.dedupe_key)
        return InboundAnswer.json({"status": "accepted"})

    def _process_delivery_mercadolivre(self, payload):
        """Job: read what the notification names with the seller's token; customers'
        questions and messages to the hub, everything else recorded."""
        notification = ml.parse_notification(payload, self._app_key())
        channel = self._sibling_channel(notification.seller_id)
        if not channel:
            self._skip_event(_unknown_seller(notification))
            return "unknown seller"
        refusal = channel._mercadolivre_refusal(notification)
        if refusal:
            channel._skip_event(refusal)
            return refusal.reason
        try:
            events = channel._mercadolivre_call(
                lambda client, token: channel._mercadolivre_events(client, token, notification)
            )
        except ReauthorizationRequired as exc:
            # the alert is written by this job, which must end well for it to be kept: the
            # notification waits in a job of its own
            return channel._mercadolivre_wait_for_authorization(payload, notification, exc.reason)
        except ChannelSendError as exc:
            if exc.retryable:
                raise RetryableJobError(
                    exc.reason, seconds=exc.retry_after or FETCH_RETRY_SECONDS
                ) from None
            raise
        delivered = 0
        for event in events:
            if isinstance(event, ml.PlatformEvent):
                channel._skip_event(event)
            else:
                channel._deliver_message(event)
                delivered += 1
        return self.env._(
            "%(topic)s %(resource)s: %(delivered)s message(s) to the hub, %(skipped)s other "
            "event(s) recorded.",
            topic=notification.topic,
            resource=notification.resource_id,
            delivered=delivered,
            skipped=len(events) - delivered,
        )

    def _mercadolivre_wait_for_authorization(self, payload, notification, reason):
        """Read the notification again in an hour, while the seller has not authorized the
        app again (for two days at most); the job's summary."""
        waits = payload.get(AUTHORIZATION_WAITS_KEY, 0)
        if waits >= AUTHORIZATION_WAITS:
            _logger.warning("Channel %s: notification dropped: %s", self.id, reason)
            return reason
        self._enqueue_delivery(
            {**payload, AUTHORIZATION_WAITS_KEY: waits + 1},
            notification.dedupe_key,
            eta=AUTHORIZATION_WAIT_SECONDS,
            description=self.env._(
                "Message delivery of %(channel)s, waiting for its authorization",
                channel=self.display_name,
            ),
        )
        return self.env._(
            "Waiting for the seller to authorize the app again: %(reason)s", reason=reason
        )

    def _mercadolivre_refusal(self, notification):
        """The event of a notification this channel does not take (a kind it is set not to
        bring to the inbox), or None."""
        wanted = {
            ml.KIND_QUESTION: self.mercadolivre_answer_questions,
            ml.KIND_MESSAGE: self.mercadolivre_answer_messages,
        }
        if wanted.get(notification.kind, True):
            return None
        return SkippedEvent(
            "disabled",
            f"the channel does not take {notification.topic} notifications",
            {"resource": notification.resource_id},
        )

    def _mercadolivre_events(self, client, token, notification):
        """The events of a notification. A post-sale message brings its whole pack: the
        messages whose notification was lost or came out of order arrive too (the hub files
        each message once)."""
        agent_ids = self._mercadolivre_agent_ids()
        events = client.fetch_events(notification, token, agent_ids=agent_ids)
        if notification.kind != ml.KIND_MESSAGE:
            return events
        buyers = {
            event.metadata["pack_id"]: event.metadata["buyer_id"]
            for event in events
            if isinstance(event, ml.InboundMessage)
        }
        pack_ids = {ml.parse_thread_id(event.thread_id)[1] for event in events if event.thread_id}
        return [
            event
            for pack_id in sorted(pack_ids)
            for event in client.fetch_pack_events(
                pack_id, notification.seller_id, token, agent_ids=agent_ids, buyers=buyers
            )
        ]

    @api.model
    def _cron_mercadolivre_missed_feeds(self):
        """Scheduled: queue the notifications Mercado Livre could not deliver (kept two days
        in ``/missed_feeds``), once per app, read with the token of one of its sellers."""
        channels_by_app = {}
        for channel in self.sudo().search(
            [
                ("channel_type", "=", "mercadolivre"),
                ("tenant_id.active", "=", True),
                ("access_credential_id.reauthorization_needed", "=", False),
            ]
        ):
            if channel._app_key():
                channels_by_app.setdefault(channel._app_key(), channel)
        queued = 0
        for channel in channels_by_app.values():
            try:
                queued += channel._mercadolivre_recover_missed_feeds()
            except ChannelSendError as exc:
                _logger.warning("Channel %s: missed feeds not read: %s", channel.id, exc.reason)
        return queued

    def _mercadolivre_recover_missed_feeds(self):
        """Queue the app's missed notifications not queued before; how many were."""
        self.ensure_one()
        app_id = self._app_key()
        queued = 0
        for page_number in range(MISSED_FEEDS_MAX_PAGES):
            offset = page_number * ml.MISSED_FEEDS_PAGE
            page = self._mercadolivre_call(
                lambda client, token, offset=offset: client.missed_feeds(
                    token, app_id, offset=offset
                )
            )
            for notification in page.notifications:
                seller_channel = self._sibling_channel(notification.seller_id)
                if not seller_channel:
                    self._skip_event(_unknown_seller(notification))
                elif not seller_channel._delivery_known(notification.dedupe_key):
                    seller_channel._enqueue_delivery(
                        notification.payload(), notification.dedupe_key
                    )
                    queued += 1
            if not page.has_more:
                break
        return queued

    # outbound -----------------------------------------------------------------------------------
    def _send_reply_mercadolivre(self, thread_id, contact, text, attachments, metadata):
        """A question's answer (``POST /answers``: public, final, at most 2000 characters) or a
        post-sale message (``POST /messages/packs/...``: private, in parts of 350 to the
        messaging agent in MLB/MLC, to the buyer elsewhere)."""
        if attachments:
            raise ChannelSendError(
                self.env._(
                    "Mercado Livre replies carry text only: send the attachment's content as "
                    "text, or send it on Mercado Livre."
                )
            )
        try:
            kind, resource_id = ml.parse_thread_id(thread_id)
        except ValueError:
            raise ChannelSendError(
                self.env._("This conversation is not a Mercado Livre question or sale.")
            ) from None
        seller_id = self.account_ref
        if kind == ml.QUESTION_THREAD:
            sent = [
                self._mercadolivre_call(
                    lambda client, token: client.answer_open_question(resource_id, text, token)
                )
            ]
        else:
            # a later try must not repeat the parts that went out the first time
            retry = job_attempt(self.env, 1) > 1
            sent = self._mercadolivre_call(
                lambda client, token: client.send_post_sale(
                    resource_id,
                    seller_id,
                    text,
                    token,
                    site_id=self.mercadolivre_site_id,
                    buyer_id=(contact or {}).get("id"),
                    agent_ids=self._mercadolivre_agent_ids(),
                    resume=retry,
                )
            )
        return {"external_id": ",".join(filter(None, sent)) or None}

    # test ---------------------------------------------------------------------------------------
    def _test_mercadolivre(self):
        """The token's user (``GET /users/me``) must be the channel's seller."""
        self.ensure_one()
        user_id, nickname = self._mercadolivre_call(lambda client, token: client.me(token))
        if user_id != self.account_ref:
            raise ChannelSendError(
                self.env._(
                    "The access token is seller %(nickname)s (%(user)s)'s, not the channel's "
                    "seller %(seller)s: store the tokens of the channel's seller, or correct its "
                    "account ID.",
                    nickname=nickname or "?",
                    user=user_id,
                    seller=self.account_ref or "-",
                )
            )
        return self.env._("Seller %(nickname)s (%(user)s)", nickname=nickname or "?", user=user_id)

    def _authorization_request_mercadolivre(self, redirect_uri, state):
        """The seller's country site's authorization page, with PKCE (S256)."""
        verifier, challenge = ml.pkce_pair()
        auth_base = self.mercadolivre_auth_base_url or ml.AUTH_BASE_URLS.get(
            self.mercadolivre_site_id, ml.AUTH_BASE_URL
        )
        url = ml.authorization_url(
            self.sudo().access_credential_id.client_id,
            redirect_uri,
            state,
            challenge,
            auth_base=auth_base,
        )
        return url, {"code_verifier": verifier}

    def _authorization_tokens_mercadolivre(self, params, kept):
        values = self.sudo().access_credential_id._get_secret_values()
        tokens = self._mercadolivre_client().exchange_code(
            values["client_id"],
            values["client_secret"],
            params["code"],
            self.authorization_redirect_url,
            kept.get("code_verifier"),
        )
        return tokens.user_id, tokens

    # tools --------------------------------------------------------------------------------------
    def _mercadolivre_run_tool(self, name, arguments):
        if name == ml.TOOL_GET_ORDER:
            return self._mercadolivre_call(
                lambda client, token: client.order(arguments["order_id"], token)
            )
        if name == ml.TOOL_UNANSWERED_QUESTIONS:
            limit = arguments.get("limit", ml.QUESTIONS_SEARCH_LIMIT)
            return self._mercadolivre_call(
                lambda client, token: client.unanswered_questions(self.account_ref, token, limit)
            )
        return error_result(f"Unknown Mercado Livre tool {name!r}.")


def _unknown_seller(notification):
    return SkippedEvent(
        "unknown_seller",
        f"no channel of this app receives seller {notification.seller_id}",
        {"topic": notification.topic, "resource": notification.resource_id},
    )


class McpServer(models.Model):
    # one file per platform: they share nothing but the model
    _inherit = "mcp.server"  # pylint: disable=consider-merging-classes-inherited

    kind = fields.Selection(
        selection_add=[("mercadolivre", "Channel: Mercado Livre")],
        ondelete={"mercadolivre": "cascade"},
    )

    def _mcp_builtin_tools_mercadolivre(self):
        return ml.tool_descriptors()

    def _mcp_run_mercadolivre(self, tool, arguments):
        channel = self._platform_channel().sudo()
        try:
            return channel._mercadolivre_run_tool(tool.remote_name, arguments)
        except ChannelSendError as exc:
            if exc.retryable:
                raise tool_calls.ToolUnavailable(exc.reason) from None
            if exc.status == 404:  # an id the model can correct
                return error_result(exc.reason)
            raise tool_calls.PermanentToolError(exc.reason) from None

    def _mcp_health_mercadolivre(self):
        self._channel_health()


class McpCredential(models.Model):
    # one file per platform: they share nothing but the model
    _inherit = "mcp.credential"  # pylint: disable=consider-merging-classes-inherited

    oauth_provider = fields.Selection(
        selection_add=[("mercadolivre", "Mercado Livre")],
        ondelete={"mercadolivre": "set default"},
    )

    def _oauth2_refresh_mercadolivre(self, refresh_token):
        """Provider hook: Mercado Livre's ``POST /oauth/token`` at the API base of the
        credential's channel. The refresh token is single use and comes back new each time
        (the credential saves both under its lock); ``invalid_grant`` asks for a new
        authorization."""
        channel = self._channel_using("mercadolivre")
        client = channel._mercadolivre_client() if channel else ml.MercadoLivreClient()

        def renew():
            tokens = client.refresh(self.client_id, self.sudo().secret, refresh_token)
            return tokens.access_token, tokens.refresh_token, tokens.expires_at

        return self._channel_renewal(renew)
