"""Cache keys: ``<namespace>:account_<id>:<module>:<resource_type>:<resource_id>:<action>``.

Every key is made of the parts :func:`key_parts` checks (``Cache.key`` keeps the checked parts that
do not depend on the resource), so no input can make two different requests share a key or reach
another tenant's keys:

- ``namespace``, ``module``, ``resource_type`` and ``action`` are identifiers chosen by code;
  anything outside ``[a-z0-9_.-]{1,64}`` is refused rather than escaped: it is a programming error.
- ``account_id`` is a positive integer (never a string, never a bool), and always comes from the
  tenant record, not from request data.
- ``resource_id`` is data: simple ids (``123``, ``SKU-1``) stay readable; anything else (a ``:``,
  whitespace, unicode, a dict of arguments) becomes ``h~<sha256>`` of its canonical JSON. ``~`` is
  not a readable-id character, so a hashed id can never equal a readable one.

Redis Cluster: keys carry no ``{hash tag}``. The supported topologies (one server, or Sentinel
failover) are unsharded; on Cluster the generation check reads several keys at once, which would
need ``{account_<id>}`` as the tenant part so that a tenant's keys share a slot, at the price of
one hot slot per big tenant. That change would live here alone.
"""

import hashlib
import json
import re

IDENTIFIER = re.compile(r"[a-z0-9_.-]{1,64}")
READABLE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NO_RESOURCE = "~"


class InvalidKeyPart(ValueError):
    """A key part that could collide with another key or escape its tenant."""


def check_identifier(kind, value):
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise InvalidKeyPart(
            f"invalid cache key {kind} {value!r}: use 1-64 characters of [a-z0-9_.-]"
        )
    return value


def check_account_id(account_id):
    if isinstance(account_id, bool) or not isinstance(account_id, int) or account_id <= 0:
        raise InvalidKeyPart(f"invalid account id {account_id!r}: a positive integer is required")
    return account_id


# One encoder for the process: json.dumps with options builds a new encoder on every call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
)


def canonical_json(value):
    """One spelling per value, so equal arguments give equal keys."""
    return _CANONICAL.encode(value)


def resource_part(resource_id):
    if resource_id is None:
        return NO_RESOURCE
    if isinstance(resource_id, int) and not isinstance(resource_id, bool):
        return str(resource_id)
    if isinstance(resource_id, str) and READABLE_ID.fullmatch(resource_id):
        return resource_id
    digest = hashlib.sha256(canonical_json(resource_id).encode()).hexdigest()
    return f"h~{digest[:40]}"


def tenant_prefix(namespace, account_id):
    return f"{check_identifier('namespace', namespace)}:account_{check_account_id(account_id)}"


def key_parts(namespace, account_id, module, resource_type, resource_id, action):
    """The checked parts of a key: tenant prefix, module, resource type, resource, action."""
    return (
        tenant_prefix(namespace, account_id),
        check_identifier("module", module),
        check_identifier("resource type", resource_type),
        resource_part(resource_id),
        check_identifier("action", action),
    )


def build_key(namespace, account_id, module, resource_type, resource_id, action):
    return ":".join(key_parts(namespace, account_id, module, resource_type, resource_id, action))
