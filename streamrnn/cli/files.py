"""The files of the command-line tool: the input (plain, gzip-compressed
or standard input, in an encoding) and the outputs checked before the run."""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
from typing import TextIO

from .rows import CommandError


def check_writable(option: str, path: str) -> None:
    """A usage error, before any row is read, when ``path`` cannot be
    written: its folder is missing or not writable, or it is a folder."""
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise CommandError(f"{option}: {path} is a folder", status=2)
    if not os.path.isdir(folder):
        raise CommandError(f"{option}: cannot write {path}: no such folder {folder}", status=2)
    if not os.access(folder, os.W_OK):
        raise CommandError(f"{option}: cannot write {path}: the folder {folder} is not writable", status=2)


def check_plot(path: str, option: str = "--plot", needed: bool = True) -> bool:
    """A usage error, before the run, when the plot cannot be written: its
    folder missing, or a file extension matplotlib does not write. Whether
    matplotlib is installed (without it: a usage error when ``needed``)."""
    check_writable(option, path)
    if importlib.util.find_spec("matplotlib") is None:
        if needed:
            raise CommandError(f"{option} needs matplotlib: pip install 'streamrnn[plot]'", status=2)
        return False
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    extension = os.path.splitext(path)[1][1:].lower()
    if extension not in formats:
        raise CommandError(f"{option}: cannot write {path}: the file name must end in one of "
                           f"{', '.join('.' + f for f in sorted(formats))}", status=2)
    return True


def open_input(path: str, stdin: TextIO, encoding: str = "utf-8") -> tuple[TextIO, str, bool]:
    """The stream, its name and whether it is a pipe (answered row by row).
    A ``.gz`` file is read decompressed; standard input is decoded strictly
    in ``encoding`` (bytes that are not text are kept, as surrogates, for
    :class:`~.rows.CSVInput` to report with their row)."""
    if path == "-":
        buffer = getattr(stdin, "buffer", None)
        if buffer is not None:
            stdin = io.TextIOWrapper(buffer, encoding=encoding, errors="surrogateescape", newline="")
        return stdin, "<stdin>", True
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rt", newline="", encoding=encoding, errors="surrogateescape"), path, False
        return open(path, newline="", encoding=encoding, errors="surrogateescape"), path, False
    except FileNotFoundError:
        raise CommandError(f"no such file: {path}", status=2) from None
    except IsADirectoryError:
        raise CommandError(f"{path} is a folder, not a CSV file", status=2) from None
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror or error}", status=2) from None


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
