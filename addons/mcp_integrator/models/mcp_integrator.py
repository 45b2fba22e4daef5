# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import contextlib
import functools
import json
import logging
import time

from odoo import api, models, tools
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..services import cache as cache_service
from ..services import keys, masking, tool_calls
from ..services.metrics import Throttle
from .res_config_settings import REDIS_CREDENTIAL_PARAM, conf_redis_url

_logger = logging.getLogger(__name__)

TOOLS_MODULE = "tools"
TOOL_CALL = "tool.call"
NO_FALLBACK = object()
PENDING_INVALIDATIONS = "mcp_integrator.invalidate"
# The hot path only counts; counters reach the database at most once a minute per process.
COUNTER_FLUSH = Throttle(60.0)
SETTINGS_WARNING = Throttle(60.0, ready_now=True)


def _invalidate_again(callbacks):
    """Repeat the invalidations queued in ``callbacks`` (cr.postcommit or cr.postrollback)."""
    for settings, account_id, module, resource_type, resource_id in callbacks.data.get(
        PENDING_INVALIDATIONS, {}
    ).values():
        cache_service.shared_cache(settings).invalidate(
            account_id, module, resource_type, resource_id
        )


class McpToolError(UserError):
    """A tool call failed for good and no fallback was given; the message has no secrets."""


class McpToolRefused(McpToolError):
    """A tool call was refused: inactive tenant, tenant of another company, tool not allowed."""


