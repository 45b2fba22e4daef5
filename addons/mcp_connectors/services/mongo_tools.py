"""MongoDB tool set ("MCP-MongoDB"): tenant configuration, behaviour document, bounded finds.

Plain Python, no Odoo import. Every tenant (a Chatwoot account id) owns the collections named
``t<account_id>_<purpose>``: ``config`` (key/value pairs), ``behaviour`` (the "ATA" document the
agents follow: tone, hours, services, rules) and whatever collections an admin allow-listed for
``find``. Callers name a collection by its purpose only; the tenant prefix is always added here,
so no name can reach another tenant's collection.

``find`` filters come from a model, so they are checked before they reach the server: only
query operators from :data:`FILTER_OPERATORS` (nothing that runs code or reads another
collection), bounded depth, size, regex length and result count.

The client is real ``pymongo`` (pooled, every timeout set) cached per process and re-created
after fork, as ``MongoClient`` is not fork-safe. Tests inject ``mongomock.MongoClient`` as
``client_factory``.
"""

import datetime
import math
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_FIND_LIMIT = 100
DEFAULT_FIND_LIMIT = 20
MAX_FILTER_DEPTH = 8
MAX_FILTER_NODES = 200
MAX_LIST_ITEMS = 100
MAX_REGEX_LENGTH = 200
MAX_PROJECTION_FIELDS = 50
MAX_SORT_KEYS = 5
MAX_FIELD_LENGTH = 128
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_ACCOUNT_ID = 2**53 - 1  # Chatwoot ids are JSON numbers
BEHAVIOUR_DOCUMENT_ID = "behaviour"
BEHAVIOUR_REQUIRED = {"tone": str, "hours": dict, "services": list, "business_rules": str}

COMPARISON_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
LIST_OPERATORS = frozenset({"$in", "$nin", "$all"})
LOGICAL_OPERATORS = frozenset({"$and", "$or", "$nor"})
FIELD_OPERATORS = (
    COMPARISON_OPERATORS
    | LIST_OPERATORS
    | {
        "$not",
        "$exists",
        "$type",
        "$regex",
        "$options",
        "$size",
        "$elemMatch",
    }
)
FILTER_OPERATORS = LOGICAL_OPERATORS | FIELD_OPERATORS
# $type aliases (MongoDB manual, "$type"); numeric codes and lists are left out on purpose.
TYPE_ALIASES = frozenset(
    {
        "double",
        "string",
        "object",
        "array",
        "binData",
        "objectId",
        "bool",
        "date",
        "null",
        "regex",
        "int",
        "timestamp",
        "long",
        "decimal",
        "number",
    }
)
REGEX_OPTIONS = frozenset("imsx")

_PURPOSE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DATABASE = re.compile(r"[A-Za-z0-9_-]{1,63}")
_CONFIG_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# A repeated group that holds a quantifier or an alternation, e.g. (a+)+, (x*){2,} or
# (a|aa)*: exponential backtracking. Refused even when harmless, as telling them apart is hard.
_NESTED_QUANTIFIER = re.compile(r"[*+}]\)+[*+{]|\|[^()]*\)+[*+{]")
_BACKREFERENCE = re.compile(r"\\[1-9]|\\k<")
_SECRET_QUERY_KEY = re.compile(r"password|secret|token|mechanismproperties", re.IGNORECASE)
REDACTED = "***"


class MongoToolError(Exception):
    """Base of every error of this module; its message is safe to show (no credentials)."""


class MongoConfigError(MongoToolError, ValueError):
    """The connection settings or an admin's allow-list are invalid."""


class MongoRefused(MongoToolError):
    """The request is not allowed: a collection not allow-listed, a bad name, operator or value."""


class MongoUnavailable(MongoToolError):
    """MongoDB cannot be reached or did not answer in time."""


def redact_uri(uri):
    """``uri`` with its password and secret query values replaced by ``***``."""
    return _without_uri_secrets(uri, uri)


def _without_uri_secrets(text, uri):
    for secret in _uri_secrets(uri):
        text = text.replace(secret, REDACTED)
    return text


