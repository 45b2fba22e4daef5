# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""A fake Chatwoot (v4.10.1 Application API) on 127.0.0.1, the test double of a Chatwoot server.

It answers over real HTTP, so the bridge's client is tested as it runs. Every request is
checked against Chatwoot's own OpenAPI spec (the bridge subset, ``data/chatwoot/`` beside this
file; ``CHATWOOT_OPENAPI_SPEC`` names another copy): the path and
method must exist, path and query parameters must have their types, and JSON bodies must match
the operation's schema (multipart/form-data is accepted for message create). Two operations
that Chatwoot has but its swagger lacks are added from chatwoot.md §4: ``PATCH`` of a message's
status and ``toggle_typing_status``. A request breaking the spec is answered 422 and recorded
in ``violations``, which a test asserts empty.

Auth works like Chatwoot's: ``api_access_token`` must be the bot or the user token, a bot token
on an endpoint that bots may not call is a 401, another account id is a 404. State is kept
(inboxes, contacts, contact inboxes, conversations, messages) and answers are shaped as in
the reference ``api_examples.json``.

Webhooks are queued in ``outbox``, never sent by the fake's own thread (an Odoo HttpCase
would deadlock): the test calls ``deliver_webhooks(post)`` with its own ``post``. Emitted:

* ``message_created`` for every message (API posts echo back, :meth:`agent_reply`,
  :meth:`customer_message`, :meth:`new_conversation` with content), shaped like the
  reference ``wh_message_created_*.json`` samples, to the Agent Bot URL (``bot_url``) and to
  the API inbox's ``webhook_url``;
* ``conversation_created`` and ``conversation_status_changed`` to the API inbox's
  ``webhook_url``; ``conversation_opened`` / ``conversation_resolved`` to the Agent Bot URL.

Deliveries are signed like Chatwoot v4.13 when the inbox (``secret`` key) or the bot
(``bot_secret``) has a secret. Faults: :meth:`fail_next`, :meth:`go_down`, :meth:`delay`.

