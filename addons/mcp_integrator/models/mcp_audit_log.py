# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import functools
import json
import logging
import uuid
from datetime import timedelta

from odoo import SUPERUSER_ID, api, fields, models, sql_db
from odoo.modules import module as odoo_module
from odoo.tools import SQL

from ..services import audit_writer, masking

_logger = logging.getLogger(__name__)

STATUSES = ("ok", "error", "refused")
MAX_ARGUMENTS_CHARS = 16000
MAX_ERROR_CHARS = 4000
DEFAULT_RETENTION_DAYS = 30
RETENTION_PARAM = "mcp_integrator.audit_retention_days"


def _truncate(text, limit):
    if text and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


# Foreign keys of an audit row, checked when the row is inserted (see _committed_reference).
REFERENCES = {"tenant_id": "mcp_tenant", "user_id": "res_users", "company_id": "res_company"}
# Context key: write the row in the background or at once. The default is the background,
# except while Odoo runs tests: their registry test mode nests cursors in the test transaction.
BACKGROUND = "mcp_audit_background"


def _committed_reference(table, record_id):
    """The id of the row ``record_id`` of ``table``, or NULL where the audit cursor cannot
    reference it.

    A row the caller created and has not committed is invisible to the audit cursor; a row
    the caller is deleting is locked, and the foreign key check of the insert would wait for
    the caller, which waits for this insert: ``SKIP LOCKED`` drops such a reference instead
    of hanging.
    """
    if not record_id:
        return SQL("NULL")
    return SQL(
        "(SELECT id FROM %s WHERE id = %s FOR KEY SHARE SKIP LOCKED)",
        SQL.identifier(table),
        record_id,
    )


def _insert_rows(cr, rows):
    """Insert audit ``rows`` (dicts of column values) in one statement; returns their ids.

    No ORM: an audit row is on the path of every tool call. The commit does not wait for the
    WAL flush either: a database crash may lose the rows of its last few hundred milliseconds.
    """
    columns = list(rows[0])
    values = SQL(", ").join(
        SQL(
            "(%s)",
            SQL(", ").join(
                _committed_reference(REFERENCES[column], row[column])
                if column in REFERENCES
                else SQL("%s", row[column])
                for column in columns
            ),
        )
        for row in rows
    )
    cr.execute(
        SQL(
            "SET LOCAL synchronous_commit TO OFF; INSERT INTO mcp_audit_log (%s) VALUES %s "
            "RETURNING id",
            SQL(", ").join(SQL.identifier(column) for column in columns),
            values,
        )
    )
    return [row_id for (row_id,) in cr.fetchall()]


def _write_rows(dbname, rows):
    """The background writer's batch: one cursor, one statement, one commit.

    Straight from the connection pool: the registry may be locked by the thread that is
    loading it, and the rows need nothing of it."""
    with sql_db.db_connect(dbname).cursor() as cr:
        _insert_rows(cr, rows)


