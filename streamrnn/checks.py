"""Checks of the arguments that the package's constructors and methods take,
and :func:`unmasked`, the array conversion that keeps masked entries missing.

Each ``check_*`` function raises ``ValueError`` with a message that names the
argument and shows the value it was given, and returns the value converted to
the plain Python type (``int``, ``float``) the caller stores or passes on.
:func:`is_integer` is the predicate they share, for the checks whose message
says more than "an integer".

A bool is never a number here (``True`` is not a size of 1), while NumPy's
integers and floats are:

>>> import numpy as np
>>> check_integer("k1", np.int64(8))
8
>>> check_integer("k1", True)
Traceback (most recent call last):
    ...
ValueError: k1 must be a positive integer, got True
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def is_integer(value) -> bool:
    """Whether ``value`` is an integer (:class:`numbers.Integral`, NumPy's
    integers included) and not a bool.

    >>> import numpy as np
    >>> [is_integer(v) for v in (3, np.int32(3), True, np.True_, 3.0, "3")]
    [True, True, False, False, False, False]
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def finite(v: numbers.Real) -> bool:
    """Whether a real number is a finite float (an int beyond the floats is
    not: it would overflow).

    >>> finite(1e308), finite(float("nan")), finite(10**400)
    (True, False, False)
    """
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def is_finite_real(value) -> bool:
    """Whether ``value`` is a finite real number (:class:`numbers.Real`,
    NumPy's numbers included) and not a bool.

    >>> [is_finite_real(v) for v in (0.5, 2, float("inf"), float("nan"), 10**400, False, "1")]
    [True, True, False, False, False, False, False]
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and finite(value)


def check_integer(name: str, value, low: int = 1, none_ok: bool = False) -> int | None:
    """``value`` as an ``int``, checked to be an integer ``>= low`` (or None,
    returned as is, when ``none_ok``).

    >>> check_integer("horizon", 3)
    3
    >>> check_integer("max_idle", None, none_ok=True) is None
    True
    >>> check_integer("grace_period", -1, low=0)
    Traceback (most recent call last):
        ...
    ValueError: grace_period must be a non-negative integer, got -1
    >>> check_integer("seasonality", 1.0, low=2, none_ok=True)
    Traceback (most recent call last):
        ...
    ValueError: seasonality must be an integer >= 2 or None, got 1.0
    """
    if value is None and none_ok:
        return None
    if not is_integer(value) or value < low:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
        raise ValueError(f"{name} must be {what}{' or None' if none_ok else ''}, got {value!r}")
    return int(value)


def check_real(name: str, value, low=None, high=None, low_open: bool = False, high_open: bool = True) -> float:
    """``value`` as a ``float``, checked to be a finite real number within
    the bounds given: ``[low, high)`` by default, ``(low, ...`` with
    ``low_open``, ``..., high]`` without ``high_open``; None: unbounded.

    >>> check_real("momentum", 0.9, 0.0, 1.0)
    0.9
    >>> check_real("lr", 0, low=0.0, low_open=True)
    Traceback (most recent call last):
        ...
    ValueError: lr must be > 0.0, got 0
    >>> check_real("eps", float("nan"))
    Traceback (most recent call last):
        ...
    ValueError: eps must be a finite real number, got nan
    """
    if not is_finite_real(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return float(value)


def check_choice(name: str, value, options):
    """``value``, checked to be one of ``options`` (a collection that
    ``in`` searches: a set, a dict's keys, a tuple).

    >>> check_choice("cell", "gru", {"rnn", "gru", "lstm"})
    'gru'
    >>> check_choice("cell", "GRU", {"rnn", "gru", "lstm"})
    Traceback (most recent call last):
        ...
    ValueError: cell must be one of ['gru', 'lstm', 'rnn'], got 'GRU'
    """
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def check_seed(seed) -> int | None:
    """A seed: None or a non-negative integer (what NumPy's generators take).

    >>> check_seed(None) is None, check_seed(7)
    (True, 7)
    >>> check_seed(-1)
    Traceback (most recent call last):
        ...
    ValueError: seed must be a non-negative integer or None, got -1
    """
    return check_integer("seed", seed, low=0, none_ok=True)


def unmasked(a) -> np.ndarray:
    """``a`` as an array; a masked array's masked entries as NaN (missing),
    where ``np.asarray`` would keep the values under the mask.

    >>> unmasked(np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]))
    array([ 1., nan,  3.])
    """
    if not isinstance(a, np.ma.MaskedArray):
        return np.asarray(a)
    if not np.ma.getmask(a).any():
        return a.data
    return (a.astype(np.float64) if a.dtype.kind in "biu" else a).filled(np.nan)
