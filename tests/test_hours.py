"""Service hours: open/closed decisions on the tenant's wall clock (DST, holidays, midnight)."""

import importlib
from datetime import date, datetime, timedelta, timezone

import pytest


@pytest.fixture(scope="module")
def hours(services):
    return importlib.import_module(f"{services.__name__}.hours")


WEEKDAYS_8_TO_18 = {day: [(8.0, 12.0), (13.0, 18.0)] for day in range(5)}


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def test_open_and_closed_on_local_wall_clock(hours):
    # Monday 2026-03-02, São Paulo is UTC-3 (no DST since 2019).
    assert hours.is_open(utc(2026, 3, 2, 11, 0), "America/Sao_Paulo", WEEKDAYS_8_TO_18)  # 08:00
    assert not hours.is_open(utc(2026, 3, 2, 10, 59), "America/Sao_Paulo", WEEKDAYS_8_TO_18)
    # 12:30 local: lunch break
    assert not hours.is_open(utc(2026, 3, 2, 15, 30), "America/Sao_Paulo", WEEKDAYS_8_TO_18)
    assert hours.is_open(utc(2026, 3, 2, 16, 0), "America/Sao_Paulo", WEEKDAYS_8_TO_18)
    # The closing hour is excluded: 18:00 local is closed.
    assert not hours.is_open(utc(2026, 3, 2, 21, 0), "America/Sao_Paulo", WEEKDAYS_8_TO_18)
    assert hours.is_open(utc(2026, 3, 2, 20, 59, 59), "America/Sao_Paulo", WEEKDAYS_8_TO_18)


def test_weekday_is_the_local_one(hours):
    # Saturday 01:00 UTC is still Friday 22:00 in São Paulo.
    late_friday = {4: [(20.0, 24.0)]}
    assert hours.is_open(utc(2026, 3, 7, 1, 0), "America/Sao_Paulo", late_friday)
    assert not hours.is_open(utc(2026, 3, 7, 1, 0), "UTC", late_friday)


def test_naive_datetime_means_utc(hours):
    assert hours.is_open(datetime(2026, 3, 2, 11, 0), "America/Sao_Paulo", WEEKDAYS_8_TO_18)
    assert not hours.is_open(datetime(2026, 3, 2, 10, 0), "America/Sao_Paulo", WEEKDAYS_8_TO_18)


def test_aware_datetime_in_another_zone(hours):
    lisbon = hours.zone("Europe/Lisbon")
    # 14:00 in Lisbon (UTC+0 in March before DST) is 11:00 in São Paulo.
    at = datetime(2026, 3, 2, 14, 0, tzinfo=lisbon)
    assert hours.is_open(at, "America/Sao_Paulo", WEEKDAYS_8_TO_18)


def test_opening_past_midnight_as_two_intervals(hours):
    bar = {4: [(18.0, 24.0)], 5: [(0.0, 2.0)]}
    assert hours.is_open(utc(2026, 3, 7, 2, 59), "America/Sao_Paulo", bar)  # Fri 23:59
    assert hours.is_open(utc(2026, 3, 7, 3, 0), "America/Sao_Paulo", bar)  # Sat 00:00
    assert hours.is_open(utc(2026, 3, 7, 4, 59), "America/Sao_Paulo", bar)  # Sat 01:59
    assert not hours.is_open(utc(2026, 3, 7, 5, 0), "America/Sao_Paulo", bar)  # Sat 02:00


