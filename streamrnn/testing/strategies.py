"""Hypothesis strategies for recurrent-network configurations, parameters
and input sequences (needs the ``test`` extra: ``pip install streamrnn[test]``)."""

from __future__ import annotations

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as exc:  # pragma: no cover - exercised only without hypothesis
    raise ImportError(
        "streamrnn.testing.strategies needs hypothesis: pip install 'streamrnn[test]'"
    ) from exc

import numpy as np

from .reference import CELLS


@st.composite
def network_configs(draw, max_input=3, max_hidden=6, max_layers=3, max_output=2):
    """Small valid configurations: dicts of ``cell``, ``input_size``,
    ``hidden_size``, ``num_layers`` and ``output_size``."""
    return {
        "cell": draw(st.sampled_from(CELLS)),
        "input_size": draw(st.integers(1, max_input)),
        "hidden_size": draw(st.integers(1, max_hidden)),
        "num_layers": draw(st.integers(1, max_layers)),
        "output_size": draw(st.integers(1, max_output)),
    }


def finite_floats(bound=3.0):
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=64)


def sequences(length, size, bound=3.0):
    """Float64 arrays of shape ``(length, size)`` with finite entries in [-bound, bound]."""
    return hnp.arrays(np.float64, (length, size), elements=finite_floats(bound))


def non_finite_sequences(length, size, bound=3.0):
    """Like :func:`sequences`, with at least one NaN or infinity."""

    @st.composite
    def draw_one(draw):
        a = draw(sequences(length, size, bound))
        idx = draw(st.tuples(st.integers(0, length - 1), st.integers(0, size - 1)))
        a[idx] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return a

    return draw_one()


@st.composite
def parameter_dicts(draw, config, bound=0.8):
    """Parameters of ``config`` in PyTorch's names and shapes, each entry
    drawn from [-bound, bound] (seeded from hypothesis, so shrinkable)."""
    from .reference import parameter_shapes

    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-bound, bound, size=shape) for name, shape in parameter_shapes(**config).items()}
