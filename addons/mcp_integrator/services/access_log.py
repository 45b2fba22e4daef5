"""Keep the secrets of webhook URLs out of the HTTP access log.

Some URLs carry a secret in their path or query (the Chatwoot webhook's path token, a
channel's inbound token, Meta's verify token in its handshake), and the web server logs every
request line at INFO. :func:`hide_path_tokens` puts one filter on the access logger that masks
everything after each registered path prefix, up to the end of the request target. Plain Python.
"""

import logging
import re

ACCESS_LOGGER = "werkzeug"  # Odoo's HTTP server logs its request lines there
MASK = "***"


class SecretPathFilter(logging.Filter):
    """Rewrites a record whose message holds a registered prefix; never drops a record."""

    def __init__(self):
        super().__init__()
        self._prefixes = ()
        self._pattern = None

    def add_prefix(self, prefix):
        if prefix in self._prefixes:
            return
        self._prefixes = (*self._prefixes, prefix)
        alternatives = "|".join(re.escape(item) for item in self._prefixes)
        # up to the end of the request target: a space or the quote that closes the line
        self._pattern = re.compile(rf"({alternatives})[^\s\"]+")

    def filter(self, record):
        pattern = self._pattern
        if pattern is None:
            return True
        message = record.getMessage()
        masked = pattern.sub(rf"\g<1>{MASK}", message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


_FILTER = SecretPathFilter()


def hide_path_tokens(prefix, logger_name=ACCESS_LOGGER):
    """Mask what follows ``prefix`` (e.g. ``/chatwoot/webhook/``) in the access log; safe to
    call again (each addon registers its own URLs when its controller is imported)."""
    _FILTER.add_prefix(prefix)
    logger = logging.getLogger(logger_name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
