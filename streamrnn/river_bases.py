"""River's forecaster base class, imported without the rest of
``river.time_series``.

``from river.time_series.base import Forecaster`` first runs the package's
``__init__``, which imports River's whole time-series toolkit (SNARIMAX,
Holt-Winters, the forecasting metrics and, through them, River's
preprocessing, trees and data sets: about 0.9 s of a command's start, for
one abstract class). The module that defines the class needs only
``river.base``: it is loaded by itself, under its own name, so that a later
``import river.time_series`` finds it there and every part of River sees the
same class.

>>> import river.time_series
>>> Forecaster is river.time_series.base.Forecaster
True
"""

from __future__ import annotations

import importlib.util
import sys


def _forecaster_module():
    """``river.time_series.base``, loaded alone where its package is not
    imported yet (else, or where River's layout differs, imported as usual)."""
    name = "river.time_series.base"
    if name in sys.modules or "river.time_series" in sys.modules:
        return importlib.import_module(name)
    import river

    try:
        spec = importlib.util.spec_from_file_location(name, f"{river.__path__[0]}/time_series/base.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        module.Forecaster  # noqa: B018 (the class this module is for)
    except Exception:  # another layout of River: the ordinary import
        sys.modules.pop(name, None)
        return importlib.import_module(name)
    return module


Forecaster = _forecaster_module().Forecaster
