"""The River regressors and classifiers: River's own checks, pipelines,
equivalences and bad input (River's bundled data sets only, no network)."""

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import river_checks
from river import compose, datasets, evaluate, linear_model, metrics, preprocessing

import streamrnn
from streamrnn import (
    GRUClassifier,
    GRURegressor,
    LSTMClassifier,
    LSTMRegressor,
    RNNClassifier,
    RNNRegressor,
)

REGRESSORS = [RNNRegressor, GRURegressor, LSTMRegressor]
CLASSIFIERS = [RNNClassifier, GRUClassifier, LSTMClassifier]
ESTIMATORS = REGRESSORS + CLASSIFIERS


@pytest.mark.parametrize("model,check", [p for cls in ESTIMATORS for p in river_checks(cls)])
def test_river_checks(model, check):
    check(copy.deepcopy(model))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_top_level_import_repr_and_arguments_stored_unchanged(cls):
    assert getattr(streamrnn, cls.__name__) is cls
    model = cls(hidden_size=7, lr=0.01, seed=3)
    assert model.hidden_size == 7 and model.lr == 0.01 and model.seed == 3
    assert cls.__name__ in repr(model)
    assert model.clone()._get_params() == model._get_params()


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_predict_before_learning(cls):
    model = cls(seed=0)
    if cls in REGRESSORS:
        assert model.predict_one({"a": 1.0}) == 0.0
    else:
        assert model.predict_proba_one({"a": 1.0}) == {}
        assert model.predict_one({"a": 1.0}) is None


def trump(n=120):
    return list(datasets.TrumpApproval().take(n))


