# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models

from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.queue_job.job import identity_exact


class McpIndexRun(models.Model):
    """One (re)indexing of a tenant's collection into its Qdrant server, run as a queue job.

    It only shows the admin how far the job got: the job writes its progress through a cursor
    of its own, committed at once, while its own transaction is still open.
    """

    _name = "mcp.index.run"
    _description = "MCP Index Run"
    _order = "id desc"
    _check_company_auto = True

    server_id = fields.Many2one(
        "mcp.server", required=True, index=True, ondelete="cascade", readonly=True
    )
    tenant_id = fields.Many2one(related="server_id.tenant_id", store=True, index=True)
    company_id = fields.Many2one(related="server_id.company_id", store=True, index=True)
    purpose = fields.Selection(
        [("products", "Products"), ("business_rules", "Business Rules")],
        required=True,
        readonly=True,
    )
    state = fields.Selection(
        [("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")],
        required=True,
        default="queued",
        readonly=True,
    )
    total = fields.Integer(readonly=True, help="Items to index.")
    done = fields.Integer(readonly=True, help="Items indexed so far.")
    deleted = fields.Integer(readonly=True, help="Items dropped from the index: gone from Odoo.")
    progress = fields.Float(compute="_compute_progress", help="Percentage of the items indexed.")
    error = fields.Char(readonly=True)
    started_at = fields.Datetime(readonly=True)
    ended_at = fields.Datetime(readonly=True)

    @api.depends("total", "done", "state")
    def _compute_progress(self):
        for run in self:
            if run.state == "done":
                run.progress = 100.0
            else:
                run.progress = 100.0 * run.done / run.total if run.total else 0.0

    @api.model
    def _enqueue(self, server, purpose):
        """Queue the indexing of ``server``'s ``purpose`` collection; a run still waiting for
        its job is reused (its job too, while it is pending)."""
        run = self.search(
            [("server_id", "=", server.id), ("purpose", "=", purpose), ("state", "=", "queued")],
            limit=1,
        )
        if not run:
            run = self.create({"server_id": server.id, "purpose": purpose})
        run.with_delay(
            identity_key=identity_exact,
            description=self.env._(
                "Index %(purpose)s for %(server)s",
                purpose=dict(self._fields["purpose"].selection)[purpose],
                server=server.display_name,
            ),
        )._perform()
        return run

    def _perform(self):
        """Job: index the run's collection, reporting progress as it goes."""
        self.ensure_one()
        self._report(
            state="running",
            started_at=fields.Datetime.now(),
            ended_at=False,
            total=0,
            done=0,
            deleted=0,
            error=False,
        )
        try:
            counts = self.server_id._qdrant_index(
                self.purpose, on_batch=lambda done, total: self._report(done=done, total=total)
            )
        except RetryableJobError as exc:
            self._report(state="queued", error=self.env._("%(error)s (retrying)", error=str(exc)))
            raise
        except Exception as exc:
            self._report(state="failed", error=str(exc)[:500], ended_at=fields.Datetime.now())
            raise
        self._report(
            state="done",
            total=counts["total"],
            done=counts["upserted"],
            deleted=counts["deleted"],
            ended_at=fields.Datetime.now(),
        )
        return self.env._(
            "%(done)s items indexed, %(deleted)s dropped",
            done=counts["upserted"],
            deleted=counts["deleted"],
        )

    def _report(self, **values):
        """Write ``values`` through a new cursor, committed at once, so that the admin sees
        them while the job runs. A run that cursor cannot see yet (created in the transaction
        that runs the job synchronously) is written in that transaction."""
        with self.env.registry.cursor() as cr:
            run = self.with_env(self.env(cr=cr, su=True)).exists()
            if run:
                run.write(values)
                return
        self.sudo().write(values)
