"""The fixed deny-list for Odoo data reached by models: agents' tools and ``/mcp`` clients.

Plain Python, no Odoo import. Nothing here is configurable: no setting, allow-list or group
can lift a refusal. It sits on top of Odoo's own access rights and record rules (the tools
run as a technical user, an ``/mcp`` client as its acting user), never instead of them, and
closes what those rights would still let an internal user reach:

- **Models** (:func:`check_model`): security (users, groups, access rights, record rules,
  API keys, 2FA devices and sessions), system configuration (every ``ir.*`` model: system
  parameters, crons, modules, models and fields, views and menus, actions, attachments,
  mail servers, sequences), settings wizards, module and import wizards, queued jobs and
  their arguments, outgoing mail (reset-password links), payment and IAP providers (API
  keys), and the suite's own ``mcp.*`` configuration (credentials, MCP client keys, tools,
  audit log).
- **Methods** (:func:`check_method`), for any generic method call: private methods,
  ``sudo`` and every ``with_*`` environment switch (they escape the acting user's rights or
  company), generic writes (the ``create``/``write``/``unlink``/``copy`` family and the web
  client's variants), workflow buttons (``action_*``, ``button_*``), mail side effects
  (``message_post`` and the like) and bulk import/export (``load``, ``export_data``). Reads
  (``search_read``, ``read``, ``read_group``, ``search_count``, ``name_search``,
  ``fields_get``...) pass. The suite's mutating tools are dedicated code paths with their own
  checks and an admin's consent (a disabled tool), never a generic method call.
- **Fields** (:func:`check_fields`, :func:`check_field_path`): secret-ish field names
  (passwords, tokens, API keys, secrets, 2FA seeds), including portal ``access_token``
  (a link that opens the document without login), are never read, searched or sorted on;
  a domain may not traverse a deny-listed model (``user_id.login``), only compare its ids.
- **Domains** (:func:`check_domain`): lists of ``[field path, operator, value]`` terms and
  the ``&``, ``|``, ``!`` operators in valid prefix notation, comparison operators only
  (no ``any``/``any!``, whose sub-domains could search without access rules), plain JSON
  values, bounded in size.

Every refusal raises :class:`PolicyDenied` whose message says what was refused and why, in
words a model or an ``/mcp`` client can read.
"""

import re

# Exact names of deny-listed models outside the namespaces below.
DENIED_MODELS = frozenset(
    {
        "res.users",  # logins, groups, API keys, every user's settings
        "res.groups",
        "res.config",  # settings wizards: reading them computes every setting, secrets too
        "res.config.settings",
        "res.device",  # sessions of every user
        "res.device.log",
        "mail.mail",  # outgoing e-mails, including reset-password and signup links
        "fetchmail.server",  # incoming mail server passwords
        "iap.account",  # IAP account tokens
        "payment.provider",  # payment API keys and webhook secrets
        "payment.token",  # customers' saved payment methods
    }
)
# Whole namespaces: no model in them is business data a model needs to read.
DENIED_MODEL_PREFIXES = (
    "ir.",  # ir.model*, ir.rule, ir.config_parameter, ir.cron, ir.module.*, ir.attachment,
    # ir.actions.*, ir.ui.*, ir.mail_server, ir.sequence, ir.logging, ir.default, ...
    "res.users.",  # res.users.apikeys, .log, .settings, .identitycheck, .deletion
    "res.groups.",  # res.groups.privilege
    "res.config.",  # res.config.installer
    "change.password.",  # password wizards
    "auth.",  # auth.oauth.provider, auth.passkey.key, auth.totp.rate.limit.log
    "auth_totp.",  # 2FA devices and wizard
    "base.",  # module install/upgrade/uninstall, language, partner merge wizards
    "base_import.",  # imports (they write)
    "queue.",  # queued jobs, whose arguments hold business data of every tenant
    "bus.",  # every user's real-time notifications
    "mcp.",  # the suite's configuration: credentials, MCP client keys, tools, audit log
)

