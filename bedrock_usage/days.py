"""UTC days: the unit of everything this pipeline reads and writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

# CloudWatch keeps hourly data for 455 days; a day is readable in full only while its
# first hour is younger than that, so the oldest whole day is today - 454.
RETENTION_DAYS = 455


class DayRangeError(ValueError):
    """A range of days that cannot be read; the message says why and what to do."""


def utc_today() -> date:
    return datetime.now(UTC).date()


def oldest_readable_day(today: date | None = None) -> date:
    return (today or utc_today()) - timedelta(days=RETENTION_DAYS - 1)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DayRangeError(f"'{text}' is not a date: write days as YYYY-MM-DD.") from None


@dataclass(frozen=True)
class DayRange:
    """An inclusive range of whole UTC days."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        """00:00Z of the first day: GetMetricData buckets align to StartTime."""
        return datetime.combine(self.first, time(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """00:00Z after the last day (EndTime is exclusive)."""
        return datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=UTC)

    def __iter__(self):
        return (self.first + timedelta(days=i) for i in range(self.days))

    def __str__(self) -> str:
        return f"{self.first}..{self.last}"

    def chunks(self, days: int) -> list[DayRange]:
        """The range cut into consecutive ranges of at most `days` days."""
        starts = range(0, self.days, days)
        return [
            DayRange(
                self.first + timedelta(days=i),
                min(self.last, self.first + timedelta(days=i + days - 1)),
            )
            for i in starts
        ]


def readable_range(first: date, last: date, today: date | None = None) -> DayRange:
    """The range, if CloudWatch can answer it in full; otherwise a DayRangeError."""
    today = today or utc_today()
    if first > last:
        raise DayRangeError(f"The range {first}..{last} ends before it starts: swap the dates.")
    if last > today:
        raise DayRangeError(
            f"The range {first}..{last} ends after today ({today}, UTC): CloudWatch has no "
            "data for future days. End the range today or earlier."
        )
    oldest = oldest_readable_day(today)
    if first < oldest:
        raise DayRangeError(
            f"The range {first}..{last} starts before {oldest}: CloudWatch keeps metrics for "
            f"{RETENTION_DAYS} days, so older days cannot be read. Start on {oldest} or later."
        )
    return DayRange(first, last)