def _uri_secrets(uri):
    """The credential strings of ``uri``, as written and percent-decoded, longest first."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return ()
    userinfo, at, _hosts = parts.netloc.rpartition("@")
    found = set()
    if at and ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        if _SECRET_QUERY_KEY.search(key):
            found.add(value)
    found |= {unquote(secret) for secret in found}
    found.discard("")
    return sorted(found, key=len, reverse=True)


@dataclass(frozen=True, repr=False)
class MongoSettings:
    """Where the tenants' documents live. Invalid values raise :class:`MongoConfigError`."""

    uri: str
    database: str
    timeout_ms: int = 2000
    max_pool_size: int = 10

    def __post_init__(self):
        if not isinstance(self.uri, str) or not self.uri.startswith(
            ("mongodb://", "mongodb+srv://")
        ):
            raise MongoConfigError("The MongoDB URI must start with mongodb:// or mongodb+srv://.")
        if not isinstance(self.database, str) or not _DATABASE.fullmatch(self.database):
            raise MongoConfigError(
                "The MongoDB database name must be 1-63 letters, digits, '_' or '-'."
            )
        if not _is_int(self.timeout_ms) or not 100 <= self.timeout_ms <= 60000:
            raise MongoConfigError("The MongoDB timeout must be between 100 and 60000 ms.")
        if not _is_int(self.max_pool_size) or not 1 <= self.max_pool_size <= 500:
            raise MongoConfigError("The MongoDB pool size must be between 1 and 500.")

    def __repr__(self):
        return (
            f"MongoSettings(uri={self.redacted_uri!r}, database={self.database!r}, "
            f"timeout_ms={self.timeout_ms}, max_pool_size={self.max_pool_size})"
        )

    @property
    def redacted_uri(self):
        return redact_uri(self.uri)

    def scrub(self, text):
        """``text`` without any credential of the URI."""
        return _without_uri_secrets(str(text), self.uri)

    def client_options(self):
        """The pymongo options: every network wait bounded, a bounded pool."""
        return {
            "serverSelectionTimeoutMS": self.timeout_ms,
            "connectTimeoutMS": self.timeout_ms,
            "socketTimeoutMS": self.timeout_ms,
            "maxPoolSize": self.max_pool_size,
        }


_clients = {}
_clients_pid = os.getpid()
_clients_lock = threading.Lock()


def shared_client(settings, client_factory=None):
    """This process's client for ``settings`` (one pool per settings and factory).

    ``client_factory(uri, **options)`` defaults to ``pymongo.MongoClient``. After a fork the
    parent's clients are dropped without being touched: their sockets and monitor threads
    belong to the parent.
    """
    global _clients_pid
    factory = client_factory
    if factory is None:
        import pymongo

        factory = pymongo.MongoClient
    with _clients_lock:
        if _clients_pid != os.getpid():
            _clients.clear()
            _clients_pid = os.getpid()
        key = (settings, factory)
        client = _clients.get(key)
        if client is None:
            with _translated_errors(settings, "connecting"):
                try:
                    client = factory(settings.uri, **settings.client_options())
                except (ValueError, TypeError) as exc:
                    # The URI parser raises these for a malformed host or port.
                    detail = _clip(settings.scrub(exc))
                    raise MongoConfigError(
                        f"MongoDB at {settings.redacted_uri}: invalid URI or option: {detail}"
                    ) from None
            _clients[key] = client
        return client


def close_clients():
    """Close this process's clients (at shutdown, or when the settings change)."""
    with _clients_lock:
        clients = list(_clients.values()) if _clients_pid == os.getpid() else []
        _clients.clear()
    for client in clients:
        client.close()


@contextmanager
def _translated_errors(settings, action):
    """Turn driver errors into this module's errors, with every credential scrubbed.

    The original exception is not chained: its text and its traceback may carry the URI.
    """
    from pymongo.errors import PyMongoError

    try:
        yield
    except PyMongoError as exc:
        raise _translate(exc, settings, action) from None


def _translate(exc, settings, action):
    from pymongo import errors as mongo_errors

    where = f"MongoDB at {settings.redacted_uri}"
    if isinstance(exc, mongo_errors.ExecutionTimeout):
        return MongoUnavailable(f"{where} did not finish {action} within {settings.timeout_ms} ms.")
    if isinstance(exc, mongo_errors.ConnectionFailure):
        detail = _clip(settings.scrub(exc))
        return MongoUnavailable(f"{where} is unavailable ({action}): {detail}")
    if isinstance(exc, mongo_errors.OperationFailure) and exc.code in (13, 18):
        return MongoUnavailable(f"{where} refused the credentials or the access ({action}).")
    if isinstance(exc, mongo_errors.ConfigurationError):
        return MongoConfigError(f"{where}: invalid configuration: {_clip(settings.scrub(exc))}")
    detail = _clip(settings.scrub(exc))
    return MongoToolError(f"{where} failed {action}: {type(exc).__name__}: {detail}")


