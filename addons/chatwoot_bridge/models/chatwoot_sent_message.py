# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging

from odoo import api, fields, models

_logger = logging.getLogger(__name__)


class ChatwootSentMessage(models.Model):
    """A message the bridge posted in Chatwoot, committed at once in its own transaction.

    A job that posts several messages (the handoff: message, note) and fails half-way is
    retried: it skips what this log shows as posted, so nothing is posted twice. The log also
    tells the webhook which deliveries are echoes of the bridge's own messages.
    """

    _name = "chatwoot.sent.message"
    _description = "Message Posted in Chatwoot by the Bridge"
    _order = "id desc"
    _log_access = False

    account_id = fields.Many2one("chatwoot.account", required=True, index=True, ondelete="cascade")
    key = fields.Char(
        required=True,
        help="What was posted: bot:run:<id>:reply, bot:run:<id>:note... (the bot's messages, "
        "whose deliveries are echoes), in:<hub message id> (a customer's message of another "
        "channel, to be answered), conv:<connector>:<thread> (a hub conversation's number).",
    )
    message_id = fields.Char(string="Chatwoot Message", index=True)
    posted_at = fields.Datetime(default=fields.Datetime.now)

    _key_uniq = models.Constraint("UNIQUE(account_id, key)", "Already posted.")

    @api.model
    def _posted(self, account, key):
        """The Chatwoot message id posted under ``key``, or None."""
        self.env.cr.execute(
            "SELECT message_id FROM chatwoot_sent_message WHERE account_id = %s AND key = %s",
            (account.id, key),
        )
        row = self.env.cr.fetchone()
        return row[0] if row else None

    @api.model
    def _remember(self, account, key, message_id):
        """Commit at once that ``key`` was posted as ``message_id`` (outside the job's
        transaction, which may still roll back)."""
        with self.env.registry.cursor() as cr:
            cr.execute(
                "INSERT INTO chatwoot_sent_message (account_id, key, message_id, posted_at)"
                " VALUES (%s, %s, %s, now() at time zone 'UTC')"
                " ON CONFLICT (account_id, key) DO NOTHING",
                (account.id, key, str(message_id)),
            )

    @api.model
    def _is_echo(self, account_id, message_id):
        """Whether a delivery's message is one the bridge posted as the bot or as a note."""
        self.env.cr.execute(
            "SELECT 1 FROM chatwoot_sent_message"
            " WHERE account_id = %s AND message_id = %s AND key LIKE 'bot:%%'",
            (account_id, str(message_id)),
        )
        return bool(self.env.cr.fetchone())
