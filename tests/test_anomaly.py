"""The predictive anomaly detector under River's AnomalyDetector contract."""

import copy
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from river import anomaly, compose, preprocessing

from streamrnn.anomaly import PredictiveDetector, ReconstructionDetector

DETECTORS = [PredictiveDetector, ReconstructionDetector]

MODEL_CHECKS = (
    "check_repr", "check_str", "check_tags", "check_clone_same_class", "check_clone_is_idempotent",
    "check_init_has_default_params_for_tests", "check_init_default_params_are_not_mutable", "check_doc",
    "check_clone_changes_memory_addresses", "check_mutate_can_be_idempotent",
    "check_pickling_supports_roundtrip", "check_repr_roundtrips_clone", "check_clone_with_new_params_applies",
    "check_get_params_matches_signature",
)


def model_checks():
    """River's model-level checks (its data-set checks download CreditCard;
    their offline equivalents follow)."""
    from river.checks import common

    for cls in DETECTORS:
        for params in cls._unit_test_params():
            for name in MODEL_CHECKS:
                yield pytest.param(cls(**params), getattr(common, name), id=f"{cls.__name__}-{name}-{len(params)}")


@pytest.mark.parametrize("model,check", list(model_checks()))
def test_river_model_checks(model, check):
    check(copy.deepcopy(model))


def stream(n=1500, seed=0, spike_at=1200, shift_at=1400):
    rng = np.random.default_rng(seed)
    y = np.sin(np.arange(n) / 10) + 0.05 * rng.normal(size=n)
    y[spike_at : spike_at + 5] += 3.0
    y[shift_at:] += 0.5
    return [{"value": float(v)} for v in y]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_flags_a_spike_and_a_level_shift_above_everything_else(cell):
    detector = PredictiveDetector(cell=cell, seed=0)
    scores = []
    for x in stream():
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    scores = np.array(scores)
    assert np.all((scores >= 0) & (scores <= 1))
    normal = scores[300:1200].max()
    assert scores[1200:1205].max() > normal
    assert scores[1400:1405].max() > normal


def test_reconstruction_detector_flags_a_spike_above_everything_else():
    detector = ReconstructionDetector(seed=0)
    scores = []
    for x in stream():
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    scores = np.array(scores)
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores[1200:1205].max() > scores[300:1200].max()
    assert detector._net.output_size == 16


@pytest.mark.parametrize("cls", DETECTORS)
def test_score_one_is_pure_and_learning_is_seeded(cls):
    a, b = cls(seed=3), cls(seed=3)
    xs = stream(400)
    for x in xs:
        a.learn_one(x)
        b.learn_one(x)
    before = pickle.dumps(a)
    s = a.score_one({"value": 2.0})
    assert pickle.dumps(a) == before
    assert s == a.score_one({"value": 2.0}) == b.score_one({"value": 2.0})


@pytest.mark.parametrize("cls", DETECTORS)
def test_many_equals_one_at_a_time(cls):
    xs = stream(300)
    one, many = cls(seed=1), cls(seed=1)
    for x in xs:
        one.learn_one(x)
    frame = pd.DataFrame(xs)
    many.learn_many(frame)
    assert pickle.dumps(one) == pickle.dumps(many)
    queries = pd.DataFrame({"value": [0.0, 1.0, 5.0]})
    np.testing.assert_array_equal(many.score_many(queries), [one.score_one({"value": v}) for v in [0.0, 1.0, 5.0]])


@pytest.mark.parametrize("cls", DETECTORS)
def test_missing_and_bad_values(cls):
    detector = cls(seed=0, grace_period=0)
    for x in stream(200):
        detector.learn_one(x)
    params = detector._net.state_dict()
    detector.learn_one({"value": None})
    detector.learn_one({"value": math.nan})
    detector.learn_one({"value": math.inf})
    assert detector.n_skipped == 3
    for name, v in detector._net.state_dict().items():
        np.testing.assert_array_equal(v, params[name])
    assert detector.score_one({"value": None}) == 0.0
    assert detector.score_one({"value": math.inf}) == 0.0
    with pytest.raises(ValueError, match="feature 'value' must be a real number"):
        detector.learn_one({"value": "high"})
    with pytest.raises(ValueError, match="x must be a dict"):
        detector.score_one([1.0])
    with pytest.raises(ValueError, match="short_window must be a positive integer"):
        cls(short_window=0)


@pytest.mark.parametrize("cls", DETECTORS)
def test_multivariate_and_emerging_features(cls):
    detector = cls(seed=0, grace_period=10)
    rng = np.random.default_rng(0)
    for t in range(300):
        x = {"a": math.sin(t / 7) + 0.01 * rng.normal()}
        if t >= 100:
            x["b"] = math.cos(t / 5)
        detector.learn_one(x)
    assert detector._net.input_size == 2
    assert detector._net.output_size == 2 * getattr(detector, "window", 1)
    usual = detector.score_one({"a": math.sin(300 / 7), "b": math.cos(300 / 5)})
    odd = detector.score_one({"a": math.sin(300 / 7), "b": 5.0})
    assert odd > usual


def test_works_under_river_filters_and_in_a_pipeline():
    quantile = anomaly.QuantileFilter(PredictiveDetector(seed=0), q=0.995)
    threshold = anomaly.ThresholdFilter(PredictiveDetector(seed=0), threshold=0.2)  # Q = 1e-6
    pipeline = compose.Pipeline(preprocessing.StandardScaler(), PredictiveDetector(seed=0))
    flags_q, flags_t = [], []
    for i, x in enumerate(stream()):
        s = quantile.score_one(x)
        flags_q.append(quantile.classify(s))
        quantile.learn_one(x)
        flags_t.append(threshold.classify(threshold.score_one(x)))
        threshold.learn_one(x)
        pipeline.score_one(x)
        pipeline.learn_one(x)
    assert any(flags_q[1200:1205]) and any(flags_t[1200:1205])
    assert sum(flags_t[300:1200]) < 20