def _clip(text, limit=300):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# Names -----------------------------------------------------------------------------------------


def _check_account(account_id):
    if not _is_int(account_id) or not 0 < account_id <= MAX_ACCOUNT_ID:
        raise MongoRefused(f"Invalid tenant account id {account_id!r}: a positive integer.")
    return account_id


def _check_purpose(purpose):
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise MongoRefused(
            f"Invalid collection name {_clip(repr(purpose), 80)}: 1-64 lowercase letters, "
            "digits or '_', starting with a letter."
        )
    if purpose.startswith("system"):
        raise MongoRefused(f"Invalid collection name {purpose!r}: 'system' names are reserved.")
    return purpose


def tenant_collection_name(account_id, purpose):
    """The collection ``purpose`` of tenant ``account_id``: ``t<account_id>_<purpose>``.

    The purpose starts with a letter, so the account id ends at the first ``_`` and two tenants
    never get the same name.
    """
    return f"t{_check_account(account_id)}_{_check_purpose(purpose)}"


def _check_allow_list(allowed_collections):
    if isinstance(allowed_collections, str):
        raise MongoConfigError("The allowed collections must be a list of names, not a string.")
    names = set()
    for name in allowed_collections or ():
        try:
            names.add(_check_purpose(name))
        except MongoRefused as exc:
            raise MongoConfigError(f"Allowed collections: {exc}") from None
    return frozenset(names)


def _check_field(name, what="field"):
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_FIELD_LENGTH
        or name.startswith(("$", "."))
        or name.endswith(".")
        or "\x00" in name
        or ".." in name
    ):
        raise MongoRefused(f"Invalid {what} name {_clip(repr(name), 80)}.")
    return name


# Filters ---------------------------------------------------------------------------------------


class _FilterBudget:
    """Counts the nodes of one filter, so a huge filter is refused, not sent."""

    def __init__(self):
        self.nodes = 0

    def spend(self, depth):
        self.nodes += 1
        if self.nodes > MAX_FILTER_NODES:
            raise MongoRefused(f"The filter is too large (more than {MAX_FILTER_NODES} parts).")
        if depth > MAX_FILTER_DEPTH:
            raise MongoRefused(f"The filter is nested too deeply (more than {MAX_FILTER_DEPTH}).")


def validate_filter(query):
    """Check a ``find`` filter; return it unchanged or raise :class:`MongoRefused`."""
    if query is None:
        return {}
    if not isinstance(query, dict):
        raise MongoRefused("The filter must be an object.")
    _check_query(query, _FilterBudget(), depth=1)
    return query


def _check_query(query, budget, depth):
    """A query document: field conditions and logical operators."""
    budget.spend(depth)
    for key, value in query.items():
        if isinstance(key, str) and key.startswith("$"):
            if key not in LOGICAL_OPERATORS:
                raise _operator_refused(key, "at the top of a query")
            _check_clauses(key, value, budget, depth + 1)
        else:
            _check_condition(_check_field(key), value, budget, depth + 1)


def _check_clauses(operator, clauses, budget, depth):
    if not isinstance(clauses, list) or not clauses:
        raise MongoRefused(f"{operator} takes a non-empty list of filters.")
    if len(clauses) > MAX_LIST_ITEMS:
        raise MongoRefused(f"{operator} takes at most {MAX_LIST_ITEMS} filters.")
    for clause in clauses:
        if not isinstance(clause, dict):
            raise MongoRefused(f"{operator} takes a list of filter objects.")
        _check_query(clause, budget, depth)


def _check_condition(field, value, budget, depth):
    """The condition on one field: a literal (equality) or an object of field operators."""
    if isinstance(value, dict) and any(_is_operator(key) for key in value):
        _check_operators(field, value, budget, depth)
    else:
        _check_literal(value, budget, depth)


def _is_operator(key):
    return isinstance(key, str) and key.startswith("$")