@pytest.mark.parametrize("cls", REGRESSORS)
def test_regressor_learn_many_equals_learn_one_bit_for_bit(cls):
    rows = trump()
    one, many = cls(seed=0), cls(seed=0)
    for x, y in rows:
        one.learn_one(x, y)
    X = pd.DataFrame([x for x, _ in rows])
    X.iloc[5:40, 2] = np.nan  # a feature missing for a while
    X.iloc[:10, 4] = np.nan  # a feature that appears in the middle of the batch
    one = cls(seed=0)
    for (_, row), (_, y) in zip(X.iterrows(), rows):
        one.learn_one({k: v for k, v in row.items() if not np.isnan(v)}, y)
    many.learn_many(X.iloc[:50], pd.Series([y for _, y in rows[:50]]))
    many.learn_many(X.iloc[50:], pd.Series([y for _, y in rows[50:]]))
    assert pickle.dumps(one._net._buf) == pickle.dumps(many._net._buf)
    np.testing.assert_array_equal(one.predict_many(X).to_numpy(), many.predict_many(X).to_numpy())
    assert many.predict_one(rows[0][0]) == one.predict_one(rows[0][0])


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_classes_that_appear_over_time(cls):
    model = cls(seed=0)
    stream = [({"a": i % 3, "b": -i % 5}, ["x", "y", "z"][min(i // 20, 2)]) for i in range(60)]
    many = cls(seed=0)
    for x, y in stream:
        model.learn_one(x, y)
    many.learn_many(pd.DataFrame([x for x, _ in stream]), pd.Series([y for _, y in stream]))
    proba = model.predict_proba_one({"a": 1, "b": 2})
    assert list(proba) == ["x", "y", "z"] and sum(proba.values()) == pytest.approx(1.0)
    assert proba == many.predict_proba_one({"a": 1, "b": 2})
    frame = model.predict_proba_many(pd.DataFrame([x for x, _ in stream[:5]]))
    assert list(frame.columns) == ["x", "y", "z"]
    for i in range(5):
        assert frame.iloc[i].to_dict() == pytest.approx(model.predict_proba_one(stream[i][0]), abs=1e-12)


def test_binary_classifier_learns_phishing():
    metric = evaluate.progressive_val_score(datasets.Phishing(), GRUClassifier(seed=0), metrics.ROCAUC())
    assert metric.get() > 0.85


def test_pipeline_with_a_scaler_beats_a_linear_pipeline():
    model = preprocessing.StandardScaler() | LSTMRegressor(seed=0)
    mae = evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
    linear = preprocessing.StandardScaler() | linear_model.LinearRegression()
    linear_mae = evaluate.progressive_val_score(datasets.TrumpApproval(), linear, metrics.MAE())
    assert isinstance(model, compose.Pipeline)
    assert mae.get() < linear_mae.get()


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_bad_input_raises_value_error(cls):
    model = cls(seed=0)
    with pytest.raises(ValueError, match="feature 'a' must be a real number"):
        model.learn_one({"a": "high"}, 1)
    for infinite in (float("inf"), 10**400):  # an int beyond the floats too
        with pytest.raises(ValueError, match="feature 'a' is infinite"):
            model.learn_one({"a": infinite}, 1)
    with pytest.raises(ValueError, match="x must be a dict"):
        model.learn_one([1.0], 1)
    with pytest.raises(ValueError, match="non-numeric columns"):
        model.learn_many(pd.DataFrame({"a": ["x", "y"]}), pd.Series([1, 0]))
    with pytest.raises(ValueError, match="y must be one-dimensional with 2 values"):
        model.learn_many(pd.DataFrame({"a": [1.0, 2.0]}), pd.Series([1]))
    if cls in REGRESSORS:
        with pytest.raises(ValueError, match="y must be a finite real number"):
            model.learn_one({"a": 1.0}, float("nan"))
    assert model._net.n_steps == 0
    model.learn_one({"a": None, "b": 2.0}, 1)  # a missing value is fine
    assert model._net.n_steps == 1


def test_class_labels_that_are_not_labels_are_refused_before_anything_changes():
    """A NaN label would be a new class at every call (NaN is not equal to
    itself); an unhashable one cannot be a class: both are refused, in
    learn_one and learn_many, before a feature or a class is registered."""
    model = GRUClassifier(hidden_size=4, seed=0)
    model.learn_one({"a": 1.0}, "x")
    for bad in (float("nan"), np.float64("nan"), None, [1], ("t", float("nan")), pd.NA):
        with pytest.raises(ValueError, match="y must be a class label"):
            model.learn_one({"a": 1.0, "new": 2.0}, bad)
    assert model._classes == ["x"] and model._features.names == ["a"]
    with pytest.raises(ValueError, match="row 1 is .*nan"):
        model.learn_many(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), pd.Series([0.0, np.nan, 1.0]))
    assert model._classes == ["x"]
    assert list(model.predict_proba_one({"a": 1.0})) == ["x"]


def test_regressors_refuse_the_loss_of_classes():
    with pytest.raises(ValueError, match="loss must be 'squared' or 'huber', got 'cross_entropy'"):
        streamrnn.LSTMRegressor(loss="cross_entropy")


def test_regressor_learn_many_refuses_the_targets_learn_one_refuses():
    model = streamrnn.GRURegressor(seed=0)
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    for y in (pd.Series(["1.0", "2", "3"]), pd.Series([True, False, True]), pd.Series([1.0, "2", 3.0])):
        with pytest.raises(ValueError, match="y must hold finite real numbers; row"):
            model.learn_many(X, y)
        with pytest.raises(ValueError, match="y must be a finite real number"):
            model.learn_one({"a": 1.0}, y.iloc[0] if not isinstance(y.iloc[0], float) else y.iloc[1])
    assert model._net.n_steps == 0
    model.learn_many(X, pd.Series([1, 2, 3]))
    assert model._net.n_steps == 3


def test_learn_many_takes_the_feature_values_learn_one_takes():
    """One policy for both paths: a numeric string or a timedelta is not a
    number; pd.NA is missing, as None is; np.True_ is 1, as True is."""
    import datetime as dt

    one, many = streamrnn.GRURegressor(seed=0), streamrnn.GRURegressor(seed=0)
    for bad in ("1", dt.timedelta(hours=1)):
        with pytest.raises(ValueError, match="feature 's' must be a real number"):
            one.learn_one({"s": bad}, 1.0)
    for column in (["1", "2"], pd.to_timedelta([1, 2], unit="h"), pd.Categorical([1, 2])):
        with pytest.raises(ValueError, match="non-numeric columns: \\['s'\\]"):
            many.learn_many(pd.DataFrame({"s": column}), pd.Series([1.0, 2.0]))
    with pytest.raises(ValueError, match="X has duplicate column names: \\['a'\\]"):
        many.learn_many(pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]), pd.Series([1.0]))
    assert one._net.n_steps == many._net.n_steps == 0
    X = pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64"), "b": [np.True_, np.False_, True]}, dtype=object)
    y = pd.Series([1.0, 2.0, 3.0])
    many.learn_many(X, y)
    for i in range(3):
        one.learn_one(X.iloc[i].to_dict(), float(y[i]))  # pd.NA and np.bool_ values, as River's iter_pandas gives
    assert pd.isna(X.iloc[1]["a"])
    np.testing.assert_array_equal(many.predict_many(X).to_numpy(), one.predict_many(X).to_numpy())
    np.testing.assert_array_equal(one.predict_one({"a": pd.NA, "b": np.True_}), one.predict_one({"a": None, "b": True}))


def test_learn_many_takes_columns_of_dates_as_learn_one_takes_dates():
    import datetime as dt

    X = pd.DataFrame({"d": [dt.date(2020, 1, 1) + dt.timedelta(days=9 * i) for i in range(6)],
                      "a": np.arange(6.0)})
    X.loc[2, "d"] = None
    y = pd.Series(np.arange(6.0) % 3)
    many, one = streamrnn.GRURegressor(seed=0), streamrnn.GRURegressor(seed=0)
    many.learn_many(X, y)
    for i in range(6):
        one.learn_one(X.iloc[i].to_dict(), float(y[i]))
    assert "d.weekday_sin" in many._features.names
    np.testing.assert_array_equal(many.predict_many(X).to_numpy(), one.predict_many(X).to_numpy())
    with pytest.raises(ValueError, match="non-numeric columns: \\['d'\\]"):
        many.learn_many(X.assign(d=["x"] + [dt.date(2020, 1, 1)] * 5), y)


def test_scale_target_must_be_a_bool():
    with pytest.raises(ValueError, match="scale_target must be a bool, got 'no'"):
        streamrnn.LSTMRegressor(scale_target="no")