class McpIntegrator(models.AbstractModel):
    """The internal API every addon of the suite goes through (see readme/USAGE.md)."""

    _name = "mcp.integrator"
    _description = "AI Integration Internal API"

    # settings and cache ----------------------------------------------------------------------
    @api.model
    def settings(self):
        """The CacheSettings saved in Settings.

        ``redis_url`` in the ``[mcp_integrator]`` section of odoo.conf wins over the saved URL.
        """
        return self._stored_settings(conf_redis_url())

    @tools.ormcache("conf_url")
    def _stored_settings(self, conf_url):
        """The saved settings, kept per registry so that a cached read runs no SQL query.

        Saving settings clears it (``set_param`` clears the registry caches), and so does a
        change of the credential holding the Redis password (:meth:`_settings_credential_changed`).
        """
        return self.env["res.config.settings"]._mcp_stored_cache_settings()

    @api.model
    def _settings_credential_changed(self, credentials):
        """Forget the kept settings when ``credentials`` include the Redis password's one."""
        param = self.env["ir.config_parameter"].sudo().get_param(REDIS_CREDENTIAL_PARAM)
        if param and param.isdigit() and int(param) in credentials.ids:
            self.env.registry.clear_cache()

    @api.model
    def cache(self):
        """This process's Cache for the current settings.

        Raises a UserError when the saved settings cannot work; ``cached``, ``invalidate`` and
        ``call_tool`` do not: they carry on without cache.
        """
        try:
            return cache_service.shared_cache(self.settings())
        except cache_service.CacheConfigError as exc:
            raise UserError(
                self.env._("The cache settings cannot work: %(reason)s", reason=str(exc))
            ) from None

    @api.model
    def _cache_or_none(self, settings=None):
        """The Cache of ``settings`` (default: the current ones), or None (with a warning a
        minute at most) when the settings are invalid."""
        try:
            return cache_service.shared_cache(settings or self.settings())
        except cache_service.CacheConfigError as exc:
            if SETTINGS_WARNING.ready():
                _logger.warning("AI Integration cache disabled, invalid settings: %s", exc)
            return None

    @api.model
    def _ping(self, settings):
        """Round trip in ms to the Redis of ``settings`` (CacheUnavailable / CacheConfigError).

        Through the process's Cache for these settings, so that its circuit (and its one
        warning per interval) is shared with the status line and the requests.
        """
        return cache_service.shared_cache(settings).ping()

    @api.model
    def _cache_health(self):
        """(up, message) for the status line in Settings; pings the configured Redis."""
        try:
            latency = self._ping(self.settings())
        except (cache_service.CacheConfigError, cache_service.CacheUnavailable) as exc:
            return False, self.env._("Down: %(error)s", error=str(exc))
        return True, self.env._("Up (%(ms).1f ms)", ms=latency)

    @api.model
    def _flush_counters_throttled(self, cache):
        if COUNTER_FLUSH.ready():
            try:
                self.env["mcp.metric.daily"]._flush_cache_counters(cache)
            except Exception:  # metrics must never break the call they count
                _logger.warning("Could not write the cache counters", exc_info=True)

    # cached reads and invalidation -----------------------------------------------------------
    @api.model
    def cached(
        self, tenant, module, resource_type, resource_id, action, compute, ttl_class="transient"
    ):
        """``compute()``'s JSON-serialisable value, served from the tenant's cache when fresh.

        Concurrent misses on one key compute once. When Redis is down (or the settings are
        invalid) the value is computed every time.
        """
        tenant.ensure_one()
        cache = self._cache_or_none()
        if cache is None:
            return compute()
        key = cache.key(tenant.account_id, module, resource_type, resource_id, action)
        value = cache.get_or_compute(key, compute, ttl_class)
        self._flush_counters_throttled(cache)
        return value

    @api.model
    def invalidate(self, tenant, module=None, resource_type=None, resource_id=None):
        """Drop the cached values of tenants (a recordset), a module, a type or one resource.

        Done at once, and once more when the transaction ends: a value another worker computed
        from the old data before this transaction committed, or one computed from data this
        transaction then rolled back, does not survive either.
        """
        cache = self._cache_or_none()
        if cache is None:
            return
        self._invalidate_accounts(
            cache, tenant.mapped("account_id"), module, resource_type, resource_id
        )

    @api.model
    def _invalidate_accounts(self, cache, account_ids, module, resource_type, resource_id):
        queues = self._pending_invalidations()
        for account_id in account_ids:
            cache.invalidate(account_id, module, resource_type, resource_id)
            entry = (cache.settings, account_id, module, resource_type, resource_id)
            for pending in queues:
                pending[(*entry[:4], keys.canonical_json(resource_id))] = entry

    @api.model
    def _pending_invalidations(self):
        """The invalidations to repeat when the transaction ends, one dict per queue.

        Both the post-commit and the post-rollback queue hold them (a commit clears the
        rollback queue and the other way round); plain data, as Odoo's test cases copy it.
        """
        queues = []
        for callbacks in (self.env.cr.postcommit, self.env.cr.postrollback):
            if PENDING_INVALIDATIONS not in callbacks.data:
                callbacks.data[PENDING_INVALIDATIONS] = {}
                callbacks.add(functools.partial(_invalidate_again, callbacks))
            queues.append(callbacks.data[PENDING_INVALIDATIONS])
        return queues

    @api.model
    def _invalidate_config_caches(self):
        """After a settings change: drop every tenant's cached values.

        Configuration copies (TTL class ``config``) live under the keys of several modules,
        and invalidation works per tenant, module, type or resource, not per TTL class; a
        settings save is rare enough that dropping each tenant's cache is the safe answer.
        """
        cache = self._cache_or_none()
        if cache is None:
            return
        [(account_ids,)] = (
            self.env["mcp.tenant"]
            .sudo()
            .with_context(active_test=False)
            ._read_group([], aggregates=["account_id:array_agg"])
        )
        self._invalidate_accounts(cache, account_ids or [], None, None, None)

    # conversations ---------------------------------------------------------------------------
    @api.model
    def ingest(
        self,
        tenant,
        channel,
        thread_id,
        contact,
        text,
        attachments=None,
        metadata=None,
        message_id=None,
    ):
        """Hand a message a channel connector received to the conversation hub; return the
        hub's record of it. Idempotent on ``message_id``: a message received again returns the
        record of the first time. The hub files it without waiting for the inbox behind it
        (a job posts it), so the connector can acknowledge at once and nothing is lost.

        :param tenant: the ``mcp.tenant`` the connector belongs to
        :param channel: the channel connector record that received the message
        :param thread_id: the conversation's id on that channel (a string: marketplace ids
            exceed 64 bits)
        :param contact: the customer as the channel knows them: ``{"id": ..., "name": ...,
            "phone": ..., "email": ...}``, ``id`` required
        :param attachments: ``[{"name", "mimetype", "url"} | {"name", "mimetype", "data"}]``,
            ``data`` in base64
        :param metadata: small JSON-serialisable details kept with the message (order, listing)
        :param message_id: the message's id on the channel
        """
        tenant.ensure_one()
        channel.ensure_one()
        return self.env["mcp.conversation.hub"]._mcp_ingest(
            tenant,
            channel,
            str(thread_id),
            dict(contact),
            text or "",
            list(attachments or []),
            dict(metadata or {}),
            str(message_id) if message_id not in (None, "") else None,
        )

    # tools -----------------------------------------------------------------------------------
    @api.model
    def call_tool(self, tenant, tool, arguments, cache=None, fallback=NO_FALLBACK):
        """Run ``tool`` for ``tenant`` through the provider that offers it.

        :param arguments: JSON-serialisable dict (None for no arguments)
        :param cache: a TTL class ("transient", "session", "config") under which the result is
            cached per tenant, tool and arguments; None for the class the provider gives the
            tool (read-only tools of ``mcp_connectors``), if any; False never to cache
        :param fallback: returned when the call fails for good (permanent error, or transient
            errors beyond the retry policy); without it such failures raise McpToolError
        :raises McpToolRefused: tenant inactive or of a company the user cannot work in, or
            the provider refused the call (a fallback does not apply)

        Every call that reaches a provider, and every refusal or failure, writes one audit row;
        cache hits are only counted.
        """
        tenant.ensure_one()
        if not isinstance(tool, str) or not tool:
            raise TypeError(f"tool must be a non-empty string, got {tool!r}")
        arguments = {} if arguments is None else arguments
        if not isinstance(arguments, dict):
            raise TypeError(f"tool arguments must be a dict, got {type(arguments).__name__}")
        try:
            arguments_text = tool_calls.arguments_json(arguments)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"tool arguments must be JSON-serialisable: {exc}") from None
        if cache not in (None, False) and cache not in cache_service.TTL_BOUNDS:
            raise ValueError(f"unknown cache TTL class {cache!r}")
        active, company_id, account_id, provider, writes, tool_cache, settings = self._tool_plan(
            tenant.id, tool
        )
        if not active or company_id not in self.env.companies._ids:
            error = tool_calls.ToolRefused(self._tool_refusal(active))
            self._audit_tool(tenant, tool, arguments, time.perf_counter(), error)
            raise McpToolRefused(self._tool_error_message(tenant, tool, error))
        if cache is None:
            cache = tool_cache
        store = self._cache_or_none(settings) if cache else None
        try:
            if store is None:
                return self._run_tool(tenant, tool, arguments, provider, writes)
            resource_type, resource_id = tool_calls.cache_resource(tool, arguments_text)
            key = store.key(account_id, TOOLS_MODULE, resource_type, resource_id, "call")

            def compute():
                result = self._run_tool(tenant, tool, arguments, provider, writes)
                if tool_calls.is_error_result(result):
                    return cache_service.Uncached(result)
                return result

            result = store.get_or_compute(key, compute, cache)
            self._flush_counters_throttled(store)
            return result
        except tool_calls.ToolError as exc:
            message = self._tool_error_message(tenant, tool, exc)
            if isinstance(exc, tool_calls.ToolRefused):
                raise McpToolRefused(message) from None
            if fallback is not NO_FALLBACK:
                return fallback
            raise McpToolError(message) from None

    @api.model
    def _tool_error_message(self, tenant, tool, error):
        return self.env._(
            "Tool %(tool)s failed for tenant %(tenant)s: %(error)s",
            tool=tool,
            tenant=tenant.sudo().display_name,
            error=masking.mask_text(str(error)),
        )

    @api.model
    @tools.ormcache("tenant_id", "tool")
    def _tool_plan(self, tenant_id, tool):
        """What a call of ``tool`` for tenant ``tenant_id`` needs, without a query:
        ``(active, company id, account id, provider model name or None, whether the tool may
        write here, cache class or None, cache settings)``.

        Kept per registry. A change of the tenant's active flag, company or account id clears
        it (see mcp.tenant.write), and so must providers whenever the tools they offer or
        their cache classes change (``registry.clear_cache()``, as mcp_connectors does); saved
        settings clear it as they clear :meth:`_stored_settings`.
        Read as superuser: a tenant the user may not even read is refused (and audited), not
        turned into an access error halfway.
        """
        tenant = self.env["mcp.tenant"].sudo().with_context(active_test=False).browse(tenant_id)
        provider_name = cache_class = None
        writes = True
        for model_name in self.env["mcp.tool.provider"]._mcp_provider_models():
            provider = self.env[model_name].sudo()
            if provider._mcp_provides(tenant, tool):
                provider_name = model_name
                cache_class = provider._mcp_cache_class(tenant, tool)
                writes = bool(provider._mcp_writes_data(tenant, tool))
                break
        if cache_class not in cache_service.TTL_BOUNDS:
            cache_class = None
        return (
            tenant.active,
            tenant.company_id.id,
            tenant.account_id,
            provider_name,
            writes,
            cache_class,
            self.settings(),
        )

    @api.model
    def _tool_refusal(self, active):
        """Why a tenant that is archived (or not of a company of this environment) may not
        call tools."""
        if not active:
            return self.env._("the tenant is archived")
        return self.env._("the tenant belongs to a company you are not working in")

    @api.model
    def _run_tool(self, tenant, tool, arguments, provider_name, writes=True):
        """Call the provider with retries, audit. Raises ToolError subclasses only."""
        started = time.perf_counter()
        try:
            if provider_name is None:
                raise tool_calls.ToolNotFound(f"no provider offers the tool {tool!r}")
            provider = self.env[provider_name]

            def attempt():
                # a failed attempt leaves nothing half-written behind
                with self.env.cr.savepoint() if writes else contextlib.nullcontext():
                    result = provider._mcp_call_tool(tenant, tool, arguments)
                try:
                    json.dumps(result)
                except (TypeError, ValueError) as exc:
                    raise tool_calls.PermanentToolError(
                        f"the tool returned a result that is not JSON-serialisable: {exc}"
                    ) from None
                return result

            result, attempts = tool_calls.call_with_retry(attempt)
        except tool_calls.ToolError as exc:
            self._audit_tool(tenant, tool, arguments, started, exc)
            raise
        self._audit_tool(tenant, tool, arguments, started, attempts=attempts)
        return result

    @api.model
    def _audit_tool(self, tenant, tool, arguments, started, error=None, attempts=1):
        """One audit row for a tool call (``error``: the ToolError it ended with, if any)."""
        status = "ok"
        if error is not None:
            status = "refused" if isinstance(error, tool_calls.ToolRefused) else "error"
            attempts = error.attempts
            _logger.info(
                "Tool %s for tenant %s: %s (%s)",
                tool,
                tenant.sudo().account_id,
                status,
                masking.mask_text(str(error)),
            )
        self.env["mcp.audit.log"]._log(
            TOOL_CALL,
            tool,
            status=status,
            tenant=tenant,
            module=TOOLS_MODULE,
            duration_ms=(time.perf_counter() - started) * 1000,
            attempts=attempts,
            error=f"{type(error).__name__}: {error}" if error is not None else None,
            arguments=arguments,
        )


def job_attempt(env, outside_a_job):
    """The try of the queue job running now (1 for the first), read in one query;
    ``outside_a_job`` when the code runs outside one."""
    job_uuid = env.context.get("job_uuid")
    if not job_uuid:
        return outside_a_job
    env["queue.job"].flush_model(["uuid", "retry"])
    env.cr.execute(SQL("SELECT retry FROM queue_job WHERE uuid = %s", job_uuid))
    row = env.cr.fetchone()
    return row[0] + 1 if row else outside_a_job