def _check_operators(field, operators, budget, depth):
    budget.spend(depth)
    if not all(_is_operator(key) for key in operators):
        raise MongoRefused(f"The condition on {field!r} mixes operators and field names.")
    if "$options" in operators and "$regex" not in operators:
        raise MongoRefused("$options is only allowed next to $regex.")
    for operator, argument in operators.items():
        if operator not in FIELD_OPERATORS:
            raise _operator_refused(operator, f"on {field!r}")
        if operator == "$regex":
            _check_regex(argument, operators.get("$options", ""))
        elif operator != "$options":  # checked with its $regex
            _check_argument(field, operator, argument, budget, depth + 1)


def _check_argument(field, operator, argument, budget, depth):
    if operator in COMPARISON_OPERATORS:
        _check_literal(argument, budget, depth)
    elif operator in LIST_OPERATORS:
        if not isinstance(argument, list) or len(argument) > MAX_LIST_ITEMS:
            raise MongoRefused(f"{operator} takes a list of at most {MAX_LIST_ITEMS} values.")
        _check_literal(argument, budget, depth)
    elif operator == "$not":
        if not isinstance(argument, dict) or not argument:
            raise MongoRefused("$not takes an object of operators.")
        _check_operators(field, argument, budget, depth)
    elif operator == "$elemMatch":
        _check_elem_match(field, argument, budget, depth)
    elif operator == "$exists":
        if not isinstance(argument, bool):
            raise MongoRefused("$exists takes true or false.")
    elif operator == "$type":
        if not isinstance(argument, str) or argument not in TYPE_ALIASES:
            raise MongoRefused(f"$type takes one of: {', '.join(sorted(TYPE_ALIASES))}.")
    elif operator == "$size" and (not _is_int(argument) or argument < 0):
        raise MongoRefused("$size takes a non-negative integer.")


def _check_elem_match(field, argument, budget, depth):
    """``$elemMatch`` takes a query on the elements' fields or operators on the elements."""
    if not isinstance(argument, dict) or not argument:
        raise MongoRefused("$elemMatch takes a non-empty object.")
    if all(_is_operator(key) and key in FIELD_OPERATORS for key in argument):
        _check_operators(field, argument, budget, depth)
    else:
        _check_query(argument, budget, depth)


def _check_regex(pattern, options):
    if not isinstance(pattern, str) or len(pattern) > MAX_REGEX_LENGTH:
        raise MongoRefused(f"$regex takes a string of at most {MAX_REGEX_LENGTH} characters.")
    if _NESTED_QUANTIFIER.search(pattern) or _BACKREFERENCE.search(pattern):
        raise MongoRefused(
            "$regex patterns with nested quantifiers, repeated alternations or back-references "
            "are not allowed."
        )
    if not isinstance(options, str) or not set(options) <= REGEX_OPTIONS:
        raise MongoRefused(f"$options takes only the letters {''.join(sorted(REGEX_OPTIONS))}.")


