import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

CELLS = ("rnn", "gru", "lstm")


def reference_model(cell, **kwargs):
    """A float64 OnlineRNN with exact activations, for comparison with the reference."""
    from streamrnn import OnlineRNN

    kwargs.setdefault("dtype", "float64")
    kwargs.setdefault("approx_activations", False)
    return OnlineRNN(cell=cell, **kwargs)


@pytest.fixture(scope="module")
def ray():
    """A local Ray cluster on 2 CPUs for a test module (skipped without Ray)."""
    ray = pytest.importorskip("ray", reason='the distributed tests need Ray: pip install "streamrnn[ray]"')
    from streamrnn.distributed import start_ray

    start_ray(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def river_checks(cls):
    """``pytest.param(model, check)`` for each of River's checks of ``cls``
    under each of its ``_unit_test_params``."""
    from river import checks

    for params in cls._unit_test_params():
        model = cls(**params)
        for check in checks.yield_checks(model):
            if check.__name__ not in model._unit_test_skips():
                yield pytest.param(model, check, id=f"{cls.__name__}-{check.__name__}-{len(params)}")
