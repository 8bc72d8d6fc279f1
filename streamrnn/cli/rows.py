"""CSV input and output of the command-line tool: rows read one at a time
(so a pipe is answered row by row), values checked with the row they came
from, one output row per input row."""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterator
from typing import TextIO

MISSING = frozenset({"", "nan", "NaN", "NAN", "na", "NA", "N/A", "null", "NULL", "None"})


class CommandError(Exception):
    """An error the command reports in one line, with its exit status:
    2 for usage errors (a column that does not exist), 1 for bad data."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def _without_bom(lines) -> Iterator[str]:
    """The lines of a text stream, the first without a byte order mark
    (U+FEFF) at its start: Excel writes one, and a stream decoded as plain
    UTF-8 (standard input) keeps it as a character."""
    lines = iter(lines)
    for first in lines:
        yield first[1:] if first.startswith("\ufeff") else first
        break
    yield from lines


class CSVInput:
    """The data rows of a CSV stream whose first line names the columns.

    Parameters
    ----------
    stream
        A text stream (a file or standard input).
    name
        How error messages call the input (a file name or ``<stdin>``).
    required
        Columns that must be in the header.

    Examples
    --------
    >>> import io
    >>> rows = CSVInput(io.StringIO("time,value\\n1,2.5\\n2,\\n"), "<example>", ["value"])
    >>> [(n, rows.number(row, "value", n)) for n, row in rows]
    [(1, 2.5), (2, None)]
    """

    def __init__(self, stream: TextIO, name: str, required: list[str]):
        self.name = name
        self._reader = csv.reader(_without_bom(stream))
        try:
            header = next(self._reader)
        except StopIteration:
            raise CommandError(f"{name}: empty input (no header line with column names)") from None
        self.columns = [c.strip() for c in header]
        missing = [c for c in dict.fromkeys(required) if c not in self.columns]
        if missing:
            raise CommandError(
                f"{name}: column {', '.join(map(repr, missing))} not found; the input has columns "
                f"{', '.join(map(repr, self.columns))}",
                status=2,
            )
        self._index = {c: i for i, c in enumerate(self.columns)}
        self.n_rows = 0

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        width = len(self.columns)
        for fields in self._reader:
            if not fields or (len(fields) == 1 and not fields[0].strip() and width > 1):
                continue  # blank line
            self.n_rows += 1
            if len(fields) != width:
                raise CommandError(
                    f"{self.name}: row {self.n_rows} (line {self._reader.line_num}) has {len(fields)} "
                    f"fields, the header has {width}"
                )
            yield self.n_rows, fields
        if self.n_rows == 0:
            raise CommandError(f"{self.name}: empty input (a header but no data rows)")

    def text(self, fields: list[str], column: str) -> str:
        return fields[self._index[column]]

    def where(self, row: int) -> str:
        """Where row ``row`` (the last read) stands, for an error message."""
        return f"{self.name}: row {row} (line {self._reader.line_num})"

    def number(self, fields: list[str], column: str, row: int) -> float | None:
        """The value of ``column`` as a float; None when it is missing (empty,
        NaN, NA, null) or infinite; a clear error when it is not a number
        (Python's digit separators, as in ``1_000``, make no number)."""
        text = fields[self._index[column]].strip()
        if text in MISSING:
            return None
        try:
            if "_" in text:  # float() reads "1_000" as 1000, a Python literal, not a number in a CSV
                raise ValueError(text)
            value = float(text)
        except ValueError:
            raise CommandError(f"{self.where(row)}: column {column!r} has a non-numeric value {text!r}") from None
        return value if math.isfinite(value) else None


def parse_time(text: str) -> dt.datetime | None:
    """An ISO-8601 date or date-time (with or without time zone), else None."""
    text = text.strip()
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float; empty for NaN."""
    return "" if math.isnan(value) else repr(float(value))
