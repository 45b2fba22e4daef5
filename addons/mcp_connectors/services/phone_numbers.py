"""Phone numbers as customers type them: compare them ignoring formatting and prefixes.

Plain Python, no Odoo import. ``+55 (11) 98765-4321``, ``0055 11 98765 4321`` and
``11987654321`` are the same number: only the digits count, leading zeros (the ``00``
international prefix, a ``0`` trunk prefix) are dropped, and a number matches the same number
written with its country code (and area code) in front, as long as the shorter one still has
:data:`MIN_DIGITS` digits.
"""

import re

MIN_DIGITS = 8
# Country code (1 to 3 digits) plus, at most, a one-digit area code or trunk digit.
MAX_PREFIX_DIGITS = 4
_NON_DIGITS = re.compile(r"\D")


def significant_digits(text):
    """The digits of ``text`` without leading zeros (``"+55 (11) 98765-4321"`` ->
    ``"5511987654321"``)."""
    return _NON_DIGITS.sub("", text or "").lstrip("0")


def search_suffix(text):
    """The last :data:`MIN_DIGITS` digits of ``text``, that every matching number ends with.

    Raises ``ValueError`` when ``text`` has fewer digits than that.
    """
    digits = significant_digits(text)
    if len(digits) < MIN_DIGITS:
        raise ValueError(f"a phone number needs at least {MIN_DIGITS} digits")
    return digits[-MIN_DIGITS:]


def same_number(first, second):
    """Whether ``first`` and ``second`` are the same phone number (see the module docstring)."""
    one, other = sorted((significant_digits(first), significant_digits(second)), key=len)
    if len(one) < MIN_DIGITS:
        return False
    return other.endswith(one) and len(other) - len(one) <= MAX_PREFIX_DIGITS
