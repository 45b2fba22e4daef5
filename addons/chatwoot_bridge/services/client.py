# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Chatwoot's Application API (``/api/v1/accounts/{account_id}/...``) for the bridge, plain Python.

Request and response shapes follow Chatwoot v4.10.1 (its OpenAPI spec and the jbuilder views,
see the shared Chatwoot reference). Errors are :class:`ChatwootError`, whose text is safe to
log and show: no token, no request body.
"""

import json
import random
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

DEFAULT_TIMEOUT = (3.05, 10)
#: answers worth another try: rate limited, or the server (or a proxy before it) failing
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: answers that prove a request was not applied, so even a non-idempotent POST may be repeated
NOT_APPLIED_STATUSES = frozenset({429, 503})
_MAX_DETAIL = 200


class ChatwootError(Exception):
    """A Chatwoot call failed; ``str()`` and ``repr()`` are safe to log and show.

    :ivar status: Chatwoot's HTTP status, or None when no answer came (connection error,
        timeout) or no request was made (missing token)
    :ivar retryable: whether the same call may succeed later (a queue job should retry it)
    :ivar retry_after: seconds Chatwoot asked to wait (``Retry-After``), when it said so
    :ivar reason: method, path template, status and Chatwoot's own message (200 characters
        at most); never a token, never the request body
    """

    def __init__(self, reason, *, status=None, retryable=False, retry_after=None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self):
        return (
            f"ChatwootError(status={self.status!r}, retryable={self.retryable!r}, "
            f"retry_after={self.retry_after!r}, reason={self.reason!r})"
        )


class Endpoint(NamedTuple):
    """One Chatwoot operation, as the client calls it."""

    method: str
    #: below ``/api/v1/accounts/{account_id}``, or from the site root when ``account=False``
    path: str
    #: Agent Bot tokens may call it (chatwoot.md §3, ``BOT_ACCESSIBLE_ENDPOINTS``)
    bot: bool
    #: repeating it after an unknown outcome cannot apply it twice
    idempotent: bool
    account: bool = True

    def __str__(self):
        return f"{self.method} {self.path}"


# Writes that set a value (status, priority, labels, attribute hash, assignee) are idempotent;
# creations (message, conversation, contact, contact inbox) are not.
MESSAGE_CREATE = Endpoint("POST", "/conversations/{conversation_id}/messages", True, False)
MESSAGE_STATUS = Endpoint(
    "PATCH", "/conversations/{conversation_id}/messages/{message_id}", False, True
)
CONVERSATION_SHOW = Endpoint("GET", "/conversations/{conversation_id}", False, True)
CONVERSATION_CREATE = Endpoint("POST", "/conversations", True, False)
TOGGLE_STATUS = Endpoint("POST", "/conversations/{conversation_id}/toggle_status", True, True)
TOGGLE_PRIORITY = Endpoint("POST", "/conversations/{conversation_id}/toggle_priority", True, True)
TOGGLE_TYPING = Endpoint(
    "POST", "/conversations/{conversation_id}/toggle_typing_status", True, True
)
CUSTOM_ATTRIBUTES = Endpoint(
    "POST", "/conversations/{conversation_id}/custom_attributes", True, True
)
ASSIGNMENT = Endpoint("POST", "/conversations/{conversation_id}/assignments", True, True)
LABELS_LIST = Endpoint("GET", "/conversations/{conversation_id}/labels", False, True)
LABELS_SET = Endpoint("POST", "/conversations/{conversation_id}/labels", False, True)
CONTACT_SEARCH = Endpoint("GET", "/contacts/search", False, True)
CONTACT_CREATE = Endpoint("POST", "/contacts", False, False)
CONTACT_INBOX_CREATE = Endpoint("POST", "/contacts/{contact_id}/contact_inboxes", False, False)
INBOX_LIST = Endpoint("GET", "/inboxes", False, True)
INBOX_SHOW = Endpoint("GET", "/inboxes/{inbox_id}", False, True)
PROFILE = Endpoint("GET", "/api/v1/profile", False, True, account=False)


class ChatwootClient:
    """Chatwoot's REST API for one account, with the bridge's Agent Bot and user tokens.

    Tokens: the endpoints an Agent Bot token may call (message create, toggle status and
    priority, typing, custom attributes, assignments, conversation create) use ``bot_token``
    when it is set, else ``user_token``; every other endpoint (contacts, contact inboxes,
    inboxes, labels, conversation show, message status, profile) needs ``user_token``, and
    without it the call raises :class:`ChatwootError` at once, before any request.

    Retries: 429, 500, 502, 503, 504 and connection errors or timeouts are tried again up to
    ``max_retries`` more times, waiting ``backoff * 2**n`` seconds (jittered down to half of
    it), or what ``Retry-After`` asks (seconds or an HTTP date) when it is at most
    ``max_retry_after``; a longer ``Retry-After`` is not waited for here.
    Other 4xx are final (``retryable=False``). When the tries run out the error has
    ``retryable=True`` and ``retry_after`` when Chatwoot gave one, so a queue job can retry later.

    Creations (a message, conversation, contact or contact inbox) are not idempotent: they
    are tried again only on 429 or 503 (Chatwoot did not apply them) and on a connection that
    could not be made (refused, or connect timeout: nothing was sent). After a read timeout,
    a dropped connection or a 500/502/504 the creation may have been applied, so the client
    raises at once with ``retryable=True`` and the caller decides (for instance by looking for
    the message first). The other calls set a value and are retried on all the cases above.

    Redirects are not followed (the token header would go along to any host): a 3xx is a
    final error. ``sleep`` is called for every wait (tests record the waits instead of
    sleeping). Close the client, or use it as a context manager, to release its pooled
    connections.
    """

    def __init__(
        self,
        base_url,
        account_id,
        bot_token=None,
        user_token=None,
        timeout=DEFAULT_TIMEOUT,
        max_retries=3,
        backoff=0.5,
        max_retry_after=30,
        session=None,
        sleep=time.sleep,
    ):
        self.base_url = (base_url or "").rstrip("/")
        self.account_id = account_id
        self._bot_token = bot_token or None
        self._user_token = user_token or None
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # retries are this client's own loop: urllib3 must not retry underneath it
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=10, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self._session = session

    def __repr__(self):
        return f"ChatwootClient(base_url={self.base_url!r}, account_id={self.account_id!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Release the pooled connections (a session passed in is left to its owner)."""
        if self._owns_session:
            self._session.close()

    # -- messages -----------------------------------------------------------------------------

    def post_message(
        self,
        conversation_id,
        content,
        *,
        private=False,
        message_type="outgoing",
        content_type=None,
        content_attributes=None,
        source_id=None,
        attachments=None,
    ):
        """Create a message; returns Chatwoot's message (``id``, ``message_type`` as an
        integer, ``status``, ``sender``...).

        ``message_type="incoming"`` is accepted in API inboxes only. ``source_id`` is kept on
        the message and echoed in webhooks (the id of a message imported from another
        channel). ``attachments`` is a list of ``(filename, bytes, mimetype)``: the message is
        then sent as multipart/form-data with ``attachments[]`` files (15 at most).
        """
        body = {"content": content, "message_type": message_type, "private": bool(private)}
        optional = {
            "content_type": content_type,
            "content_attributes": content_attributes,
            "source_id": source_id,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if not attachments:
            return self._call(MESSAGE_CREATE, body, conversation_id=conversation_id)
        form = {key: _form_value(value) for key, value in body.items()}
        files = [
            ("attachments[]", (filename, data, mimetype))
            for filename, data, mimetype in attachments
        ]
        return self._call(MESSAGE_CREATE, form=form, files=files, conversation_id=conversation_id)

    def post_private_note(self, conversation_id, content):
        """Create a private note (outgoing, ``private: true``): agents see it, the customer
        does not, webhooks still carry it. Returns the message."""
        return self.post_message(conversation_id, content, private=True)

    def update_message_status(self, conversation_id, message_id, status, external_error=None):
        """Set the delivery status (``sent``, ``delivered``, ``read``, ``failed``) of a message
        in an API inbox; Chatwoot keeps ``external_error`` for ``failed`` only. Not in
        Chatwoot's swagger (since v4.2.0); 403 for other inboxes. Returns the message."""
        body = {"status": status}
        if external_error is not None:
            body["external_error"] = external_error
        return self._call(
            MESSAGE_STATUS, body, conversation_id=conversation_id, message_id=message_id
        )

    # -- conversations ------------------------------------------------------------------------

    def get_conversation(self, conversation_id):
        """The conversation (``id`` is its display id, ``status``, ``labels``, ``meta``...)."""
        return self._call(CONVERSATION_SHOW, conversation_id=conversation_id)

    def create_conversation(
        self,
        inbox_id,
        contact_id,
        source_id,
        *,
        status=None,
        additional_attributes=None,
        custom_attributes=None,
    ):
        """Open a conversation for the contact inbox ``(inbox_id, source_id)``; returns it
        (``id`` is the display id used in every other path). An inbox locked to a single
        conversation returns the contact's last one instead, and an inbox with an active
        Agent Bot forces ``pending`` whatever ``status`` says."""
        body = {"inbox_id": inbox_id, "contact_id": contact_id, "source_id": str(source_id)}
        optional = {
            "status": status,
            "additional_attributes": additional_attributes,
            "custom_attributes": custom_attributes,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return self._call(CONVERSATION_CREATE, body)

    def toggle_status(self, conversation_id, status, snoozed_until=None):
        """Set the status (``open``, ``resolved``, ``pending``, ``snoozed``); ``snoozed_until``
        is a datetime or a Unix timestamp. With the bot token, pending → open is Chatwoot's
        bot handoff. Returns the payload ``{success, conversation_id, current_status,
        snoozed_until}`` (``success`` is null after a bot handoff)."""
        body = {"status": status}
        if snoozed_until is not None:
            if isinstance(snoozed_until, datetime):
                if snoozed_until.tzinfo is None:  # naive datetimes are UTC, as Odoo stores them
                    snoozed_until = snoozed_until.replace(tzinfo=timezone.utc)
                snoozed_until = int(snoozed_until.timestamp())
            body["snoozed_until"] = snoozed_until
        return self._call(TOGGLE_STATUS, body, conversation_id=conversation_id)["payload"]

    def toggle_priority(self, conversation_id, priority):
        """Set the priority (``urgent``, ``high``, ``medium``, ``low``; ``none`` or None
        clears it). Chatwoot answers an empty 200: returns None."""
        body = {"priority": priority or "none"}
        return self._call(TOGGLE_PRIORITY, body, conversation_id=conversation_id)

    def toggle_typing(self, conversation_id, on, private=False):
        """Show (``on=True``) or hide the typing indicator; ``private`` for a note being
        written. Bot tokens may call it since Chatwoot PR #13705. Returns None."""
        body = {"typing_status": "on" if on else "off", "is_private": bool(private)}
        return self._call(TOGGLE_TYPING, body, conversation_id=conversation_id)

    def set_custom_attributes(self, conversation_id, attributes):
        """Replace the conversation's custom attributes with ``attributes``: Chatwoot stores
        the hash as sent, so keys left out are removed (merge with
        ``get_conversation()["custom_attributes"]`` first to keep them). Returns the stored
        hash."""
        body = {"custom_attributes": attributes}
        response = self._call(CUSTOM_ATTRIBUTES, body, conversation_id=conversation_id)
        return response["custom_attributes"]

    def assign(self, conversation_id, assignee_id=None, team_id=None):
        """Assign the conversation to an agent (``assignee_id``) or a team (``team_id``;
        Chatwoot ignores it when an agent is given). Returns the assignee (or team) as
        Chatwoot answers it; None when an unknown agent id unassigned the conversation."""
        if assignee_id is None and team_id is None:
            raise ValueError("assign needs an assignee_id or a team_id")
        body = {"assignee_id": assignee_id, "team_id": team_id}
        body = {key: value for key, value in body.items() if value is not None}
        return self._call(ASSIGNMENT, body, conversation_id=conversation_id)

    # -- labels -------------------------------------------------------------------------------

    def list_labels(self, conversation_id):
        """The conversation's labels, in Chatwoot's order."""
        return self._call(LABELS_LIST, conversation_id=conversation_id)["payload"]

    def add_labels(self, conversation_id, labels):
        """Add ``labels`` to the conversation's; returns the resulting list.

        Chatwoot's POST replaces the whole list, so this reads it first and writes the union
        (existing order kept, new labels after), and writes nothing when no label is new.
        Two writers at the same moment can still lose one another's labels.
        """
        current = self.list_labels(conversation_id)
        wanted = list(dict.fromkeys([*current, *labels]))
        if wanted == current:
            return current
        return self._set_labels(conversation_id, wanted)

    def remove_labels(self, conversation_id, labels):
        """Remove ``labels`` from the conversation's (read, then write what remains; nothing
        is written when none of them is there); returns the resulting list."""
        current = self.list_labels(conversation_id)
        unwanted = set(labels)
        remaining = [label for label in current if label not in unwanted]
        if remaining == current:
            return current
        return self._set_labels(conversation_id, remaining)

    def _set_labels(self, conversation_id, labels):
        body = {"labels": labels}
        return self._call(LABELS_SET, body, conversation_id=conversation_id)["payload"]

    # -- contacts and inboxes -----------------------------------------------------------------

    def search_contacts(self, query):
        """The contacts whose name, email, phone number or identifier contain ``query``
        (first page), as a list."""
        return self._call(CONTACT_SEARCH, query={"q": query})["payload"]

    def create_contact(
        self,
        inbox_id,
        *,
        name=None,
        identifier=None,
        email=None,
        phone_number=None,
        source_id=None,
        additional_attributes=None,
        custom_attributes=None,
    ):
        """Create a contact with its contact inbox in ``inbox_id``; returns the payload
        ``{"contact": {...}, "contact_inbox": {"inbox": {...}, "source_id": ...}}``.

        ``identifier``, ``email`` and ``phone_number`` (E.164) are unique per account: a
        duplicate is a 422 (search first). Without ``source_id`` an API inbox makes a UUID.
        """
        body = {"inbox_id": inbox_id}
        optional = {
            "name": name,
            "identifier": identifier,
            "email": email,
            "phone_number": phone_number,
            "source_id": source_id,
            "additional_attributes": additional_attributes,
            "custom_attributes": custom_attributes,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return self._call(CONTACT_CREATE, body)["payload"]

    def create_contact_inbox(self, contact_id, inbox_id, source_id):
        """Give the contact a contact inbox in ``inbox_id`` (422 when one with ``source_id``
        exists there); returns ``{"source_id": ..., "inbox": {...}}``."""
        body = {"inbox_id": inbox_id}
        if source_id is not None:
            body["source_id"] = str(source_id)
        return self._call(CONTACT_INBOX_CREATE, body, contact_id=contact_id)

    def list_inboxes(self):
        """The account's inboxes (``id``, ``name``, ``channel_type``, ``webhook_url``...)."""
        return self._call(INBOX_LIST)["payload"]

    def get_inbox(self, inbox_id):
        """One inbox."""
        return self._call(INBOX_SHOW, inbox_id=inbox_id)

    def profile(self):
        """The user token's profile (``id``, ``name``, ``email``, ``accounts``...): checks
        that the user token works. Chatwoot's answer repeats the token; it is left out."""
        profile = self._call(PROFILE)
        if isinstance(profile, dict):
            profile.pop("access_token", None)
        return profile

    # -- transport ----------------------------------------------------------------------------

    def _call(self, endpoint, json_body=None, *, query=None, form=None, files=None, **path_params):
        """Send ``endpoint`` with retries; returns the parsed JSON answer (None when empty)."""
        headers = {"api_access_token": self._token_for(endpoint), "Accept": "application/json"}
        url = self._url(endpoint, path_params)
        attempt = 0
        while True:
            try:
                response = self._session.request(
                    endpoint.method,
                    url,
                    headers=headers,
                    params=query,
                    json=json_body,
                    data=form,
                    files=files,
                    timeout=self.timeout,
                    # the token header would follow a redirect to any host: none is followed
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                error, not_sent = self._transport_error(endpoint, exc)
            else:
                if response.status_code < 300:
                    return self._parsed(endpoint, response)
                error, not_sent = self._status_error(endpoint, response), False
            if not self._may_retry(endpoint, error, not_sent, attempt):
                raise error
            self._sleep(self._wait(error, attempt))
            attempt += 1

    def _token_for(self, endpoint):
        token = (self._bot_token if endpoint.bot else None) or self._user_token
        if token:
            return token
        needed = "an access token (bot or user)" if endpoint.bot else "a user access token"
        raise ChatwootError(f"needs {needed}: {endpoint}")

    def _url(self, endpoint, path_params):
        path = endpoint.path.format(
            **{name: quote(str(value), safe="") for name, value in path_params.items()}
        )
        if endpoint.account:
            path = f"/api/v1/accounts/{quote(str(self.account_id), safe='')}{path}"
        return f"{self.base_url}{path}"

    def _may_retry(self, endpoint, error, not_sent, attempt):
        if attempt >= self.max_retries or not error.retryable:
            return False
        if error.retry_after is not None and error.retry_after > self.max_retry_after:
            return False  # a longer wait is the caller's (a queue job's next try)
        return endpoint.idempotent or not_sent or error.status in NOT_APPLIED_STATUSES

    def _wait(self, error, attempt):
        if error.retry_after is not None:
            return error.retry_after
        delay = self.backoff * 2**attempt
        return min(random.uniform(delay / 2, delay), self.max_retry_after)

    def _transport_error(self, endpoint, exc):
        """``(error, not_sent)`` for a request that got no answer."""
        if isinstance(exc, requests.ConnectTimeout):
            what, not_sent = "timed out connecting", True
        elif isinstance(exc, requests.Timeout):
            what, not_sent = "timed out waiting for the answer", False
        elif isinstance(exc, requests.ConnectionError):
            not_sent = _connection_not_made(exc)
            what = "could not connect" if not_sent else "connection lost before the answer"
        elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
            what, not_sent = "answer cut off", False
        else:  # an invalid URL or the like: trying again changes nothing
            reason = f"{endpoint}: request failed ({type(exc).__name__})"
            return ChatwootError(reason, retryable=False), False
        reason = f"{endpoint}: {what} ({type(exc).__name__})"
        return ChatwootError(reason, retryable=True), not_sent

    def _status_error(self, endpoint, response):
        status = response.status_code
        if 300 <= status < 400:
            detail = "redirected (is the base URL the https:// address of Chatwoot?)"
        else:
            detail = self._detail(response)
        reason = f"{endpoint}: HTTP {status}" + (f": {detail}" if detail else "")
        return ChatwootError(
            reason,
            status=status,
            retryable=status in RETRY_STATUSES or status >= 500,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )

    def _parsed(self, endpoint, response):
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            reason = f"{endpoint}: HTTP {response.status_code} with a body that is not JSON"
            raise ChatwootError(reason, status=response.status_code) from None

    def _detail(self, response):
        """Chatwoot's ``message``/``error`` of an error answer, cut short and scrubbed of the
        tokens (a proxy or a bug could echo the request headers)."""
        try:
            body = response.json()
        except ValueError:
            content_type = response.headers.get("Content-Type", "")
            body = response.text if content_type.startswith("text/plain") else ""
        if isinstance(body, dict):
            body = body.get("message") or body.get("error") or body.get("errors") or ""
        if isinstance(body, list):
            body = "; ".join(str(item) for item in body)
        detail = " ".join(str(body).split())
        for token in (self._bot_token, self._user_token):
            if token:
                detail = detail.replace(token, "***")
        return detail[:_MAX_DETAIL]


def _form_value(value):
    """A message field as a multipart form value (Chatwoot parses JSON text for hashes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _connection_not_made(exc):
    """Whether the connection could not be made (refused, unresolvable, connect timeout), so
    the request never left; a connection dropped after sending is not that."""
    cause = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the real cause
    return isinstance(cause, (NewConnectionError, ConnectTimeoutError))


def _retry_after(value):
    """``Retry-After`` in seconds (from a number of seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