def _check_literal(value, budget, depth):
    """A plain JSON value to compare with: no operator may hide inside it."""
    budget.spend(depth)
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise MongoRefused("Numbers in a filter must be finite.")
        return
    if isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            raise MongoRefused(f"Lists in a filter take at most {MAX_LIST_ITEMS} values.")
        for item in value:
            _check_literal(item, budget, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if _is_operator(key):
                raise _operator_refused(key, "inside a value")
            _check_field(key)
            _check_literal(item, budget, depth + 1)
        return
    raise MongoRefused(f"Values of type {type(value).__name__} are not allowed in a filter.")


def _operator_refused(operator, where):
    shown = _clip(repr(operator), 60)
    return MongoRefused(
        f"Operator {shown} is not allowed {where}; allowed: {', '.join(sorted(FILTER_OPERATORS))}."
    )


def validate_projection(projection):
    """A projection: a list of field names, or an object of field names to 0/1 (not mixed)."""
    if projection is None:
        return None
    if isinstance(projection, list):
        projection = dict.fromkeys(projection, 1)
    if not isinstance(projection, dict) or not projection:
        raise MongoRefused("The projection must be a non-empty list of fields or an object.")
    if len(projection) > MAX_PROJECTION_FIELDS:
        raise MongoRefused(f"The projection takes at most {MAX_PROJECTION_FIELDS} fields.")
    modes = set()
    for field, mode in projection.items():
        _check_field(field, "projection field")
        if mode not in (0, 1) or not isinstance(mode, (int, bool)):
            raise MongoRefused(f"Projection of {field!r} must be 0 or 1 (or false/true).")
        if field != "_id":
            modes.add(bool(mode))
    if len(modes) > 1:
        raise MongoRefused("The projection cannot both include and exclude fields (except _id).")
    return {field: int(mode) for field, mode in projection.items()}


def validate_sort(sort):
    """A sort: an object or a list of ``[field, 1|-1]`` pairs; returned as a list of pairs."""
    if sort is None:
        return None
    pairs = list(sort.items()) if isinstance(sort, dict) else sort
    if not isinstance(pairs, list) or not pairs or len(pairs) > MAX_SORT_KEYS:
        raise MongoRefused(f"The sort takes 1 to {MAX_SORT_KEYS} [field, 1 or -1] pairs.")
    checked = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise MongoRefused("Each sort key is a [field, 1 or -1] pair.")
        field, direction = pair
        if not _is_int(direction) or direction not in (1, -1):
            raise MongoRefused(f"Sort direction of {field!r} must be 1 or -1.")
        checked.append((_check_field(field, "sort field"), direction))
    return checked


def clamp_limit(limit):
    """``limit`` within 1..MAX_FIND_LIMIT (MongoDB reads 0 as "no limit", so it becomes 1)."""
    if limit is None:
        return DEFAULT_FIND_LIMIT
    if not _is_int(limit):
        raise MongoRefused("The limit must be an integer.")
    return min(max(limit, 1), MAX_FIND_LIMIT)


# Documents -------------------------------------------------------------------------------------


def to_json(value):
    """``value`` as JSON-able data: ids and decimals as strings, dates as ISO 8601, no bytes."""
    from bson import Regex, Timestamp

    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, datetime.datetime):
        # pymongo hands back naive datetimes that are UTC.
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Timestamp):
        return value.as_datetime().isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, Regex):
        return value.pattern
    # ObjectId, Decimal128, UUID and the other BSON types read best as their text form.
    return str(value)


def _check_document(document, what):
    """A document to store: JSON data with storable keys and a bounded size."""
    from bson import encode

    _check_stored_value(document, what, depth=0)
    size = len(encode({"document": document}))
    if size > MAX_DOCUMENT_BYTES:
        raise MongoRefused(f"The {what} is too large ({size} bytes, at most {MAX_DOCUMENT_BYTES}).")