# Methods no generic call may use, whatever the model (see the module docstring).
DENIED_METHODS = frozenset(
    {
        "sudo",
        "create",
        "write",
        "unlink",
        "copy",
        "copy_data",
        "copy_multi",
        "name_create",
        "web_save",
        "web_save_multi",
        "toggle_active",
        "update_field_translations",
        "load",
        "export_data",
        "message_post",
        "message_notify",
        "message_subscribe",
        "message_unsubscribe",
        "activity_schedule",
        "activity_feedback",
        "activity_unlink",
        "init",
    }
)
# "_": private methods (and dunders); "with_": with_user, with_env, with_context,
# with_company, with_prefetch; "action_"/"button_": workflow buttons (confirm, cancel,
# archive, send...).
DENIED_METHOD_PREFIXES = ("_", "with_", "action_", "button_")

# Field name words that mark a secret: passwords, tokens, API keys, 2FA seeds.
SECRET_FIELD_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "tokens",
        "rtoken",
        "apikey",
        "apikeys",
        "totp",
        "otp",
        "salt",
        "credential",
        "credentials",
    }
)

# Domain operators accepted from a model. Left out on purpose: "any"/"not any" and their
# "any!" forms (a sub-domain; "any!" searches the comodel without access rules), "=?".
DOMAIN_OPERATORS = frozenset(
    {
        "=",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "like",
        "not like",
        "ilike",
        "not ilike",
        "=like",
        "=ilike",
        "in",
        "not in",
        "child_of",
        "parent_of",
    }
)
DOMAIN_LOGIC = frozenset({"&", "|", "!"})
MAX_DOMAIN_ITEMS = 50
MAX_DOMAIN_LIST = 200
MAX_DOMAIN_STRING = 500
MAX_PATH_DEPTH = 4  # relational hops in one field path (a.b.c.d.e)

_MODEL_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class PolicyDenied(Exception):
    """Refused by the fixed deny-list; the message says what and why."""


def _clip(value, limit=80):
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_denied_model(name):
    """Whether the model called ``name`` is deny-listed (or the name is malformed)."""
    return (
        not isinstance(name, str)
        or not _MODEL_NAME.fullmatch(name)
        or name in DENIED_MODELS
        or name.startswith(DENIED_MODEL_PREFIXES)
    )


def check_model(name):
    """Raise :class:`PolicyDenied` unless the model called ``name`` may be reached."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise PolicyDenied(f"{_clip(name)!r} is not a valid model name.")
    if is_denied_model(name):
        raise PolicyDenied(
            f"Access to model {name!r} is refused: security, system and configuration models "
            "are never reachable through tools."
        )


def check_method(name):
    """Raise :class:`PolicyDenied` unless ``name`` may be called generically on a model."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise PolicyDenied(f"{_clip(name)!r} is not a valid method name.")
    if name.startswith("_"):
        raise PolicyDenied(f"Method {name!r} is refused: private methods are never callable.")
    if name in DENIED_METHODS or name.startswith(DENIED_METHOD_PREFIXES):
        raise PolicyDenied(
            f"Method {name!r} is refused: only reading methods are callable; environment "
            "switches, writes, workflow buttons and bulk import/export never are."
        )


def is_secret_field(name):
    """Whether the field called ``name`` looks like it holds a secret."""
    words = name.lower().split("_")
    return (
        bool(SECRET_FIELD_WORDS.intersection(words))
        or words[-1] == "key"  # key, api_key, private_key, webhook_key, ...
        or "signup" in words  # signup URLs and types carry the signup token
    )


def check_fields(model, field_names):
    """Raise :class:`PolicyDenied` if a name in ``field_names`` is malformed or secret-ish."""
    for name in field_names:
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise PolicyDenied(f"{_clip(name)!r} is not a valid field name.")
    secret = sorted(name for name in field_names if is_secret_field(name))
    if secret:
        raise PolicyDenied(
            f"Fields {', '.join(secret)} of {model} are refused: passwords, tokens, keys and "
            "secrets are never readable."
        )


