# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
from datetime import datetime, time, timedelta

from odoo import SUPERUSER_ID, api, fields, models
from odoo.tools import SQL

from ..services import metrics

_logger = logging.getLogger(__name__)

GROUP_COLUMNS = ("date", "tenant_id", "company_id", "module")
# Cache counters arrive as increments (drained from each process); the call figures are
# recomputed from the audit rows of the day and replace the stored ones.
COUNTER_COLUMNS = ("cache_hits", "cache_misses", "cache_errors", "saved_ms")
CALL_COLUMNS = (
    "calls",
    "errors",
    "latency_p50_ms",
    "latency_p95_ms",
    "tokens_in",
    "tokens_out",
    "cost",
)
COUNTER_NAMES = {
    "cache_hits": "hits",
    "cache_misses": "misses",
    "cache_errors": "errors",
    "saved_ms": "saved_ms",
}
AGGREGATED_DAYS = 2  # today, and yesterday until its last rows are in


class McpMetricDaily(models.Model):
    _name = "mcp.metric.daily"
    _description = "AI Integration Daily Metrics"
    _order = "date desc, tenant_id, module"
    _rec_name = "module"

    date = fields.Date(required=True, index=True, help="Day (UTC) the figures belong to")
    tenant_id = fields.Many2one("mcp.tenant", required=True, ondelete="cascade")
    company_id = fields.Many2one(related="tenant_id.company_id", store=True, index=True)
    module = fields.Char(required=True, index=True)
    calls = fields.Integer(help="External calls (audit rows of the day)")
    errors = fields.Integer(help="External calls that failed or were refused")
    cache_hits = fields.Integer()
    cache_misses = fields.Integer()
    cache_errors = fields.Integer(help="Cache operations that Redis could not serve (fail-open)")
    hit_rate = fields.Float(
        compute="_compute_hit_rate",
        store=True,
        aggregator="avg",
        digits=(16, 4),
        help="Share of cache lookups served from the cache",
    )
    latency_p50_ms = fields.Float(string="Latency p50 (ms)", digits=(16, 1), aggregator="avg")
    latency_p95_ms = fields.Float(string="Latency p95 (ms)", digits=(16, 1), aggregator="max")
    tokens_in = fields.Integer()
    tokens_out = fields.Integer()
    cost = fields.Float(digits=(16, 6))
    saved_ms = fields.Float(
        string="Time Saved (ms)", digits=(16, 1), help="Computation time the cache hits saved"
    )

    _date_tenant_module_uniq = models.Constraint(
        "UNIQUE (date, tenant_id, module)",
        "There is already a metrics row for this day, tenant and module.",
    )

    @api.depends("cache_hits", "cache_misses")
    def _compute_hit_rate(self):
        for row in self:
            row.hit_rate = metrics.hit_rate(row.cache_hits, row.cache_misses)

    # writing -------------------------------------------------------------------------------
    @api.model
    def _flush_cache_counters(self, cache):
        """Move this process's cache counters into today's rows (separate, committed cursor).

        Counters of account ids that no tenant has are dropped. Returns the rows touched.
        """
        counters = cache.stats.drain()
        if not counters:
            return 0
        with self.env.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            return env[self._name]._upsert_counters(counters)

    @api.model
    def _upsert_counters(self, counters):
        account_ids = sorted({account_id for account_id, _module in counters})
        self.env.cr.execute(
            SQL(
                # a tenant being deleted is skipped: see mcp.audit.log._committed_reference
                "SELECT account_id, id, company_id FROM mcp_tenant WHERE account_id IN %s "
                "FOR KEY SHARE SKIP LOCKED",
                tuple(account_ids),
            )
        )
        tenants = {
            account_id: (tenant_id, company_id)
            for account_id, tenant_id, company_id in (self.env.cr.fetchall())
        }
        today = fields.Date.today()
        rows = []
        for (account_id, module), values in counters.items():
            if account_id not in tenants:
                _logger.debug("Dropping cache counters of unknown account %s", account_id)
                continue
            tenant_id, company_id = tenants[account_id]
            row = dict(zip(GROUP_COLUMNS, (today, tenant_id, company_id, module), strict=True))
            row.update({column: values[name] for column, name in COUNTER_NAMES.items()})
            rows.append(row)
        return len(self._upsert(rows, increment=COUNTER_COLUMNS))

    @api.model
    def _upsert(self, rows, increment=(), replace=()):
        """Insert or update rows atomically (INSERT ... ON CONFLICT DO UPDATE).

        ``increment`` columns are added to the stored values, ``replace`` columns overwrite
        them; metric columns a row does not give are inserted as 0. Returns the records.
        """
        if not rows:
            return self.browse()
        metric_columns = COUNTER_COLUMNS + CALL_COLUMNS
        columns = GROUP_COLUMNS + metric_columns
        table = SQL.identifier(self._table)
        now = fields.Datetime.now()
        values = SQL(", ").join(
            SQL(
                "(%s, %s, %s, %s, %s)",
                SQL(", ").join(row.get(column, 0) for column in columns),
                SUPERUSER_ID,
                now,
                SUPERUSER_ID,
                now,
            )
            for row in rows
        )
        updates = [
            SQL(
                "%(col)s = %(table)s.%(col)s + EXCLUDED.%(col)s", col=SQL.identifier(c), table=table
            )
            for c in increment
        ]
        updates += [
            SQL("%s = EXCLUDED.%s", SQL.identifier(column), SQL.identifier(column))
            for column in replace
        ]
        updates += [SQL("write_uid = EXCLUDED.write_uid, write_date = EXCLUDED.write_date")]
        self.env.cr.execute(
            SQL(
                """INSERT INTO %(table)s
                          (%(columns)s, create_uid, create_date, write_uid, write_date)
                   VALUES %(values)s
                   ON CONFLICT (date, tenant_id, module) DO UPDATE SET %(updates)s
                   RETURNING id""",
                table=table,
                columns=SQL(", ").join(SQL.identifier(column) for column in columns),
                values=values,
                updates=SQL(", ").join(updates),
            )
        )
        records = self.browse(row_id for (row_id,) in self.env.cr.fetchall())
        # the SQL bypassed the ORM: recompute the stored hit rate from the new counters
        records.invalidate_recordset()
        records.modified(["cache_hits", "cache_misses"])
        records.flush_recordset(["hit_rate"])
        return records

    # aggregation ---------------------------------------------------------------------------
    @api.model
    def _aggregate_day(self, day):
        """Recompute a day's call figures (calls, errors, p50/p95, tokens, cost) per tenant and
        module from the audit rows that carry a module."""
        start = datetime.combine(day, time.min)
        audit = self.env["mcp.audit.log"]
        self.env.cr.execute(
            SQL(
                """SELECT log.tenant_id, tenant.company_id, log.module, array_agg(log.duration_ms),
                          count(*) FILTER (WHERE log.status != 'ok'),
                          sum(log.tokens_in), sum(log.tokens_out), sum(log.cost)
                     FROM %s log JOIN mcp_tenant tenant ON tenant.id = log.tenant_id
                    WHERE log.module IS NOT NULL
                      AND log.create_date >= %s AND log.create_date < %s
                 GROUP BY log.tenant_id, tenant.company_id, log.module""",
                SQL.identifier(audit._table),
                start,
                start + timedelta(days=1),
            )
        )
        rows = []
        for (
            tenant_id,
            company_id,
            module,
            durations,
            errors,
            t_in,
            t_out,
            cost,
        ) in self.env.cr.fetchall():
            latency = metrics.latency_summary([d or 0.0 for d in durations])
            rows.append(
                {
                    "date": day,
                    "tenant_id": tenant_id,
                    "company_id": company_id,
                    "module": module,
                    "calls": latency["count"],
                    "errors": errors,
                    "latency_p50_ms": latency["p50"],
                    "latency_p95_ms": latency["p95"],
                    "tokens_in": t_in or 0,
                    "tokens_out": t_out or 0,
                    "cost": cost or 0.0,
                }
            )
        return self._upsert(rows, replace=CALL_COLUMNS)

    @api.model
    def _cron_aggregate(self):
        """Flush this process's cache counters, then recompute today's and yesterday's call
        figures (so yesterday is final after the first run past midnight UTC)."""
        cache = self.env["mcp.integrator"]._cache_or_none()
        if cache is not None:
            self._flush_cache_counters(cache)
        today = fields.Date.today()
        for days_back in range(AGGREGATED_DAYS):
            self._aggregate_day(today - timedelta(days=days_back))
