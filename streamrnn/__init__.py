"""streamrnn: recurrent networks that learn online, in Numba kernels, behind River's API.

Quickstart (the README's): forecast River's bundled WaterFlow series one hour
ahead, learning each value after forecasting it, beside a persistence forecast.

>>> from river import datasets, metrics
>>> from streamrnn import LSTMForecaster
>>> model, ours, persistence, last = LSTMForecaster(seed=0), metrics.MAE(), metrics.MAE(), None
>>> for x, y in datasets.WaterFlow():
...     if last is not None:
...         ours.update(y, model.forecast(horizon=1)[0])
...         persistence.update(y, last)
...     model.learn_one(y)
...     last = y
>>> ours, persistence
(MAE: 0.630184, MAE: 0.63101)
>>> [round(v, 1) for v in model.forecast(horizon=3)]
[104.1, 104.1, 104.1]
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: The public names and the modules that define them: imported on first use
#: (``import streamrnn`` alone loads neither River nor the kernels, so the
#: command line's ``--help``, ``--version`` and ``info`` start at once).
_EXPORTS = {
    "GRUClassifier": "classification", "LSTMClassifier": "classification", "RNNClassifier": "classification",
    "GRUForecaster": "forecasting", "LSTMForecaster": "forecasting", "RNNForecaster": "forecasting",
    "GlobalForecaster": "global_forecasting",
    "GRURegressor": "regression", "LSTMRegressor": "regression", "RNNRegressor": "regression",
    "ModelBank": "bank", "SharedWeightsBank": "shared_bank", "OnlineRNN": "learner",
    "PredictiveDetector": "anomaly", "ReconstructionDetector": "anomaly",
    "load": "persistence", "save": "persistence",
}

__all__ = sorted([*_EXPORTS, "__version__"], key=str.lower)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streamrnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # (later look-ups skip this function)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