def test_daylight_saving_follows_the_wall_clock(hours):
    # New York: DST starts 2026-03-08 (UTC-5 -> UTC-4). 09:00 local moves from 14:00 to 13:00 UTC.
    nine_to_five = {day: [(9.0, 17.0)] for day in range(7)}
    assert hours.is_open(utc(2026, 3, 7, 14, 0), "America/New_York", nine_to_five)
    assert not hours.is_open(utc(2026, 3, 7, 13, 30), "America/New_York", nine_to_five)
    assert hours.is_open(utc(2026, 3, 9, 13, 0), "America/New_York", nine_to_five)
    assert not hours.is_open(utc(2026, 3, 9, 12, 30), "America/New_York", nine_to_five)
    # Autumn: 2026-11-01 01:30 happens twice; both instants are inside 01:00-02:00.
    one_to_two = {6: [(1.0, 2.0)]}
    assert hours.is_open(utc(2026, 11, 1, 5, 30), "America/New_York", one_to_two)  # EDT 01:30
    assert hours.is_open(utc(2026, 11, 1, 6, 30), "America/New_York", one_to_two)  # EST 01:30
    assert not hours.is_open(utc(2026, 11, 1, 7, 30), "America/New_York", one_to_two)


def test_holidays_close_the_local_day(hours):
    monday = date(2026, 3, 2)
    assert not hours.is_open(
        utc(2026, 3, 2, 14, 0), "America/Sao_Paulo", WEEKDAYS_8_TO_18, holidays=[monday]
    )
    # 02:00 UTC on Tuesday is still Monday evening locally: the Monday holiday applies.
    evening = {0: [(20.0, 24.0)], 1: [(0.0, 24.0)]}
    assert not hours.is_open(utc(2026, 3, 3, 2, 0), "America/Sao_Paulo", evening, [monday])
    assert hours.is_open(utc(2026, 3, 3, 4, 0), "America/Sao_Paulo", evening, [monday])


def test_yearly_holidays(hours):
    every_day = {day: [(0.0, 24.0)] for day in range(7)}
    christmas = [(12, 25)]
    assert not hours.is_open(utc(2030, 12, 25, 15, 0), "UTC", every_day, (), christmas)
    assert hours.is_open(utc(2030, 12, 26, 15, 0), "UTC", every_day, (), christmas)


def test_no_intervals_means_closed(hours):
    assert not hours.is_open(utc(2026, 3, 2, 14, 0), "America/Sao_Paulo", {})


def test_full_day_interval(hours):
    every_day = {day: [(0.0, 24.0)] for day in range(7)}
    start = utc(2026, 3, 1, 0, 0)
    assert all(
        hours.is_open(start + timedelta(minutes=37 * step), "America/Sao_Paulo", every_day)
        for step in range(300)
    )


@pytest.mark.parametrize("name", ["", None, "Mars/Olympus", "../etc/passwd", "America/"])
def test_unknown_time_zone_is_a_clear_error(hours, name):
    with pytest.raises(hours.UnknownTimezone):
        hours.is_open(utc(2026, 3, 2, 14, 0), name, WEEKDAYS_8_TO_18)


@pytest.mark.parametrize(
    ("start", "end", "valid"),
    [
        (8.0, 12.0, True),
        (0.0, 24.0, True),
        (12.0, 12.0, False),
        (18.0, 8.0, False),
        (-1.0, 8.0, False),
        (8.0, 24.5, False),
    ],
)
def test_interval_error(hours, start, end, valid):
    assert (hours.interval_error(start, end) is None) is valid


def test_overlaps(hours):
    assert hours.overlaps([(8.0, 12.0), (12.0, 18.0)]) == []
    assert hours.overlaps([(13.0, 18.0), (8.0, 14.0)]) == [((8.0, 14.0), (13.0, 18.0))]
    assert hours.overlaps([(8.0, 18.0), (9.0, 10.0), (11.0, 12.0)]) == [
        ((8.0, 18.0), (9.0, 10.0)),
        ((8.0, 18.0), (11.0, 12.0)),
    ]
    assert hours.overlaps([(8.0, 12.0), (8.0, 12.0)]) == [((8.0, 12.0), (8.0, 12.0))]


@pytest.mark.parametrize(
    ("value", "text"), [(0.0, "00:00"), (8.5, "08:30"), (17.999, "18:00"), (24.0, "24:00")]
)
def test_format_hour(hours, value, text):
    assert hours.format_hour(value) == text


def test_format_interval(hours):
    assert hours.format_interval(8.5, 12.0) == "08:30-12:00"
    assert hours.format_interval(22, 24) == "22:00-24:00"
