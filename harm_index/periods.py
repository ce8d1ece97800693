"""Periods: month ranges, calendar years, financial years, and the named periods.

Financial years run April to March, as ONS uses. The named periods are the ones the workshops asked for.

Defaults (all configurable through settings): the baseline is the five financial years April 2018 to
March 2023; "pre-covid" runs to February 2020 (from the baseline's start); "covid" is the restrictions
period March 2020 to June 2021.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Protocol

from harmmap.errors import InvalidParameterError

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_FINANCIAL_YEAR = re.compile(r"^FY(\d{4})(?:/(\d{2}))?$", re.IGNORECASE)
_CALENDAR_YEAR = re.compile(r"^(\d{4})$")
# The spans, in months, at which the harm aggregate is kept: calendar year, calendar quarter, month.
SPANS = (12, 3, 1)


@dataclass(frozen=True)
class Period:
    """An inclusive run of whole months."""

    start: dt.date
    end: dt.date
    label: str

    @property
    def months(self) -> int:
        """Number of months in the period."""
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1

    @property
    def end_exclusive(self) -> dt.date:
        """The first month after the period."""
        return add_months(self.end, 1)

    def spans(self, longest: int = 12) -> list[tuple[int, dt.date]]:
        """The period as the fewest whole calendar years, quarters and months: (span in months, start).

        The aggregate holds census geographies' counts at each of the three spans, so a long period sums
        a handful of stored rows per area instead of one per month (the 60-month baseline is 8 spans,
        not 60). H3 cells are kept by month only: ``longest=1`` gives the months.
        """
        if longest not in SPANS:
            raise ValueError(f"longest must be one of {SPANS}, not {longest}")
        out: list[tuple[int, dt.date]] = []
        current, stop = self.start, self.end_exclusive
        while current < stop:
            index = current.year * 12 + current.month - 1
            for span in (s for s in SPANS if s <= longest):
                if index % span == 0 and add_months(current, span) <= stop:
                    out.append((span, current))
                    current = add_months(current, span)
                    break
        return out


@dataclass(frozen=True)
class NamedPeriods:
    """The configurable named periods."""

    baseline: Period
    pre_covid: Period
    covid: Period

    def get(self, name: str) -> Period | None:
        """A named period by its name (``baseline``, ``pre-covid``, ``covid``)."""
        return {"baseline": self.baseline, "pre-covid": self.pre_covid, "covid": self.covid}.get(name.lower())


def add_months(day: dt.date, months: int) -> dt.date:
    """The first of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month(text: str, parameter: str = "month") -> dt.date:
    """A YYYY-MM month as its first day."""
    match = _MONTH.match(text.strip())
    if not match:
        raise InvalidParameterError(parameter, f"{text!r} is not a month; use YYYY-MM, e.g. 2018-04")
    return dt.date(int(match[1]), int(match[2]), 1)


def financial_year(start_year: int) -> Period:
    """The financial year April ``start_year`` to March ``start_year + 1`` (label FY2019/20)."""
    return Period(
        dt.date(start_year, 4, 1),
        dt.date(start_year + 1, 3, 1),
        f"FY{start_year}/{(start_year + 1) % 100:02d}",
    )


def parse_period(text: str, named: NamedPeriods, parameter: str = "period") -> Period:
    """``2018-04..2023-03``, ``2019-06``, ``2019`` (calendar), ``FY2019/20`` or ``FY2019``, or a name."""
    value = text.strip()
    found = named.get(value)
    if found is not None:
        return found
    if ".." in value:
        first, _, last = value.partition("..")
        start, end = month(first, parameter), month(last, parameter)
        if end < start:
            raise InvalidParameterError(parameter, f"{value!r} ends before it starts")
        return Period(start, end, f"{start:%Y-%m} to {end:%Y-%m}")
    if _MONTH.match(value):
        start = month(value, parameter)
        return Period(start, start, f"{start:%Y-%m}")
    if match := _CALENDAR_YEAR.match(value):
        year = int(match[1])
        return Period(dt.date(year, 1, 1), dt.date(year, 12, 1), str(year))
    if match := _FINANCIAL_YEAR.match(value):
        year = int(match[1])
        if match[2] is not None and int(match[2]) != (year + 1) % 100:
            raise InvalidParameterError(
                parameter, f"{value!r}: a financial year runs from one year into the next"
            )
        return financial_year(year)
    raise InvalidParameterError(
        parameter,
        f"{value!r} is not a period; use YYYY-MM..YYYY-MM, YYYY-MM, YYYY, FY2019/20, or one of "
        "baseline, pre-covid, covid",
        allowed=["YYYY-MM..YYYY-MM", "YYYY-MM", "YYYY", "FYyyyy/yy", "baseline", "pre-covid", "covid"],
    )


def named_periods(
    baseline_start: str = "2018-04",
    baseline_end: str = "2023-03",
    covid_start: str = "2020-03",
    covid_end: str = "2021-06",
) -> NamedPeriods:
    """The named periods, from configurable months."""
    base_start, base_end = month(baseline_start, "baseline_start"), month(baseline_end, "baseline_end")
    c_start, c_end = month(covid_start, "covid_start"), month(covid_end, "covid_end")
    if base_end < base_start or c_end < c_start:
        raise InvalidParameterError("baseline", "a period ends before it starts")
    return NamedPeriods(
        baseline=Period(base_start, base_end, f"baseline {base_start:%b %Y} - {base_end:%b %Y}"),
        pre_covid=Period(
            base_start,
            add_months(c_start, -1),
            f"pre-COVID {base_start:%b %Y} - {add_months(c_start, -1):%b %Y}",
        ),
        covid=Period(c_start, c_end, f"COVID restrictions {c_start:%b %Y} - {c_end:%b %Y}"),
    )


class PeriodSettings(Protocol):
    """The settings fields the named periods are built from (``harmmap.settings.Settings``)."""

    baseline_start: str
    baseline_end: str
    covid_start: str
    covid_end: str


def configured_periods(settings: PeriodSettings) -> NamedPeriods:
    """The named periods as the settings configure them."""
    return named_periods(
        settings.baseline_start, settings.baseline_end, settings.covid_start, settings.covid_end
    )


def period_or_baseline(settings: PeriodSettings, value: str | None, parameter: str = "period") -> Period:
    """``value`` parsed as a period (``parameter`` names it in errors), or the configured baseline."""
    named = configured_periods(settings)
    return parse_period(value, named, parameter) if value else named.baseline
