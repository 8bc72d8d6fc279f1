"""streamrnn: recurrent networks that learn online, in Numba kernels, behind River's API."""

from .bank import ModelBank
from .shared_bank import SharedWeightsBank
from .classification import GRUClassifier, LSTMClassifier, RNNClassifier
from .forecasting import GRUForecaster, LSTMForecaster, RNNForecaster
from .learner import OnlineRNN
from .persistence import load, save
from .regression import GRURegressor, LSTMRegressor, RNNRegressor

__version__ = "0.1.0"

__all__ = [
    "GRUClassifier",
    "GRUForecaster",
    "GRURegressor",
    "LSTMClassifier",
    "LSTMForecaster",
    "LSTMRegressor",
    "ModelBank",
    "OnlineRNN",
    "RNNClassifier",
    "RNNForecaster",
    "RNNRegressor",
    "SharedWeightsBank",
    "__version__",
    "load",
    "save",
]