class McpAuditLog(models.Model):
    """One row per external call, configuration change and failure.

    Rows are written by :meth:`_log` through a cursor of their own, so they are committed even
    when the transaction they describe is rolled back. Nobody writes them through the UI.
    """

    _name = "mcp.audit.log"
    _description = "AI Integration Audit Log"
    _order = "create_date desc, id desc"
    _rec_name = "operation"

    tenant_id = fields.Many2one("mcp.tenant", index=True, ondelete="set null")
    company_id = fields.Many2one("res.company", index=True, ondelete="set null")
    user_id = fields.Many2one("res.users", ondelete="set null")
    operation = fields.Char(required=True, index=True, help="What was done, e.g. tool.call")
    module = fields.Char(
        index=True,
        help="Module the operation counts for in the daily metrics (calls, latency, tokens, "
        "cost). Empty for operations that are not calls, such as configuration changes.",
    )
    target = fields.Char(help="What the operation was applied to, e.g. the tool name")
    status = fields.Selection(
        [("ok", "OK"), ("error", "Error"), ("refused", "Refused")],
        required=True,
        default="ok",
        index=True,
    )
    duration_ms = fields.Float(string="Duration (ms)", digits=(16, 1), aggregator="avg")
    attempts = fields.Integer(help="How many times the call was tried (retries included)")
    cache_hit = fields.Boolean()
    tokens_in = fields.Integer()
    tokens_out = fields.Integer()
    cost = fields.Float(digits=(16, 6))
    error = fields.Text(help="Error message, with secrets masked")
    arguments = fields.Text(help="Arguments as JSON, with secrets masked")
    correlation_id = fields.Char(
        string="Correlation ID", index=True, help="Shared by the rows of one conversation or job"
    )

    @api.model
    def _log(
        self,
        operation,
        target,
        status="ok",
        tenant=None,
        duration_ms=0.0,
        cache_hit=False,
        tokens_in=0,
        tokens_out=0,
        cost=0.0,
        error=None,
        arguments=None,
        correlation_id=None,
        module=None,
        attempts=0,
    ):
        """Write an audit row that survives the rollback of the caller's transaction.

        ``arguments`` (any JSON-like data) and ``error`` are stored with secrets masked. The
        correlation id defaults to the ``mcp_correlation_id`` context key.

        The row is queued for this process's background writer (``services/audit_writer.py``)
        and inserted within a fraction of a second through a cursor of its own, so the caller
        never waits for it; ``_log`` then returns None. With the context key
        ``mcp_audit_background=False``, and by default while Odoo runs tests, it is inserted at
        once and its id returned; the registry test mode hands out cursors nested in the test
        transaction, so there the row shares the fate of the test (see tests/test_audit.py).
        A reference to a record the caller created and has not committed yet is stored empty
        rather than failing the insert (the target keeps naming the record).
        """
        if status not in STATUSES:
            raise ValueError(f"audit status must be one of {STATUSES}, got {status!r}")
        tenant = tenant.sudo() if tenant else None
        vals = {
            "operation": operation,
            "module": module or None,
            "target": _truncate(masking.mask_text(str(target)) if target else None, 256),
            "status": status,
            "duration_ms": duration_ms or 0.0,
            "attempts": attempts or 0,
            "cache_hit": bool(cache_hit),
            "tokens_in": tokens_in or 0,
            "tokens_out": tokens_out or 0,
            "cost": cost or 0.0,
            "error": _truncate(masking.mask_text(str(error)), MAX_ERROR_CHARS) if error else None,
            "arguments": self._masked_arguments(arguments),
            "correlation_id": correlation_id
            or self.env.context.get("mcp_correlation_id")
            or uuid.uuid4().hex,
        }
        now = fields.Datetime.now()
        row = {
            **vals,
            "tenant_id": tenant.id if tenant else None,
            "user_id": self.env.uid,
            "company_id": tenant.company_id.id if tenant else None,
            "create_uid": SUPERUSER_ID,
            "write_uid": SUPERUSER_ID,
            "create_date": now,
            "write_date": now,
        }
        if self.env.context.get(BACKGROUND, not odoo_module.current_test):
            dbname = self.env.cr.dbname
            writer = audit_writer.writer_for(dbname, functools.partial(_write_rows, dbname))
            writer.put(row)
            return None
        with self.env.registry.cursor() as cr:
            return _insert_rows(cr, [row])[0]

    @api.model
    def _masked_arguments(self, arguments):
        if arguments is None:
            return None
        text = json.dumps(masking.mask(arguments), default=str, ensure_ascii=False, sort_keys=True)
        return _truncate(text, MAX_ARGUMENTS_CHARS)

    @api.model
    def _retention_days(self):
        value = self.env["ir.config_parameter"].sudo().get_param(RETENTION_PARAM)
        try:
            days = int(value) if value else DEFAULT_RETENTION_DAYS
        except ValueError:
            _logger.warning(
                "Ignoring invalid %s=%r, keeping %d days",
                RETENTION_PARAM,
                value,
                DEFAULT_RETENTION_DAYS,
            )
            days = DEFAULT_RETENTION_DAYS
        return max(days, 1)

    @api.model
    def _cron_purge_expired(self):
        """Delete the rows older than the retention period (Settings, default 30 days)."""
        days = self._retention_days()
        limit = fields.Datetime.now() - timedelta(days=days)
        self.env.cr.execute(
            SQL("DELETE FROM %s WHERE create_date < %s", SQL.identifier(self._table), limit)
        )
        deleted = self.env.cr.rowcount
        self.invalidate_model()
        _logger.info("Purged %d audit rows older than %d days", deleted, days)
        return deleted
