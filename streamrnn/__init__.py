"""streamrnn: recurrent networks that learn online, in Numba kernels, behind River's API."""

from .classification import GRUClassifier, LSTMClassifier, RNNClassifier
from .learner import OnlineRNN
from .regression import GRURegressor, LSTMRegressor, RNNRegressor

__version__ = "0.1.0"

__all__ = [
    "GRUClassifier",
    "GRURegressor",
    "LSTMClassifier",
    "LSTMRegressor",
    "OnlineRNN",
    "RNNClassifier",
    "RNNRegressor",
    "__version__",
]
