"""The River estimators' per-row path (dict to network inputs, scaling,
revealed targets, the network's step and the forecast, in one kernel call)
gives what it gave before it was fused, bit for bit: on streams with
features appearing mid-stream, missing, None or NaN, in any key order, with
unknown features at prediction, dates, glitches, classes that appear,
entities and mini-batches (:mod:`river_streams`)."""

import numpy as np
import pytest
from river_streams import FIXTURE, run, scenarios

REFERENCE = np.load(FIXTURE)
SCENARIOS = scenarios()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_prediction_and_the_final_state_as_before(name):
    make, rows, kind = SCENARIOS[name]
    figures = run(make, rows, kind)
    for part, value in figures.items():
        expected = REFERENCE[f"{name}/{part}"]
        assert value.shape == expected.shape, part
        assert value.tobytes() == expected.tobytes(), f"{name}: {part} differs at " \
            f"{np.flatnonzero(value.ravel() != expected.ravel())[:5]}"