Standard library and jsonschema only: no Odoo or project import.
"""

import contextlib
import copy
import email.message
import email.parser
import hashlib
import hmac
import itertools
import json
import os
import re
import secrets
import threading
import time
import uuid
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import jsonschema

SPEC_ENV = "CHATWOOT_OPENAPI_SPEC"
SPEC_NAME = "chatwoot_openapi_v4.10.1_bridge_subset.json"
ACCOUNT_PREFIX = "/api/v1/accounts/{account_id}"
PROFILE_PATH = "/api/v1/profile"

#: chatwoot.md §3: what an Agent Bot token may call (v4.10, custom attributes since v4.2.0,
#: typing since PR #13705); ``(method, path below the account)``
BOT_ACCESSIBLE = frozenset(
    {
        ("POST", "/conversations"),
        ("PATCH", "/conversations/{conversation_id}"),
        ("POST", "/conversations/{conversation_id}/toggle_status"),
        ("POST", "/conversations/{conversation_id}/toggle_priority"),
        ("POST", "/conversations/{conversation_id}/custom_attributes"),
        ("POST", "/conversations/{conversation_id}/toggle_typing_status"),
        ("POST", "/conversations/{conversation_id}/messages"),
        ("POST", "/conversations/{conversation_id}/assignments"),
    }
)

#: operations Chatwoot serves but its v4.10.1 swagger lacks (chatwoot.md §4, api_examples.json)
EXTRA_OPERATIONS = {
    (ACCOUNT_PREFIX + "/conversations/{conversation_id}/messages/{message_id}", "patch"): {
        "parameters": [
            {"$ref": "#/components/parameters/account_id"},
            {"$ref": "#/components/parameters/conversation_id"},
            {"$ref": "#/components/parameters/message_id"},
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {
                            "status": {
                                "type": "string",
                                "enum": ["sent", "delivered", "read", "failed"],
                            },
                            "external_error": {"type": "string", "nullable": True},
                        },
                    }
                }
            },
        },
    },
    (ACCOUNT_PREFIX + "/conversations/{conversation_id}/toggle_typing_status", "post"): {
        "parameters": [
            {"$ref": "#/components/parameters/account_id"},
            {"$ref": "#/components/parameters/conversation_id"},
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["typing_status"],
                        "properties": {
                            "typing_status": {"type": "string", "enum": ["on", "off"]},
                            "is_private": {"type": "boolean"},
                        },
                    }
                }
            },
        },
    },
}
#: the one operation that takes multipart/form-data (``attachments[]`` files)
MULTIPART_OPERATIONS = frozenset({("POST", "/conversations/{conversation_id}/messages")})
ATTACHMENT_FIELD = "attachments[]"

DEFAULT_INBOXES = (
    {"id": 7, "name": "Mercado Livre (API)", "channel_type": "Channel::Api", "webhook_url": None},
    {"id": 8, "name": "Site", "channel_type": "Channel::WebWidget", "webhook_url": None},
)
MESSAGE_TYPES = {"incoming": 0, "outgoing": 1, "activity": 2, "template": 3}
CHAT_MESSAGE_TYPES = ("incoming", "outgoing", "template")
MAX_CONTENT = 150_000
MAX_ATTACHMENTS = 15
MAX_ATTRIBUTE_TEXT = 1_500
MAX_ATTRIBUTE_INTEGER = 9_999_999_999
E164 = re.compile(r"\+[1-9]\d{1,14}")
NOT_FOUND = {"error": "Resource could not be found"}
# OpenAPI keywords JSON Schema does not know (``nullable`` is converted, not dropped)
_OPENAPI_ONLY = frozenset(
    {"nullable", "example", "discriminator", "xml", "externalDocs", "readOnly", "writeOnly"}
)
_EMPTY = object()  # an answer with no body (Chatwoot's ``head :ok``)


class Request(NamedTuple):
    """One request received: the token's value is replaced by ``bot``, ``user`` or
    ``unknown`` in ``headers["api_access_token"]``; ``body`` is the parsed JSON, the form
    fields (files under ``attachments[]`` as ``(filename, bytes, mimetype)``) or None."""

    method: str
    path: str
    body: object
    headers: dict


class Delivery(NamedTuple):
    """A webhook waiting in the outbox: ``body`` is the exact bytes to POST."""

    url: str
    body: bytes
    secret: str | None
    event: str
    delivery_id: str

    @property
    def payload(self):
        return json.loads(self.body)


class SpecViolation(Exception):
    """A request the OpenAPI spec does not allow."""


class _Answer(Exception):
    """Ends a request with this status and body (Chatwoot's error renderers)."""

    def __init__(self, status, body):
        super().__init__(status)
        self.status = status
        self.body = body


class _Call(NamedTuple):
    role: str
    params: dict
    query: dict
    body: object
    files: list


def sign_headers(secret, body, ts=None, delivery=None):
    """Chatwoot's webhook signing headers for ``body`` (lib/webhooks/trigger.rb, v4.11.2+ for
    account webhooks, v4.13.0+ for agent bots and API inboxes):
    ``sha256=hex(HMAC_SHA256(secret, "<ts>." + raw body))``."""
    ts = int(time.time()) if ts is None else int(ts)
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
    return {
        "X-Chatwoot-Signature": f"sha256={digest}",
        "X-Chatwoot-Timestamp": str(ts),
        "X-Chatwoot-Delivery": delivery or str(uuid.uuid4()),
    }


def default_spec_path():
    """``CHATWOOT_OPENAPI_SPEC``, else the bridge subset in ``data/chatwoot/`` beside this file."""
    configured = os.environ.get(SPEC_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent / "data" / "chatwoot" / SPEC_NAME


_SPECS = {}
_SPECS_LOCK = threading.Lock()


def load_spec(path=None):
    """The :class:`OpenApiSpec` at ``path`` (default :func:`default_spec_path`), read once."""
    path = Path(path or default_spec_path())
    with _SPECS_LOCK:
        if path not in _SPECS:
            if not path.is_file():
                raise FileNotFoundError(
                    f"Chatwoot's OpenAPI spec is not at {path}; set {SPEC_ENV} to its path"
                )
            _SPECS[path] = OpenApiSpec(json.loads(path.read_text(encoding="utf-8")))
        return _SPECS[path]


class Route(NamedTuple):
    method: str
    #: the spec's path template, without a trailing slash
    template: str
    pattern: re.Pattern
    path_params: dict
    query_params: dict
    validator: object
    body_required: bool
    multipart: bool

    @property
    def short(self):
        """The template below ``/api/v1/accounts/{account_id}`` (other paths as they are)."""
        if self.template.startswith(ACCOUNT_PREFIX):
            return self.template[len(ACCOUNT_PREFIX) :] or "/"
        return self.template


class OpenApiSpec:
    """Chatwoot's OpenAPI 3.0 document as routes that check requests."""

    def __init__(self, document):
        self.document = document
        self.routes = []
        operations = [
            (path, method, operation, item.get("parameters", []))
            for path, item in document["paths"].items()
            for method, operation in item.items()
            if method != "parameters"
        ]
        operations += [(path, method, op, []) for (path, method), op in EXTRA_OPERATIONS.items()]
        for path, method, operation, shared_parameters in operations:
            self.routes.append(self._route(path, method, operation, shared_parameters))

    def _route(self, path, method, operation, shared_parameters):
        template = path.rstrip("/") or "/"
        path_params, query_params = {}, {}
        for parameter in [*shared_parameters, *operation.get("parameters", [])]:
            parameter = self.resolve(parameter)
            schema = self.json_schema(parameter.get("schema", {}))
            if parameter["in"] == "path":
                path_params[parameter["name"]] = schema
            elif parameter["in"] == "query":
                query_params[parameter["name"]] = schema
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        body = self.resolve(operation.get("requestBody") or {})
        schema = body.get("content", {}).get("application/json", {}).get("schema")
        validator = None
        if schema is not None:
            schema = self.json_schema(schema)
            jsonschema.Draft4Validator.check_schema(schema)
            validator = jsonschema.Draft4Validator(schema)
        route = Route(
            method=method.upper(),
            template=template,
            pattern=re.compile(f"^{regex}/?$"),
            path_params=path_params,
            query_params=query_params,
            validator=validator,
            body_required=bool(body.get("required")),
            multipart=False,
        )
        return route._replace(multipart=(route.method, route.short) in MULTIPART_OPERATIONS)

    def resolve(self, node):
        """``node`` with its ``$ref`` (to this document) followed."""
        seen = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen or not ref.startswith("#/"):
                raise ValueError(f"unresolvable $ref {ref}")
            seen.add(ref)
            node = self.document
            for key in ref[2:].split("/"):
                node = node[key]
        return node

    def json_schema(self, node, refs=()):
        """An OpenAPI 3.0 schema as JSON Schema: ``$ref`` inlined, ``nullable`` as a null type."""
        if isinstance(node, list):
            return [self.json_schema(item, refs) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            if node["$ref"] in refs:
                return {}  # a recursive schema: accept anything below the cycle
            return self.json_schema(self.resolve(node), (*refs, node["$ref"]))
        schema = {}
        for key, value in node.items():
            if key in _OPENAPI_ONLY:
                continue
            if key in ("properties", "patternProperties"):
                schema[key] = {name: self.json_schema(sub, refs) for name, sub in value.items()}
            else:
                schema[key] = self.json_schema(value, refs)
        if node.get("nullable"):
            if "type" in schema:
                types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
                schema["type"] = [*types, "null"]
            if "enum" in schema and None not in schema["enum"]:
                schema["enum"] = [*schema["enum"], None]
        return schema

    def match(self, method, path):
        """``(route, path parameters)`` for a request, or :class:`SpecViolation`."""
        candidates = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found:
                literal = route.template.count("/") - len(route.path_params)
                candidates.append((route.method == method, literal, route, found.groupdict()))
        if not candidates:
            raise SpecViolation("no such path in the spec")
        allowed = [candidate for candidate in candidates if candidate[0]]
        if not allowed:
            methods = sorted({candidate[2].method for candidate in candidates})
            raise SpecViolation(f"{method} is not an operation of this path ({methods})")
        # a literal segment wins over a parameter: /contacts/search is not /contacts/{id}
        _matched, _literal, route, params = max(allowed, key=lambda candidate: candidate[1])
        for name, value in params.items():
            _check_scalar(f"path parameter {name}", value, route.path_params.get(name, {}))
        return route, params

    def check_query(self, route, query):
        for name, values in query.items():
            if name in route.query_params:
                for value in values:
                    _check_scalar(f"query parameter {name}", value, route.query_params[name])

    def check_body(self, route, kind, body, files):
        """The body as the operation takes it (form fields typed), or :class:`SpecViolation`."""
        if route.validator is None:
            return body
        if kind == "none":
            if route.body_required:
                raise SpecViolation("the request body is required")
            return None
        if kind == "multipart":
            if not route.multipart:
                raise SpecViolation("multipart/form-data is not accepted here")
            misnamed = sorted({name for name, *_file in files if name != ATTACHMENT_FIELD})
            if misnamed:
                raise SpecViolation(f"files must be sent as {ATTACHMENT_FIELD}, not {misnamed}")
            body = _typed_form(body)
        elif kind != "json":
            raise SpecViolation(f"the body must be application/json, not {kind}")
        errors = sorted(route.validator.iter_errors(body), key=lambda error: error.path)
        if errors:
            where = "/".join(str(part) for part in errors[0].absolute_path) or "(root)"
            raise SpecViolation(f"body {where}: {errors[0].message}")
        return body


def _check_scalar(what, value, schema):
    kind = schema.get("type")
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        raise SpecViolation(f"{what} must be an integer, got {value!r}")
    if kind == "number":
        try:
            float(value)
        except ValueError:
            raise SpecViolation(f"{what} must be a number, got {value!r}") from None
    if "enum" in schema and value not in schema["enum"]:
        raise SpecViolation(f"{what} must be one of {schema['enum']}, got {value!r}")


def _typed_form(fields):
    """Form fields as Rails reads them for a message: booleans and JSON hashes parsed."""
    typed = dict(fields)
    if typed.get("private") in ("true", "false"):
        typed["private"] = typed["private"] == "true"
    if "content_attributes" in typed:
        with contextlib.suppress(ValueError):
            typed["content_attributes"] = json.loads(typed["content_attributes"])
    return typed


def _decode_body(content_type, raw):
    """``(kind, body, files, error)``: kind is ``none``, ``json``, ``multipart`` or the type."""
    mime = content_type.split(";")[0].strip().lower()
    if not raw and not mime:
        return "none", None, [], None
    if mime == "application/json":
        try:
            return "json", json.loads(raw), [], None
        except ValueError as exc:
            return "json", None, [], f"the body is not JSON ({exc})"
    if mime == "multipart/form-data":
        try:
            fields, files = _parse_multipart(content_type, raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return "multipart", None, [], f"malformed multipart body ({exc})"
        return "multipart", fields, files, None
    return mime or "unknown", raw, [], None


def _parse_multipart(content_type, raw):
    """``(fields, files)`` of a multipart/form-data body; files are
    ``(field name, filename, bytes, mimetype)``."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not boundary:
        raise ValueError("no boundary")
    sections = raw.split(b"--" + boundary.encode())
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise ValueError("not closed by its boundary")
    fields, files = {}, []
    for section in sections[1:-1]:
        if not (section.startswith(b"\r\n") and section.endswith(b"\r\n")):
            raise ValueError("a part is not framed by CRLF")
        head, separator, data = section[2:-2].partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a part has no header end")
        part = email.parser.BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        filename = part.get_param("filename", header="content-disposition")
        if not name:
            raise ValueError("a part has no name")
        if filename is None:
            fields[name] = data.decode("utf-8")
        else:
            files.append((name, filename, data, part.get_content_type()))
    return fields, files


def _iso(epoch):
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_attributes(field, attributes):
    """Chatwoot's JsonbAttributesLengthValidator: texts under 1500 characters, integers
    under 9,999,999,999 (so marketplace ids must be strings)."""
    for key, value in (attributes or {}).items():
        too_long = isinstance(value, str) and len(value) >= MAX_ATTRIBUTE_TEXT
        too_big = (
            isinstance(value, int)
            and not isinstance(value, bool)
            and abs(value) >= MAX_ATTRIBUTE_INTEGER
        )
        if too_long or too_big:
            message = f"{field.replace('_', ' ').capitalize()} {key} is too long"
            raise _Answer(422, {"message": message, "attributes": [field]})


class FakeChatwoot:
    """Start with ``with FakeChatwoot() as chatwoot:`` (or :meth:`start` / :meth:`stop`) and
    point the client at ``chatwoot.url``.

    ``inboxes``: dicts with ``id``, ``name``, ``channel_type`` (``Channel::Api`` or
    ``Channel::WebWidget``) and ``webhook_url``, optionally ``secret`` (signs the API inbox's
    webhooks) and ``lock_to_single_conversation``. Ids start at 500 for contacts, 900 for
    contact inboxes, 1000 for conversations (display ids) and 5000 for messages. Setting
    ``bot_url`` connects the Agent Bot to every inbox: new conversations start ``pending`` and
    every message event also goes to the bot.
    """

    def __init__(self, account_id=3, bot_token="bot-token", user_token="user-token", inboxes=None):
        self.account_id = account_id
        self.bot_token = bot_token
        self.user_token = user_token
        self.account_name = "Loja Exemplo"
        #: the user token's owner, also the human agent of :meth:`agent_reply`
        self.user = {
            "id": 21,
            "name": "Ana Souza",
            "available_name": "Ana",
            "email": "ana@lojaexemplo.com.br",
        }
        self.bot = {"id": 4, "name": "Odoo AI Agent"}
        #: the Agent Bot's ``outgoing_url`` and signing secret (Agent Bot mode when set)
        self.bot_url = None
        self.bot_secret = None
        self.inboxes = {
            inbox["id"]: self._inbox_record(inbox) for inbox in inboxes or DEFAULT_INBOXES
        }
        self.contacts = {}
        self.contact_inboxes = {}
        self.conversations = {}
        self.requests = []
        self.violations = []
        self.outbox = []
        #: requests received while down, whose connection was closed unanswered
        self.dropped = 0
        self._spec = load_spec()
        self._lock = threading.RLock()
        self._ids = {
            "contact": itertools.count(500),
            "contact_inbox": itertools.count(900),
            "conversation": itertools.count(1000),
            "message": itertools.count(5000),
            "attachment": itertools.count(7000),
        }
        self._failures = []
        self._down = False
        self._delay = 0.0
        self._httpd = None
        self._thread = None
        self._handlers = {
            ("GET", PROFILE_PATH): self._profile,
            ("GET", "/inboxes"): self._list_inboxes,
            ("GET", "/inboxes/{id}"): self._show_inbox,
            ("GET", "/contacts/search"): self._search_contacts,
            ("POST", "/contacts"): self._create_contact,
            ("GET", "/contacts/{id}"): self._show_contact,
            ("POST", "/contacts/{id}/contact_inboxes"): self._create_contact_inbox,
            ("POST", "/conversations"): self._create_conversation,
            ("GET", "/conversations/{conversation_id}"): self._show_conversation,
            ("PATCH", "/conversations/{conversation_id}"): self._update_conversation,
            ("GET", "/conversations/{conversation_id}/messages"): self._list_messages,
            ("POST", "/conversations/{conversation_id}/messages"): self._create_message,
            (
                "PATCH",
                "/conversations/{conversation_id}/messages/{message_id}",
            ): self._update_message_status,
            ("POST", "/conversations/{conversation_id}/toggle_status"): self._toggle_status,
            ("POST", "/conversations/{conversation_id}/toggle_priority"): self._toggle_priority,
            ("POST", "/conversations/{conversation_id}/toggle_typing_status"): self._typing,
            ("POST", "/conversations/{conversation_id}/assignments"): self._assign,
            ("GET", "/conversations/{conversation_id}/labels"): self._list_labels,
            ("POST", "/conversations/{conversation_id}/labels"): self._set_labels,
            (
                "POST",
                "/conversations/{conversation_id}/custom_attributes",
            ): self._set_custom_attributes,
        }

    # -- server -------------------------------------------------------------------------------

    @property
    def url(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self):
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # -- faults -------------------------------------------------------------------------------

    def fail_next(self, n, status=500, retry_after=None, after=0):
        """Answer the next ``n`` requests with ``status`` (and ``Retry-After``: seconds, or an
        HTTP date string), touching no state; 429 has Rack::Attack's text body. With
        ``after``, that many requests are answered normally first (a failure half-way)."""
        with self._lock:
            if after:
                self._failures.append([after, None, None])
            self._failures.append([n, status, retry_after])

    def reset_faults(self):
        """Forget the failures still queued, come back up and answer at once."""
        with self._lock:
            self._failures.clear()
        self._down = False
        self._delay = 0.0

    def go_down(self):
        """From now on, close every connection without answering (a connection error)."""
        self._down = True

    def come_back(self):
        self._down = False

    def delay(self, seconds):
        """Answer every request ``seconds`` late (after applying it); 0 ends the delay."""
        self._delay = seconds

    # -- what a test looks at -----------------------------------------------------------------

    def conversation(self, conversation_id):
        """A copy of the conversation's state (``status``, ``priority``, ``labels``,
        ``custom_attributes``, ``additional_attributes``, ``assignee_id``, ``messages``...)."""
        with self._lock:
            return copy.deepcopy(self.conversations[int(conversation_id)])

    def messages(self, conversation_id):
        """Copies of the conversation's messages, oldest first (``message_type`` as a string,
        ``sender_type`` Contact / User / AgentBot, ``attachments`` with their bytes)."""
        return self.conversation(conversation_id)["messages"]

    def replies(self, conversation_id):
        """The public outgoing messages (what the customer sees)."""
        return [
            message
            for message in self.messages(conversation_id)
            if message["message_type"] == "outgoing" and not message["private"]
        ]

    def notes(self, conversation_id):
        """The private notes."""
        return [message for message in self.messages(conversation_id) if message["private"]]

    # -- what a person or a customer does in Chatwoot -----------------------------------------

    def new_conversation(
        self,
        inbox_id=None,
        *,
        name="Cliente",
        identifier=None,
        source_id=None,
        status=None,
        additional_attributes=None,
        custom_attributes=None,
        content=None,
    ):
        """A customer starts a conversation (contact reused by ``identifier``); with
        ``content``, its first incoming message. Queues its webhooks; returns the display id."""
        with self._lock:
            inbox = self.inboxes[inbox_id] if inbox_id else next(iter(self.inboxes.values()))
            contact = next(
                (c for c in self.contacts.values() if identifier and c["identifier"] == identifier),
                None,
            ) or self._new_contact({"name": name, "identifier": identifier})
            contact_inbox = self._new_contact_inbox(contact, inbox, source_id)
            conversation = self._new_conversation(
                inbox,
                contact_inbox,
                status=status,
                additional_attributes=additional_attributes,
                custom_attributes=custom_attributes,
            )
            if content is not None:
                message = self._add_message(conversation, content, "incoming", "Contact")
                self._emit_message(message)
            return conversation["id"]

    def customer_message(self, conversation_id, content, source_id=None):
        """The customer writes: an incoming message (a resolved conversation reopens).
        Queues ``message_created``; returns a copy of the message."""
        with self._lock:
            conversation = self.conversations[int(conversation_id)]
            message = self._add_message(
                conversation, content, "incoming", "Contact", source_id=source_id
            )
            self._reopen_on_incoming(conversation)
            self._emit_message(message)
            return copy.deepcopy(message)

    def agent_reply(self, conversation_id, content, private=False):
        """A human agent (``user``) replies, or writes a private note, in Chatwoot's UI.
        Queues ``message_created``; returns a copy of the message."""
        with self._lock:
            conversation = self.conversations[int(conversation_id)]
            message = self._add_message(conversation, content, "outgoing", "User", private=private)
            self._emit_message(message)
            return copy.deepcopy(message)

    def agent_toggle_status(self, conversation_id, status):
        """A human agent sets the status in Chatwoot's UI (a takeover is ``open``)."""
        with self._lock:
            self._set_status(self.conversations[int(conversation_id)], status)

    # -- webhooks -----------------------------------------------------------------------------

    def deliver_webhooks(self, post):
        """Send the queued webhooks: ``post(url, body_bytes, headers)`` for each, in order,
        with Chatwoot's headers (signed when there is a secret). Returns what ``post`` returned."""
        with self._lock:
            pending, self.outbox = self.outbox, []
        results = []
        for delivery in pending:
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if delivery.secret:
                headers.update(
                    sign_headers(delivery.secret, delivery.body, delivery=delivery.delivery_id)
                )
            results.append(post(delivery.url, delivery.body, headers))
        return results

    def _queue(self, url, secret, payload):
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        self.outbox.append(Delivery(url, body, secret, payload["event"], str(uuid.uuid4())))

    def _inbox_webhook(self, inbox):
        if inbox["channel_type"] == "Channel::Api" and inbox.get("webhook_url"):
            return inbox["webhook_url"], inbox.get("secret")
        return None

    def _emit_message(self, message):
        """``message_created`` to the Agent Bot and the API inbox's webhook_url (activity
        messages are never sent)."""
        if message["message_type"] not in CHAT_MESSAGE_TYPES:
            return
        payload = {**self._message_webhook(message), "event": "message_created"}
        if self.bot_url:
            self._queue(self.bot_url, self.bot_secret, payload)
        target = self._inbox_webhook(self.inboxes[message["inbox_id"]])
        if target:
            self._queue(*target, payload)

    def _emit_conversation(self, conversation, event, **extra):
        target = self._inbox_webhook(self.inboxes[conversation["inbox_id"]])
        if target:
            payload = {**self._conversation_push(conversation), "event": event, **extra}
            self._queue(*target, payload)

    # -- HTTP ---------------------------------------------------------------------------------

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Chatwoot behind its proxy answers
            disable_nagle_algorithm = True  # headers and body leave without a delayed-ACK wait

            def do_GET(self):  # the names http.server calls
                fake._serve(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

            def log_message(self, *args):  # quiet: the test's output is the test's
                pass

        return Handler

    def _role(self, token):
        if token and hmac.compare_digest(token, self.bot_token or ""):
            return "bot"
        if token and hmac.compare_digest(token, self.user_token or ""):
            return "user"
        return "unknown" if token else None

    def _serve(self, handler):
        method = handler.command
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        kind, body, files, decode_error = _decode_body(handler.headers.get("Content-Type", ""), raw)
        role = self._role(handler.headers.get("api_access_token"))
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "api_access_token"}
        if role:
            headers["api_access_token"] = role
        recorded = body
        if kind == "multipart" and body is not None:
            recorded = {**body, ATTACHMENT_FIELD: [(f, d, m) for _n, f, d, m in files]}
        with self._lock:
            self.requests.append(Request(method, handler.path, recorded, headers))
            if self._down:
                self.dropped += 1
            failure = None if self._down else self._take_failure()
        if self._down:
            handler.close_connection = True  # closed unanswered: the client sees it drop
            return
        if failure:
            status, payload, extra = failure
        else:
            call = (method, handler.path, kind, body, files, decode_error, role)
            status, payload, extra = self._answer(*call)
        if self._delay:
            time.sleep(self._delay)
        _write(handler, status, payload, extra)

    def _take_failure(self):
        if not self._failures:
            return None
        entry = self._failures[0]
        entry[0] -= 1
        if entry[0] <= 0:
            self._failures.pop(0)
        _count, status, retry_after = entry
        if status is None:
            return None  # one of the requests answered before a failure
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if status == 429:
            return status, "Retry later\n", headers  # Rack::Attack's throttled answer
        return status, {"status": status, "error": HTTPStatus(status).phrase}, headers

    def _answer(self, method, raw_path, kind, body, files, decode_error, role):
        """``(status, body, headers)`` for a request, after checking it like Chatwoot would."""
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            route, params = self._spec.match(method, split.path)
            self._spec.check_query(route, query)
            if decode_error:
                raise SpecViolation(decode_error)
            body = self._spec.check_body(route, kind, body, files)
        except SpecViolation as violation:
            with self._lock:
                self.violations.append(f"{method} {split.path}: {violation}")
            return 422, {"error": f"spec violation: {violation}"}, {}
        denied = self._denied(route, params, role)
        if denied:
            return *denied, {}
        handler = self._handlers.get((method, route.short))
        if handler is None:
            return 501, {"error": f"FakeChatwoot does not simulate {method} {route.short}"}, {}
        params = {name: int(v) if v.lstrip("-").isdigit() else v for name, v in params.items()}
        try:
            with self._lock:
                answer = handler(_Call(role, params, query, body, files))
        except _Answer as answer:
            return answer.status, answer.body, {}
        except Exception as exc:  # noqa: BLE001 - a bug of the fake fails the test loudly
            with self._lock:
                self.violations.append(f"{method} {split.path}: the fake failed: {exc!r}")
            return 500, {"error": f"FakeChatwoot failed: {exc!r}"}, {}
        return 200, answer, {}

    def _denied(self, route, params, role):
        """Chatwoot's token check (AccessTokenAuthHelper) and account scope, or None."""
        if route.template.startswith("/public/"):
            return None
        if role is None:
            return 401, {"errors": ["You need to sign in or sign up before continuing."]}
        if role == "unknown":
            return 401, {"error": "Invalid Access Token"}
        if role == "bot" and (route.method, route.short) not in BOT_ACCESSIBLE:
            return 401, {"error": "Access to this endpoint is not authorized for bots"}
        if "account_id" in params and int(params["account_id"]) != int(self.account_id):
            return 404, NOT_FOUND
        return None

    # -- state --------------------------------------------------------------------------------

    def _inbox_record(self, inbox):
        record = {
            "webhook_url": None,
            "secret": None,
            "lock_to_single_conversation": False,
            "channel_id": inbox["id"] + 5,
            "inbox_identifier": secrets.token_urlsafe(18),
            **inbox,
        }
        if record["channel_type"] not in ("Channel::Api", "Channel::WebWidget"):
            raise ValueError(f"unsupported channel type {record['channel_type']}")
        return record

    def _conversation_of(self, call):
        conversation = self.conversations.get(call.params["conversation_id"])
        if conversation is None:
            raise _Answer(404, NOT_FOUND)
        return conversation

    def _inbox_of(self, inbox_id):
        inbox = self.inboxes.get(int(inbox_id))
        if inbox is None:
            raise _Answer(404, NOT_FOUND)
        return inbox

    def _new_contact(self, values):
        contact = {
            "id": next(self._ids["contact"]),
            "name": values.get("name") or "",
            "identifier": values.get("identifier"),
            "email": values.get("email"),
            "phone_number": values.get("phone_number"),
            "additional_attributes": values.get("additional_attributes") or {},
            "custom_attributes": values.get("custom_attributes") or {},
            "created_at": int(time.time()),
        }
        self.contacts[contact["id"]] = contact
        return contact

    def _check_contact(self, values):
        """Chatwoot's contact validations: E.164 phone, identifier/email/phone unique."""
        phone = values.get("phone_number")
        if phone and not E164.fullmatch(phone):
            message = "Phone number should be in e164 format"
            raise _Answer(422, {"message": message, "attributes": ["phone_number"]})
        for field in ("identifier", "email", "phone_number"):
            value = values.get(field)
            if not value:
                continue
            key = value.lower() if field == "email" else value
            for contact in self.contacts.values():
                other = contact.get(field) or ""
                if (other.lower() if field == "email" else other) == key:
                    label = field.replace("_", " ").capitalize()
                    message = f"{label} has already been taken"
                    raise _Answer(422, {"message": message, "attributes": [field]})

    def _new_contact_inbox(self, contact, inbox, source_id):
        source_id = str(source_id) if source_id else str(uuid.uuid4())
        for existing in self.contact_inboxes.values():
            if existing["inbox_id"] == inbox["id"] and existing["source_id"] == source_id:
                message = "Source has already been taken"
                raise _Answer(422, {"message": message, "attributes": ["source_id"]})
        now = time.time()
        contact_inbox = {
            "id": next(self._ids["contact_inbox"]),
            "contact_id": contact["id"],
            "inbox_id": inbox["id"],
            "source_id": source_id,
            "created_at": _iso(now),
            "updated_at": _iso(now),
            "hmac_verified": False,
            "pubsub_token": secrets.token_urlsafe(18),
        }
        self.contact_inboxes[contact_inbox["id"]] = contact_inbox
        return contact_inbox

    def _new_conversation(self, inbox, contact_inbox, **values):
        if inbox.get("lock_to_single_conversation"):
            existing = [
                c
                for c in self.conversations.values()
                if c["contact_inbox_id"] == contact_inbox["id"]
            ]
            if existing:
                return existing[-1]
        _check_attributes("additional_attributes", values.get("additional_attributes"))
        _check_attributes("custom_attributes", values.get("custom_attributes"))
        now = int(time.time())
        # an inbox with an active Agent Bot creates pending conversations, whatever was asked
        status = "pending" if self.bot_url else values.get("status") or "open"
        conversation = {
            "id": next(self._ids["conversation"]),
            "uuid": str(uuid.uuid4()),
            "inbox_id": inbox["id"],
            "contact_id": contact_inbox["contact_id"],
            "contact_inbox_id": contact_inbox["id"],
            "status": status,
            "priority": None,
            "labels": [],
            "custom_attributes": values.get("custom_attributes") or {},
            "additional_attributes": values.get("additional_attributes") or {},
            "snoozed_until": None,
            "assignee_id": None,
            "assignee_type": None,
            "team_id": None,
            "created_at": now,
            "updated_at": float(now),
            "last_activity_at": now,
            "waiting_since": now,
            "messages": [],
        }
        self.conversations[conversation["id"]] = conversation
        self._emit_conversation(conversation, "conversation_created")
        return conversation

    def _add_message(self, conversation, content, message_type, sender_type, **values):
        now = time.time()
        sender_id = {
            "Contact": conversation["contact_id"],
            "User": self.user["id"],
            "AgentBot": self.bot["id"],
        }[sender_type]
        message = {
            "id": next(self._ids["message"]),
            "conversation_id": conversation["id"],
            "inbox_id": conversation["inbox_id"],
            "content": content,
            "message_type": message_type,
            "private": bool(values.get("private", False)),
            "content_type": values.get("content_type") or "text",
            "content_attributes": values.get("content_attributes") or {},
            "source_id": values.get("source_id"),
            "echo_id": values.get("echo_id"),
            "sender_type": sender_type,
            "sender_id": sender_id,
            "status": "sent",
            "external_error": None,
            "created_at": now,
            "attachments": [],
        }
        for filename, data, mimetype in values.get("attachments") or ():
            message["attachments"].append(self._attachment(message, filename, data, mimetype))
        conversation["messages"].append(message)
        conversation["last_activity_at"] = int(now)
        conversation["updated_at"] = now
        return message

    def _attachment(self, message, filename, data, mimetype):
        attachment_id = next(self._ids["attachment"])
        major = mimetype.split("/")[0]
        file_type = major if major in ("image", "audio", "video") else "file"
        data_url = f"{self.url}/rails/active_storage/blobs/redirect/{attachment_id}/{filename}"
        return {
            "id": attachment_id,
            "message_id": message["id"],
            "file_type": file_type,
            "account_id": self.account_id,
            "extension": filename.rsplit(".", 1)[-1] if "." in filename else None,
            "data_url": data_url,
            "thumb_url": data_url if file_type == "image" else "",
            "file_size": len(data),
            "filename": filename,
            "content_type": mimetype,
            "data": data,
        }

    def _set_status(self, conversation, status, snoozed_until=None):
        previous = conversation["status"]
        conversation["status"] = status
        conversation["snoozed_until"] = snoozed_until if status == "snoozed" else None
        if previous == status:
            return
        self._emit_conversation(
            conversation, "conversation_status_changed", changed_attributes=None
        )
        bot_event = {"open": "conversation_opened", "resolved": "conversation_resolved"}.get(status)
        if self.bot_url and bot_event:
            payload = {**self._conversation_push(conversation), "event": bot_event}
            self._queue(self.bot_url, self.bot_secret, payload)

    def _reopen_on_incoming(self, conversation):
        """A resolved conversation goes back to the bot (pending) or to the agents (open);
        a snoozed one reopens (Message#reopen_resolved_conversation)."""
        if conversation["status"] == "resolved":
            self._set_status(conversation, "pending" if self.bot_url else "open")
        elif conversation["status"] == "snoozed":
            self._set_status(conversation, "open")

    # -- endpoint handlers (called under the lock) --------------------------------------------

    def _profile(self, call):
        return {
            **self.user,
            "access_token": self.user_token,
            "account_id": self.account_id,
            "avatar_url": "",
            "confirmed": True,
            "display_name": None,
            "message_signature": None,
            "provider": "email",
            "pubsub_token": "fake-pubsub-token",
            "role": "administrator",
            "ui_settings": {},
            "uid": self.user["email"],
            "type": None,
            "accounts": [
                {
                    "id": self.account_id,
                    "name": self.account_name,
                    "status": "active",
                    "role": "administrator",
                    "availability_status": "online",
                    "auto_offline": True,
                }
            ],
        }

    def _list_inboxes(self, call):
        return {"payload": [self._inbox_json(inbox) for inbox in self.inboxes.values()]}

    def _show_inbox(self, call):
        return self._inbox_json(self._inbox_of(call.params["id"]))

    def _search_contacts(self, call):
        query = (call.query.get("q") or [""])[0]
        if not query:
            raise _Answer(422, {"error": "Specify search string with parameter q"})
        lowered = query.lower()
        found = [
            contact
            for contact in self.contacts.values()
            if any(lowered in (contact[f] or "").lower() for f in ("name", "email", "phone_number"))
            or query in (contact["identifier"] or "")
        ]
        return {
            "meta": {"count": len(found), "current_page": 1},
            "payload": [self._contact_json(contact) for contact in found],
        }

    def _create_contact(self, call):
        inbox = self._inbox_of(call.body["inbox_id"])
        self._check_contact(call.body)
        contact = self._new_contact(call.body)
        try:
            contact_inbox = self._new_contact_inbox(contact, inbox, call.body.get("source_id"))
        except _Answer:
            del self.contacts[contact["id"]]  # one transaction in Chatwoot
            raise
        return {
            "payload": {
                "contact": self._contact_json(contact),
                "contact_inbox": {
                    "inbox": self._inbox_json(inbox),
                    "source_id": contact_inbox["source_id"],
                },
            }
        }

    def _show_contact(self, call):
        contact = self.contacts.get(call.params["id"])
        if contact is None:
            raise _Answer(404, NOT_FOUND)
        return {"payload": self._contact_json(contact)}

    def _create_contact_inbox(self, call):
        contact = self.contacts.get(call.params["id"])
        if contact is None:
            raise _Answer(404, NOT_FOUND)
        inbox = self._inbox_of(call.body["inbox_id"])
        contact_inbox = self._new_contact_inbox(contact, inbox, call.body.get("source_id"))
        return {"source_id": contact_inbox["source_id"], "inbox": self._inbox_brief(inbox)}

    def _create_conversation(self, call):
        body = call.body
        inbox = self._inbox_of(body["inbox_id"])
        contact_inbox = next(
            (
                ci
                for ci in self.contact_inboxes.values()
                if ci["inbox_id"] == inbox["id"] and ci["source_id"] == body["source_id"]
            ),
            None,
        )
        first = body.get("message")
        if first:
            self._check_message_type(inbox, first.get("message_type") or "outgoing")
        if contact_inbox is None:
            contact = self.contacts.get(body.get("contact_id"))
            if contact is None:
                raise _Answer(422, {"error": "Contact inbox not found"})
            contact_inbox = self._new_contact_inbox(contact, inbox, body["source_id"])
        conversation = self._new_conversation(
            inbox,
            contact_inbox,
            status=body.get("status"),
            additional_attributes=body.get("additional_attributes"),
            custom_attributes=body.get("custom_attributes"),
        )
        if first:
            message_type = first.get("message_type") or "outgoing"
            sender = self._sender_for(call.role, message_type)
            message = self._add_message(conversation, first["content"], message_type, sender)
            self._emit_message(message)
        return self._conversation_json(conversation)

    def _show_conversation(self, call):
        return self._conversation_json(self._conversation_of(call))

    def _update_conversation(self, call):
        conversation = self._conversation_of(call)
        if "priority" in call.body:
            priority = call.body["priority"]
            conversation["priority"] = None if priority == "none" else priority
        return self._conversation_json(conversation)

    def _list_messages(self, call):
        conversation = self._conversation_of(call)
        contact = self.contacts[conversation["contact_id"]]
        return {
            "meta": {"labels": conversation["labels"], "contact": self._contact_json(contact)},
            "payload": [self._message_json(message) for message in conversation["messages"]],
        }

    def _check_message_type(self, inbox, message_type):
        if message_type == "incoming" and inbox["channel_type"] != "Channel::Api":
            raise _Answer(422, {"error": "Incoming messages are only allowed in Api inboxes"})

    @staticmethod
    def _sender_for(role, message_type):
        if message_type == "incoming":
            return "Contact"
        return "AgentBot" if role == "bot" else "User"

    def _create_message(self, call):
        conversation = self._conversation_of(call)
        body = call.body
        message_type = body.get("message_type") or "outgoing"
        self._check_message_type(self.inboxes[conversation["inbox_id"]], message_type)
        content = body.get("content") or ""
        if len(content) > MAX_CONTENT:
            message = f"Content is too long (maximum is {MAX_CONTENT} characters)"
            raise _Answer(422, {"message": message, "attributes": ["content"]})
        if len(call.files) > MAX_ATTACHMENTS:
            raise _Answer(422, {"error": f"At most {MAX_ATTACHMENTS} attachments per message"})
        message = self._add_message(
            conversation,
            content,
            message_type,
            self._sender_for(call.role, message_type),
            private=body.get("private", False),
            content_type=body.get("content_type"),
            content_attributes=body.get("content_attributes"),
            source_id=body.get("source_id"),
            echo_id=body.get("echo_id"),
            attachments=[(filename, data, mime) for _n, filename, data, mime in call.files],
        )
        if message_type == "incoming":
            self._reopen_on_incoming(conversation)
        self._emit_message(message)
        return self._message_json(message)

    def _update_message_status(self, call):
        conversation = self._conversation_of(call)
        message = next(
            (m for m in conversation["messages"] if m["id"] == call.params["message_id"]), None
        )
        if message is None:
            raise _Answer(404, NOT_FOUND)
        if self.inboxes[conversation["inbox_id"]]["channel_type"] != "Channel::Api":
            raise _Answer(403, {"error": "Status updates are only allowed for API inboxes"})
        status = call.body["status"]
        if not (message["status"] == "read" and status == "delivered"):
            message["status"] = status
        error = call.body.get("external_error") if status == "failed" else None
        message["external_error"] = error
        if error:
            message["content_attributes"]["external_error"] = error
        else:
            message["content_attributes"].pop("external_error", None)
        return self._message_json(message)

    def _toggle_status(self, call):
        conversation = self._conversation_of(call)
        status = call.body["status"]
        handoff = call.role == "bot" and conversation["status"] == "pending" and status == "open"
        self._set_status(conversation, status, call.body.get("snoozed_until"))
        return {
            "meta": {},
            "payload": {
                # Conversation#bot_handoff! answers success null
                "success": None if handoff else True,
                "conversation_id": conversation["id"],
                "current_status": conversation["status"],
                "snoozed_until": conversation["snoozed_until"],
            },
        }

    def _toggle_priority(self, call):
        conversation = self._conversation_of(call)
        priority = call.body["priority"]
        conversation["priority"] = None if priority == "none" else priority
        return _EMPTY

    def _typing(self, call):
        self._conversation_of(call)
        return _EMPTY

    def _assign(self, call):
        conversation = self._conversation_of(call)
        body = call.body
        if body.get("assignee_type") == "AgentBot":
            conversation.update(assignee_id=self.bot["id"], assignee_type="AgentBot")
            return self._bot_push()
        if "assignee_id" in body:
            agent = self.user if body["assignee_id"] == self.user["id"] else None
            conversation["assignee_id"] = agent["id"] if agent else None
            conversation["assignee_type"] = "User" if agent else None
            return self._user_push() if agent else None
        if "team_id" in body:
            conversation["team_id"] = body["team_id"]
            return {"id": body["team_id"], "name": f"team {body['team_id']}"}
        return None

    def _list_labels(self, call):
        return {"payload": list(self._conversation_of(call)["labels"])}

    def _set_labels(self, call):
        conversation = self._conversation_of(call)
        conversation["labels"] = list(dict.fromkeys(call.body["labels"]))
        return {"payload": list(conversation["labels"])}

    def _set_custom_attributes(self, call):
        conversation = self._conversation_of(call)
        attributes = call.body["custom_attributes"]
        _check_attributes("custom_attributes", attributes)
        conversation["custom_attributes"] = dict(attributes)
        return {"custom_attributes": dict(attributes)}

    # -- answer and payload shapes (jbuilder views, webhook_data, push_event_data) ------------

    def _inbox_brief(self, inbox):
        return {
            "id": inbox["id"],
            "avatar_url": "",
            "channel_id": inbox["channel_id"],
            "name": inbox["name"],
            "channel_type": inbox["channel_type"],
            "provider": None,
        }

    def _inbox_json(self, inbox):
        data = {
            **self._inbox_brief(inbox),
            "greeting_enabled": False,
            "greeting_message": None,
            "working_hours_enabled": False,
            "enable_email_collect": True,
            "csat_survey_enabled": False,
            "enable_auto_assignment": True,
            "out_of_office_message": None,
            "timezone": "UTC",
            "callback_webhook_url": None,
            "allow_messages_after_resolved": True,
            "lock_to_single_conversation": inbox["lock_to_single_conversation"],
            "sender_name_type": "friendly",
            "business_name": None,
        }
        if inbox["channel_type"] == "Channel::Api":
            data.update(
                webhook_url=inbox["webhook_url"],
                inbox_identifier=inbox["inbox_identifier"],
                hmac_mandatory=False,
                additional_attributes={},
            )
        else:
            data.update(website_url="https://loja.example.com", website_token="fake-widget")
        return data

    def _contact_json(self, contact):
        contact_inboxes = [
            ci for ci in self.contact_inboxes.values() if ci["contact_id"] == contact["id"]
        ]
        return {
            "additional_attributes": contact["additional_attributes"],
            "availability_status": "offline",
            "email": contact["email"],
            "id": contact["id"],
            "name": contact["name"],
            "phone_number": contact["phone_number"],
            "blocked": False,
            "identifier": contact["identifier"],
            "thumbnail": "",
            "custom_attributes": contact["custom_attributes"],
            "last_activity_at": None,
            "created_at": contact["created_at"],
            "contact_inboxes": [
                {
                    "source_id": ci["source_id"],
                    "inbox": self._inbox_brief(self.inboxes[ci["inbox_id"]]),
                }
                for ci in contact_inboxes
            ],
        }

    def _contact_push(self, contact):
        """A contact in ``meta.sender`` and ``conversation.messages[].sender``."""
        return {
            "additional_attributes": contact["additional_attributes"],
            "custom_attributes": contact["custom_attributes"],
            "email": contact["email"],
            "id": contact["id"],
            "identifier": contact["identifier"],
            "name": contact["name"],
            "phone_number": contact["phone_number"],
            "thumbnail": "",
            "blocked": False,
            "type": "contact",
        }

    def _contact_webhook(self, contact):
        """Contact#webhook_data: the top-level sender of a message webhook (no ``type``)."""
        push = self._contact_push(contact)
        del push["type"]
        return {"account": self._account(), **push, "avatar": ""}

    def _user_push(self):
        return {
            "id": self.user["id"],
            "name": self.user["name"],
            "available_name": self.user["available_name"],
            "avatar_url": "",
            "type": "user",
            "availability_status": "online",
            "thumbnail": "",
        }

    def _bot_push(self):
        return {
            "id": self.bot["id"],
            "name": self.bot["name"],
            "avatar_url": "",
            "type": "agent_bot",
        }

    def _account(self):
        return {"id": self.account_id, "name": self.account_name}

    def _sender_push(self, message):
        if message["sender_type"] == "Contact":
            return self._contact_push(self.contacts[message["sender_id"]])
        if message["sender_type"] == "User":
            return self._user_push()
        return self._bot_push()

    def _sender_webhook(self, message):
        if message["sender_type"] == "Contact":
            return self._contact_webhook(self.contacts[message["sender_id"]])
        if message["sender_type"] == "User":
            user = self.user
            return {"id": user["id"], "name": user["name"], "email": user["email"], "type": "user"}
        return {"id": self.bot["id"], "name": self.bot["name"], "type": "agent_bot"}

    def _attachments_json(self, message):
        hidden = ("filename", "content_type", "data")
        return [
            {key: value for key, value in attachment.items() if key not in hidden}
            for attachment in message["attachments"]
        ]

    def _message_json(self, message):
        """The REST answer for a message (views/api/v1/models/_message.json.jbuilder)."""
        data = {
            "id": message["id"],
            "content": message["content"],
            "inbox_id": message["inbox_id"],
            "conversation_id": message["conversation_id"],
            "message_type": MESSAGE_TYPES[message["message_type"]],
            "content_type": message["content_type"],
            "status": message["status"],
            "content_attributes": message["content_attributes"],
            "created_at": int(message["created_at"]),
            "private": message["private"],
            "source_id": message["source_id"],
            "sender": self._sender_push(message),
        }
        if message["echo_id"]:
            data["echo_id"] = message["echo_id"]
        if message["attachments"]:
            data["attachments"] = self._attachments_json(message)
        return data

    def _message_push(self, message, conversation):
        """A message inside a conversation payload (Message#push_event_data)."""
        contact_inbox = self.contact_inboxes[conversation["contact_inbox_id"]]
        data = {
            "id": message["id"],
            "content": message["content"],
            "account_id": self.account_id,
            "inbox_id": message["inbox_id"],
            "conversation_id": message["conversation_id"],
            "message_type": MESSAGE_TYPES[message["message_type"]],
            "created_at": int(message["created_at"]),
            "updated_at": _iso(message["created_at"]),
            "private": message["private"],
            "status": message["status"],
            "source_id": message["source_id"],
            "content_type": message["content_type"],
            "content_attributes": message["content_attributes"],
            "sender_type": message["sender_type"],
            "sender_id": message["sender_id"],
            "external_source_ids": {},
            "additional_attributes": {},
            "processed_message_content": message["content"],
            "sentiment": {},
            "conversation": {
                "assignee_id": conversation["assignee_id"],
                "unread_count": 1,
                "last_activity_at": conversation["last_activity_at"],
                "contact_inbox": {"source_id": contact_inbox["source_id"]},
            },
            "sender": self._sender_push(message),
        }
        if message["attachments"]:
            data["attachments"] = self._attachments_json(message)
        return data

    def _last_chat_message(self, conversation):
        chat = [
            message
            for message in conversation["messages"]
            if message["message_type"] in CHAT_MESSAGE_TYPES and not message["private"]
        ]
        return [self._message_push(chat[-1], conversation)] if chat else []

    def _meta(self, conversation):
        assignee = None
        if conversation["assignee_type"] == "User":
            assignee = self._user_push()
        elif conversation["assignee_type"] == "AgentBot":
            assignee = self._bot_push()
        team = conversation["team_id"]
        return {
            "sender": self._contact_push(self.contacts[conversation["contact_id"]]),
            "assignee": assignee,
            "assignee_type": conversation["assignee_type"],
            "team": {"id": team, "name": f"team {team}"} if team else None,
            "hmac_verified": False,
        }

    def _conversation_push(self, conversation):
        """Conversation#webhook_data (Conversations::EventDataPresenter#push_data): no
        account, ``id`` is the display id, ``messages`` holds the last chat message only."""
        inbox = self.inboxes[conversation["inbox_id"]]
        return {
            "additional_attributes": conversation["additional_attributes"],
            "can_reply": True,
            "channel": inbox["channel_type"],
            "contact_inbox": dict(self.contact_inboxes[conversation["contact_inbox_id"]]),
            "id": conversation["id"],
            "inbox_id": conversation["inbox_id"],
            "messages": self._last_chat_message(conversation),
            "labels": list(conversation["labels"]),
            "meta": self._meta(conversation),
            "status": conversation["status"],
            "custom_attributes": conversation["custom_attributes"],
            "snoozed_until": conversation["snoozed_until"],
            "unread_count": 1,
            "first_reply_created_at": None,
            "priority": conversation["priority"],
            "waiting_since": conversation["waiting_since"],
            "agent_last_seen_at": 0,
            "contact_last_seen_at": 0,
            "last_activity_at": conversation["last_activity_at"],
            "timestamp": conversation["last_activity_at"],
            "created_at": conversation["created_at"],
            "updated_at": conversation["updated_at"],
        }

    def _conversation_json(self, conversation):
        """The REST answer for a conversation (conversations/partials/_conversation)."""
        inbox = self.inboxes[conversation["inbox_id"]]
        meta = self._meta(conversation)
        meta["channel"] = inbox["channel_type"]
        return {
            "meta": meta,
            "id": conversation["id"],
            "messages": self._last_chat_message(conversation),
            "account_id": self.account_id,
            "uuid": conversation["uuid"],
            "additional_attributes": conversation["additional_attributes"],
            "agent_last_seen_at": 0,
            "assignee_last_seen_at": 0,
            "can_reply": True,
            "contact_last_seen_at": 0,
            "custom_attributes": conversation["custom_attributes"],
            "inbox_id": conversation["inbox_id"],
            "labels": list(conversation["labels"]),
            "muted": False,
            "snoozed_until": conversation["snoozed_until"],
            "status": conversation["status"],
            "created_at": conversation["created_at"],
            "updated_at": conversation["updated_at"],
            "timestamp": conversation["last_activity_at"],
            "first_reply_created_at": None,
            "unread_count": 1,
            "last_activity_at": conversation["last_activity_at"],
            "priority": conversation["priority"],
            "waiting_since": conversation["waiting_since"],
        }

    def _message_webhook(self, message):
        """Message#webhook_data, as in the wh_message_created_*.json samples."""
        conversation = self.conversations[message["conversation_id"]]
        inbox = self.inboxes[message["inbox_id"]]
        data = {
            "account": self._account(),
            "additional_attributes": {},
            "content_attributes": message["content_attributes"],
            "content_type": message["content_type"],
            "content": message["content"],
            "conversation": self._conversation_push(conversation),
            "created_at": _iso(message["created_at"]),
            "id": message["id"],
            "inbox": {"id": inbox["id"], "name": inbox["name"]},
            "message_type": message["message_type"],
            "private": message["private"],
            "sender": self._sender_webhook(message),
            "source_id": message["source_id"],
        }
        if message["attachments"]:
            data["attachments"] = self._attachments_json(message)
        return data


def _write(handler, status, payload, headers):
    if payload is _EMPTY:
        data, content_type = b"", None
    elif isinstance(payload, str):
        data, content_type = payload.encode(), "text/plain; charset=utf-8"
    else:
        data, content_type = json.dumps(payload).encode(), "application/json; charset=utf-8"
    # a client that timed out has hung up before a slow answer is written
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        handler.send_response(status)
        if content_type:
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
