"""The ``streamrnn`` command-line tool (``streamrnn ...`` or ``python -m streamrnn ...``)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
