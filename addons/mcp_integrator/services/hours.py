# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Service hours: "is this tenant open at instant X?".

Plain Python (no Odoo). A week is described as intervals of local wall-clock hours per weekday
(0 = Monday ... 6 = Sunday, as ``datetime.weekday()`` and Odoo's resource calendars), expressed as
floats (8.5 = 08:30, 24.0 = end of the day). An opening that crosses midnight is two intervals:
``22-24`` on one day and ``0-2`` on the next. Holidays close the whole local day.

Instants are converted to the tenant's IANA time zone with ``zoneinfo``, so daylight-saving
changes are followed: the decision is always taken on the local wall clock.
"""

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class UnknownTimezone(ValueError):
    """The time zone name is not a valid IANA zone."""


def zone(tz_name):
    """Return the ``ZoneInfo`` for ``tz_name`` or raise :class:`UnknownTimezone`."""
    if not tz_name or not isinstance(tz_name, str):
        raise UnknownTimezone(f"Invalid time zone: {tz_name!r}")
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimezone(f"Unknown time zone: {tz_name!r}") from exc


def interval_error(hour_from, hour_to):
    """Return why ``[hour_from, hour_to)`` is not a valid interval of one day, or ``None``."""
    if not 0.0 <= hour_from <= 24.0 or not 0.0 <= hour_to <= 24.0:
        return "hours must be between 00:00 and 24:00"
    if hour_from >= hour_to:
        return "the opening hour must be before the closing hour"
    return None


def overlaps(intervals):
    """Return the pairs of overlapping intervals among ``intervals`` (same weekday).

    Intervals are half-open, so ``8-12`` and ``12-18`` touch without overlapping.
    """
    ordered = sorted(intervals)
    found = []
    for index, (start, end) in enumerate(ordered):
        for other_start, other_end in ordered[index + 1 :]:
            if other_start >= end:
                break
            found.append(((start, end), (other_start, other_end)))
    return found


def format_hour(value):
    """Format a float hour as ``HH:MM`` (``8.5`` -> ``08:30``, ``24.0`` -> ``24:00``)."""
    minutes = round(value * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def format_interval(hour_from, hour_to):
    """Format an interval of float hours as ``HH:MM-HH:MM`` (``(8.5, 12)`` -> ``08:30-12:00``)."""
    return f"{format_hour(hour_from)}-{format_hour(hour_to)}"


def local_time(at, tz_name):
    """Convert ``at`` (aware, or naive meaning UTC) to the wall clock of ``tz_name``."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(zone(tz_name))


def is_holiday(day, holidays=(), yearly_holidays=()):
    """Whether the local date ``day`` is a holiday (exact dates or yearly ``(month, day)``)."""
    return day in set(holidays) or (day.month, day.day) in set(yearly_holidays)


def is_open(
    at: datetime,
    tz_name: str,
    intervals: Mapping[int, Iterable[tuple[float, float]]],
    holidays: Iterable[date] = (),
    yearly_holidays: Iterable[tuple[int, int]] = (),
) -> bool:
    """Whether a business with these weekly ``intervals`` is open at the instant ``at``.

    :param at: aware datetime, or naive datetime meaning UTC (Odoo's convention)
    :param tz_name: IANA time zone of the business (e.g. ``America/Sao_Paulo``)
    :param intervals: ``{weekday: [(hour_from, hour_to), ...]}``, weekday 0 = Monday
    :param holidays: local dates on which the business is closed all day
    :param yearly_holidays: ``(month, day)`` pairs closed every year (e.g. ``(12, 25)``)
    """
    local = local_time(at, tz_name)
    if is_holiday(local.date(), holidays, yearly_holidays):
        return False
    hour = local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600
    return any(start <= hour < end for start, end in intervals.get(local.weekday(), ()))
