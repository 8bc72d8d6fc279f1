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
