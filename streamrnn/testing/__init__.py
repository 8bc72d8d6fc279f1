"""Tools to test recurrent kernels: a float64 NumPy reference of the networks,
their gradients and the online TBPTT learner; central finite differences;
and (with hypothesis installed) strategies in :mod:`streamrnn.testing.strategies`.

Examples
--------
>>> import numpy as np
>>> from streamrnn.testing import sequence_gradient, sequence_loss
>>> from streamrnn.testing import finite_difference_gradient, assert_gradients_close
>>> from streamrnn import OnlineRNN
>>> params = OnlineRNN(cell="gru", hidden_size=3, dtype="float64", seed=1).state_dict()
>>> X = np.linspace(-1, 1, 5)[:, None]; Y = X ** 2
>>> loss, grads = sequence_gradient("gru", params, X, Y)
>>> numeric = finite_difference_gradient(lambda p: sequence_loss("gru", p, X, Y), params)
>>> assert_gradients_close(grads, numeric)
"""

from .gradcheck import assert_gradients_close, finite_difference_gradient, gradient_errors
from .reference import (
    CELLS,
    ReferenceOnlineRNN,
    ReferenceOptimizer,
    caches_backward,
    network_forward,
    network_step,
    parameter_shapes,
    sequence_gradient,
    sequence_loss,
)

__all__ = [
    "CELLS",
    "ReferenceOnlineRNN",
    "ReferenceOptimizer",
    "assert_gradients_close",
    "caches_backward",
    "finite_difference_gradient",
    "gradient_errors",
    "network_forward",
    "network_step",
    "parameter_shapes",
    "sequence_gradient",
    "sequence_loss",
]
