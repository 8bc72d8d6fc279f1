"""CSV input and output of the command-line tool: rows read one at a time
(so a pipe is answered row by row), values checked with the row they came
from, one output row per input row."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from typing import TextIO

import numpy as np

from .errors import CommandError

_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that were no text, as surrogateescape keeps them
_FLOAT32_MAX = float(np.finfo(np.float32).max)
MISSING = frozenset({"", "nan", "NaN", "NAN", "na", "NA", "N/A", "null", "NULL", "None"})


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

    def __init__(self, stream: TextIO, name: str, required: list[str], delimiter: str = ","):
        self.name = name
        self.n_rows = 0
        self._reader = csv.reader(_without_bom(stream), delimiter=delimiter)
        try:
            header = self._next()
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

    def _next(self) -> list[str]:
        """The next line's fields; a one-line error for what the csv module
        or the decoder cannot read (a field over csv's size limit, bytes
        that are not text in the encoding, gzip-compressed input). The
        stream is decoded with ``errors="surrogateescape"``, so that a bad
        byte is found in its row."""
        where = "the header" if self._reader.line_num == 0 else f"row {self.n_rows + 1}"
        try:
            fields = next(self._reader)
        except csv.Error as error:
            if "field limit" in str(error):
                raise CommandError(f"{self.name}: {where} (line {self._reader.line_num}) has a field longer "
                                   f"than {csv.field_size_limit()} characters (csv's limit)") from None
            raise CommandError(f"{self.name}: {where} (line {self._reader.line_num}): {error}") from None
        except UnicodeDecodeError as error:  # a stream decoded strictly
            raise CommandError(f"{self.name}: {where} is not {error.encoding} text (byte "
                               f"{error.object[error.start]:#04x}); see --encoding") from None
        for field in fields:
            if not field.isascii():
                bad = _UNDECODED.search(field)
                if bad:
                    if where == "the header" and fields[0].startswith("\x1f\udc8b"):
                        raise CommandError(f"{self.name}: the input is gzip-compressed: name the file *.gz, "
                                           "or pipe it through gunzip") from None
                    raise CommandError(f"{self.name}: {where} (line {self._reader.line_num}) is not text in "
                                       f"this encoding (byte {ord(bad.group()) - 0xDC00:#04x}); see --encoding")
        return fields

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        width = len(self.columns)
        while True:
            try:
                fields = self._next()
            except StopIteration:
                break
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


def format_number(value: float, dtype: str = "float64") -> str:
    """Shortest text that reads back as the same float of ``dtype``
    (``"float32"``: the value rounded to float32, so no digits beyond a
    float32 model's precision); empty for NaN.

    >>> format_number(0.1 + 0.2), format_number(0.1 + 0.2, "float32"), format_number(float("nan"))
    ('0.30000000000000004', '0.3', '')
    """
    if math.isnan(value):
        return ""
    if dtype == "float32" and abs(value) <= _FLOAT32_MAX:
        return str(np.float32(value))
    return repr(float(value))
