"""Ranges of UTC days: what CloudWatch can answer in full."""

from datetime import date, timedelta

import pytest

from bedrock_usage.days import DayRange, DayRangeError, parse_day, readable_range

TODAY = date(2026, 11, 27)


def test_the_oldest_whole_readable_day_is_454_days_back():
    assert readable_range(TODAY - timedelta(days=454), TODAY, TODAY).days == 455
    with pytest.raises(DayRangeError, match="455 days.*Start on 2025-08-30"):
        readable_range(TODAY - timedelta(days=455), TODAY, TODAY)


def test_a_range_ending_after_today_is_refused():
    assert readable_range(TODAY, TODAY, TODAY).days == 1
    with pytest.raises(DayRangeError, match="ends after today"):
        readable_range(TODAY, TODAY + timedelta(days=1), TODAY)


def test_a_reversed_range_and_a_bad_date_are_refused():
    with pytest.raises(DayRangeError, match="ends before it starts"):
        readable_range(TODAY, TODAY - timedelta(days=1), TODAY)
    with pytest.raises(DayRangeError, match="YYYY-MM-DD"):
        parse_day("27/11/2026")


def test_a_range_spans_whole_utc_days():
    day_range = DayRange(date(2026, 11, 1), date(2026, 11, 3))
    assert day_range.start.isoformat() == "2026-11-01T00:00:00+00:00"
    assert day_range.end.isoformat() == "2026-11-04T00:00:00+00:00"
    assert list(day_range)[-1] == date(2026, 11, 3)
