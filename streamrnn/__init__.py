"""streamrnn: recurrent networks that learn online, in Numba kernels, behind River's API."""

from .learner import OnlineRNN

__version__ = "0.1.0"

__all__ = ["OnlineRNN", "__version__"]