def check_field_path(model, path, comodel_of):
    """Check a dotted field ``path`` (``partner_id.country_id.code``) starting at ``model``.

    ``comodel_of(model, field)`` returns the comodel name of a relational field, None for
    another field, and raises (its own error, e.g. ``ValueError``) for an unknown one. Every
    field on the way must pass :func:`check_fields`, and every model the path goes *through*
    :func:`check_model`: a path may end on a deny-listed comodel (comparing ids, or its
    display name) but never read its fields (``user_id.login``).
    """
    if not isinstance(path, str):
        raise PolicyDenied(f"{_clip(path)!r} is not a field path.")
    parts = path.split(".")
    if len(parts) > MAX_PATH_DEPTH + 1:
        raise PolicyDenied(f"Field path {_clip(path)!r} is longer than {MAX_PATH_DEPTH + 1}.")
    current = model
    for index, part in enumerate(parts):
        check_fields(current, [part])
        comodel = comodel_of(current, part)
        if index == len(parts) - 1:
            return
        if comodel is None:
            raise PolicyDenied(f"Field {part!r} of {current} is not relational: {path!r}.")
        check_model(comodel)
        current = comodel


def check_domain(domain):
    """Check the structure of a search ``domain`` a model sent; return it normalised.

    Returns ``(terms, paths)``: the domain as a list of ``"&"``/``"|"``/``"!"`` and
    ``(path, operator, value)`` tuples (lists become tuples), and the field paths it uses,
    for the caller to check against the model with :func:`check_field_path`.
    """
    if not isinstance(domain, list):
        raise PolicyDenied("The domain must be a list of [field, operator, value] terms.")
    if len(domain) > MAX_DOMAIN_ITEMS:
        raise PolicyDenied(f"The domain has more than {MAX_DOMAIN_ITEMS} items.")
    terms, paths = [], []
    for item in domain:
        if isinstance(item, str):
            if item not in DOMAIN_LOGIC:
                raise PolicyDenied(
                    f"{_clip(item)!r} is not a domain operator: use '&', '|' or '!'."
                )
            terms.append(item)
            continue
        terms.append(_checked_term(item))
        paths.append(item[0])
    _check_arity(terms)
    return terms, list(dict.fromkeys(paths))


def _checked_term(item):
    if not isinstance(item, (list, tuple)) or len(item) != 3:
        raise PolicyDenied(
            f"Domain term {_clip(item)!r} must be a list of three items: field, operator, value."
        )
    path, operator, value = item
    if not isinstance(path, str) or not path:
        raise PolicyDenied(f"Domain term {_clip(item)!r}: the field must be a field name.")
    if operator not in DOMAIN_OPERATORS:
        raise PolicyDenied(
            f"Domain operator {_clip(operator)!r} is not allowed; use one of "
            + ", ".join(sorted(DOMAIN_OPERATORS))
            + "."
        )
    if isinstance(value, list):
        if len(value) > MAX_DOMAIN_LIST:
            raise PolicyDenied(f"Domain term on {path!r}: more than {MAX_DOMAIN_LIST} values.")
        for element in value:
            _check_value(path, element)
    else:
        _check_value(path, value)
    return path, operator, value


def _check_value(path, value):
    if value is None or isinstance(value, (bool, int, float)):
        return
    if isinstance(value, str):
        if len(value) > MAX_DOMAIN_STRING:
            raise PolicyDenied(
                f"Domain term on {path!r}: a text value is longer than {MAX_DOMAIN_STRING}."
            )
        return
    raise PolicyDenied(
        f"Domain term on {path!r}: values must be text, numbers, true/false, null or lists "
        "of those."
    )


def _check_arity(terms):
    """Raise unless ``terms`` is a valid prefix-notation domain (trailing terms are ANDed)."""
    operands = 0
    for term in reversed(terms):
        needed = {"&": 2, "|": 2, "!": 1}.get(term) if isinstance(term, str) else 0
        if operands < needed:
            raise PolicyDenied(f"Domain operator {term!r} lacks operands.")
        operands += 1 - needed
