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

from ._docs import document
from .anomaly import PredictiveDetector, ReconstructionDetector
from .bank import ModelBank
from .shared_bank import SharedWeightsBank
from .classification import GRUClassifier, LSTMClassifier, RNNClassifier
from .forecasting import GRUForecaster, LSTMForecaster, RNNForecaster
from .global_forecasting import GlobalForecaster
from .learner import OnlineRNN
from .persistence import load, save
from .regression import GRURegressor, LSTMRegressor, RNNRegressor

__version__ = "0.1.0"

_PUBLIC_ESTIMATORS = (GRUClassifier, LSTMClassifier, RNNClassifier, GRUForecaster, LSTMForecaster, RNNForecaster,
                      GRURegressor, LSTMRegressor, RNNRegressor, PredictiveDetector, ReconstructionDetector)
for _cls in _PUBLIC_ESTIMATORS:  # a Parameters section of its own for help() (the bases are not exported)
    document(_cls)
del _cls

__all__ = [
    "GRUClassifier",
    "GlobalForecaster",
    "GRUForecaster",
    "GRURegressor",
    "LSTMClassifier",
    "LSTMForecaster",
    "LSTMRegressor",
    "ModelBank",
    "OnlineRNN",
    "PredictiveDetector",
    "RNNClassifier",
    "RNNForecaster",
    "RNNRegressor",
    "ReconstructionDetector",
    "SharedWeightsBank",
    "__version__",
    "load",
    "save",
]
