"""The ``--time`` column's dates: ISO 8601, and any other format pandas
parses unambiguously (``1949-01``, ``Jan 1980``, ``Q1 1965``, ...)."""

from __future__ import annotations

import datetime as dt
import re
import warnings

import pandas as pd
from pandas.tseries.api import guess_datetime_format

_QUARTER = re.compile(r"^Q([1-4])[\s/-]*(\d{4})$|^(\d{4})[\s/-]*Q([1-4])$", re.IGNORECASE)


def _pandas(text: str, dayfirst: bool) -> dt.datetime | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            when = pd.to_datetime(text, dayfirst=dayfirst)
        except (ValueError, OverflowError, TypeError):
            return None
    if when is pd.NaT or not isinstance(when, pd.Timestamp):
        return None
    return when.to_pydatetime()


class TimeParser:
    """Reads the dates of one column. A value whose day and month could be
    either way round (``01/02/2020``) takes the order of the column's
    earlier unambiguous values (``13/02/2020`` puts the day first), and is
    no date before one was seen.

    Examples
    --------
    >>> times = TimeParser()
    >>> [str(times.parse(t)) for t in ("1949-01", "Jan 1980", "Q2 1965", "05/06/2020", "31/12/2020", "05/06/2020")]
    ['1949-01-01 00:00:00', '1980-01-01 00:00:00', '1965-04-01 00:00:00', 'None', '2020-12-31 00:00:00', '2020-06-05 00:00:00']
    >>> times.parse("12.5") is None
    True
    """

    def __init__(self):
        self.dayfirst: bool | None = None
        self._format: str | None = None

    def parse(self, text: str) -> dt.datetime | None:
        """The date-time ``text`` names, or None when it names none."""
        text = text.strip()
        if not text or not any(c.isalpha() or c in "-/:." for c in text) and len(text) != 4:
            return None  # a plain number (a row count, seconds) is no date; "2020" is one
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        quarter = _QUARTER.match(text)
        if quarter:
            q, year = (quarter.group(1), quarter.group(2)) if quarter.group(1) else (quarter.group(4), quarter.group(3))
            return dt.datetime(int(year), 3 * int(q) - 2, 1)
        if re.fullmatch(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?", text) and len(text) != 4:
            return None
        if self._format is not None:  # the format of the column's earlier values, fast
            try:
                return dt.datetime.strptime(text, self._format)
            except ValueError:
                pass
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            month_first, day_first = (guess_datetime_format(text, dayfirst=first) for first in (False, True))
        if month_first and day_first and month_first != day_first:  # 01/02/2020
            if self.dayfirst is None:
                return None  # ambiguous, and nothing yet to tell
            fmt = day_first if self.dayfirst else month_first
        else:
            fmt = month_first or day_first
            if fmt and "%d" in fmt and "%m" in fmt:
                self.dayfirst = fmt.index("%d") < fmt.index("%m")
        if fmt:
            try:
                when = dt.datetime.strptime(text, fmt)
            except ValueError:
                pass
            else:
                self._format = fmt
                return when
        return _pandas(text, bool(self.dayfirst))


def months_between(last: dt.datetime, when: dt.datetime) -> int | None:
    """The whole number of calendar months from ``last`` to ``when``, when
    they fall on the same day (at most the 28th, which every month has) and
    time of day: monthly, quarterly or yearly data; else None.

    >>> months_between(dt.datetime(1949, 1, 1), dt.datetime(1949, 4, 1))
    3
    >>> months_between(dt.datetime(1949, 1, 1), dt.datetime(1949, 1, 31)) is None
    True
    """
    if when.day != last.day or when.day > 28 or when.timetz() != last.timetz():
        return None
    months = (when.year - last.year) * 12 + when.month - last.month
    return months if months > 0 else None


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    """``when`` moved ``months`` calendar months on (its day at most the
    28th); ``OverflowError`` past the year 9999.

    >>> add_months(dt.datetime(1960, 12, 1), 3)
    datetime.datetime(1961, 3, 1, 0, 0)
    """
    index = when.month - 1 + months
    year = when.year + index // 12
    if year > dt.MAXYEAR:
        raise OverflowError("date value out of range")
    return when.replace(year=year, month=index % 12 + 1)