def _check_stored_value(value, what, depth):
    if depth > 32:
        raise MongoRefused(f"The {what} is nested too deeply.")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key or key.startswith("$") or "." in key:
                raise MongoRefused(
                    f"The {what} has an invalid key {_clip(repr(key), 60)} "
                    "(keys are non-empty strings without '.' or a leading '$')."
                )
            if "\x00" in key:
                raise MongoRefused(f"The {what} has a key with a NUL character.")
            _check_stored_value(item, what, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_stored_value(item, what, depth + 1)
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise MongoRefused(f"The {what} holds a {type(value).__name__}; only JSON data is stored.")
    elif isinstance(value, float) and not math.isfinite(value):
        raise MongoRefused(f"The {what} holds a non-finite number.")


def validate_behaviour(document):
    """Check the behaviour document ("ATA") the Odoo side publishes; return it unchanged.

    It needs ``tone``, ``hours``, ``services`` and ``business_rules`` (as
    ``mcp.tenant._behaviour_profile()`` produces them); other keys are kept as they are.
    """
    if not isinstance(document, dict):
        raise MongoRefused("The behaviour document must be an object.")
    for key, kind in BEHAVIOUR_REQUIRED.items():
        if key not in document:
            raise MongoRefused(f"The behaviour document has no {key!r}.")
        if not isinstance(document[key], kind):
            raise MongoRefused(f"The behaviour document's {key!r} must be a {kind.__name__}.")
    _check_document(document, "behaviour document")
    return document


# Tools -----------------------------------------------------------------------------------------


class MongoTools:
    """The MongoDB tools of one deployment; every call names the tenant (its account id)."""

    def __init__(self, settings, client_factory=None):
        if not isinstance(settings, MongoSettings):
            raise MongoConfigError("MongoTools needs MongoSettings.")
        self.settings = settings
        self.client_factory = client_factory

    def _collection(self, account_id, purpose):
        name = tenant_collection_name(account_id, purpose)
        client = shared_client(self.settings, self.client_factory)
        return client[self.settings.database][name]

    def get_behaviour(self, account_id):
        """The tenant's behaviour document, or ``None`` when none was published."""
        collection = self._collection(account_id, "behaviour")
        with _translated_errors(self.settings, "reading the behaviour document"):
            stored = collection.find_one({"_id": BEHAVIOUR_DOCUMENT_ID}, max_time_ms=self._ms)
        if stored is None:
            return None
        if not isinstance(stored.get("document"), dict):
            raise MongoToolError(
                f"The stored behaviour document of account {account_id} is malformed; "
                "publish it again."
            )
        behaviour = to_json(stored["document"])
        behaviour["published_at"] = to_json(stored.get("published_at"))
        return behaviour

    def put_behaviour(self, account_id, document):
        """Publish the tenant's behaviour document (replaces the previous one)."""
        validate_behaviour(document)
        if document.get("account_id", account_id) != account_id:
            raise MongoRefused("The behaviour document belongs to another account.")
        collection = self._collection(account_id, "behaviour")
        now = datetime.datetime.now(datetime.timezone.utc)
        # BSON dates hold milliseconds: report the instant as it is stored.
        published_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
        with _translated_errors(self.settings, "writing the behaviour document"):
            collection.replace_one(
                {"_id": BEHAVIOUR_DOCUMENT_ID},
                {"document": document, "published_at": published_at},
                upsert=True,
            )
        return {"account_id": account_id, "published_at": to_json(published_at)}

    def get_config(self, account_id, key):
        """``{"key", "value"}`` of the tenant's configuration entry ``key``, or ``None``."""
        key = _check_config_key(key)
        collection = self._collection(account_id, "config")
        with _translated_errors(self.settings, "reading the configuration"):
            stored = collection.find_one({"_id": key}, max_time_ms=self._ms)
        if stored is None:
            return None
        return {"key": key, "value": to_json(stored.get("value"))}

    def put_config(self, account_id, key, value):
        """Set the tenant's configuration entry ``key`` to the JSON value ``value``."""
        key = _check_config_key(key)
        _check_document({"value": value}, f"configuration value of {key!r}")
        collection = self._collection(account_id, "config")
        with _translated_errors(self.settings, "writing the configuration"):
            collection.replace_one({"_id": key}, {"value": value}, upsert=True)
        return {"key": key}

    def find(
        self,
        account_id,
        collection,
        filter=None,  # pylint: disable=redefined-builtin  # MongoDB's and the tool's name
        projection=None,
        limit=DEFAULT_FIND_LIMIT,
        sort=None,
        allowed_collections=(),
    ):
        """Documents of the tenant's allow-listed ``collection`` matching ``filter``.

        Returns ``{"collection", "documents", "limit", "truncated"}``; ``truncated`` says more
        documents match than ``limit`` (at most :data:`MAX_FIND_LIMIT`).
        """
        _check_account(account_id)
        purpose = _check_purpose(collection)
        if purpose not in _check_allow_list(allowed_collections):
            raise MongoRefused(f"Collection {purpose!r} is not allow-listed for this tenant.")
        query = validate_filter(filter)
        fields = validate_projection(projection)
        order = validate_sort(sort)
        limit = clamp_limit(limit)
        target = self._collection(account_id, purpose)
        with _translated_errors(self.settings, f"searching {purpose!r}"):
            cursor = target.find(query, fields).limit(limit + 1).max_time_ms(self._ms)
            if order:
                cursor = cursor.sort(order)
            documents = list(cursor)
        return {
            "collection": purpose,
            "documents": [_with_string_id(document) for document in documents[:limit]],
            "limit": limit,
            "truncated": len(documents) > limit,
        }

    def call_tool(self, account_id, name, arguments, allowed_collections=()):
        """Run the tool ``name`` (see :func:`tool_descriptors`) with its MCP ``arguments``."""
        arguments = arguments or {}
        if not isinstance(arguments, dict):
            raise MongoRefused("Tool arguments must be an object.")
        if name == "mongo_get_behaviour":
            return self.get_behaviour(account_id)
        if name == "mongo_get_config":
            return self.get_config(account_id, arguments.get("key"))
        if name == "mongo_find":
            return self.find(
                account_id,
                arguments.get("collection"),
                filter=arguments.get("filter"),
                projection=arguments.get("projection"),
                limit=arguments.get("limit", DEFAULT_FIND_LIMIT),
                sort=arguments.get("sort"),
                allowed_collections=allowed_collections,
            )
        raise MongoRefused(f"Unknown MongoDB tool {_clip(repr(name), 60)}.")

    @property
    def _ms(self):
        return self.settings.timeout_ms


def _check_config_key(key):
    if not isinstance(key, str) or not _CONFIG_KEY.fullmatch(key):
        raise MongoRefused(
            f"Invalid configuration key {_clip(repr(key), 80)}: 1-128 letters, digits, '_.:-'."
        )
    return key


def _with_string_id(document):
    converted = to_json(document)
    if "_id" in converted:
        converted["_id"] = str(converted["_id"])
    return converted


# Descriptors -----------------------------------------------------------------------------------

_READ_ONLY = {"read_only": True, "destructive": False, "idempotent": True, "open_world": False}


def tool_descriptors(allowed_collections=None):
    """The MCP definitions of the MongoDB tools, for the Odoo side to register.

    The tenant is never an argument: it comes from the caller's context. With
    ``allowed_collections`` the ``collection`` argument is limited to those names.
    """
    collection_schema = {
        "type": "string",
        "pattern": _PURPOSE.pattern.join("^$"),
        "description": "Name of an allow-listed collection of this tenant (without prefix).",
    }
    if allowed_collections is not None:
        collection_schema["enum"] = sorted(_check_allow_list(allowed_collections))
    return [
        {
            "name": "mongo_get_behaviour",
            "description": (
                "The tenant's behaviour document: tone, personality, language, opening hours, "
                "holidays, services and business rules. Null when none was published."
            ),
            "input_schema": {"type": "object", "properties": {}, "additionalProperties": False},
            "annotations": dict(_READ_ONLY),
        },
        {
            "name": "mongo_get_config",
            "description": "One configuration entry of the tenant, {key, value}; null if unset.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "key": {"type": "string", "pattern": _CONFIG_KEY.pattern.join("^$")},
                },
                "required": ["key"],
                "additionalProperties": False,
            },
            "annotations": dict(_READ_ONLY),
        },
        {
            "name": "mongo_find",
            "description": (
                "Find documents in one of the tenant's allow-listed collections. The filter "
                "uses MongoDB query operators: "
                + ", ".join(sorted(FILTER_OPERATORS))
                + f". At most {MAX_FIND_LIMIT} documents; 'truncated' says more matched."
            ),
            "input_schema": {
                "type": "object",
                "properties": {
                    "collection": collection_schema,
                    "filter": {"type": "object", "description": "MongoDB query filter."},
                    "projection": {
                        "oneOf": [
                            {
                                "type": "array",
                                "items": {"type": "string"},
                                "maxItems": MAX_PROJECTION_FIELDS,
                            },
                            {
                                "type": "object",
                                "additionalProperties": {"enum": [0, 1, True, False]},
                                "maxProperties": MAX_PROJECTION_FIELDS,
                            },
                        ],
                        "description": "Fields to return (list or {field: 1}) or omit ({f: 0}).",
                    },
                    "limit": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_FIND_LIMIT,
                        "default": DEFAULT_FIND_LIMIT,
                    },
                    "sort": {
                        "type": "array",
                        "items": {
                            "type": "array",
                            "prefixItems": [{"type": "string"}, {"enum": [1, -1]}],
                            "minItems": 2,
                            "maxItems": 2,
                        },
                        "maxItems": MAX_SORT_KEYS,
                        "description": "[[field, 1 or -1], ...]",
                    },
                },
                "required": ["collection"],
                "additionalProperties": False,
            },
            "annotations": dict(_READ_ONLY),
        },
    ]


__all__ = [
    "FILTER_OPERATORS",
    "MAX_FIND_LIMIT",
    "MongoConfigError",
    "MongoRefused",
    "MongoSettings",
    "MongoToolError",
    "MongoTools",
    "MongoUnavailable",
    "clamp_limit",
    "close_clients",
    "redact_uri",
    "shared_client",
    "tenant_collection_name",
    "to_json",
    "tool_descriptors",
    "validate_behaviour",
    "validate_filter",
    "validate_projection",
    "validate_sort",
]
