"""The classes that :mod:`streamrnn.persistence` saves and loads, declared
one by one, with the state each may hold.

A file names classes by ``"module:QualName"``; the loader looks the name up
in :func:`registry` (a dictionary built from the class objects themselves,
never from the file: nothing is imported from a name a file gives) and
refuses any other. A declared class states the attribute names its saved
state may hold (:attr:`Schema.attrs`), the kind of state it saves (a
``dict`` of attributes or, for River's Rust-backed quantile, ``bytes``) and
the check its state must pass before the object is built
(:mod:`streamrnn.persist_checks`). There is no declaration by package: a
class of River's or streamrnn's that is not listed here cannot be
instantiated from a file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

__all__ = ["Schema", "class_path", "registry"]

#: Attributes of every recurrent River estimator (constructor arguments).
_NETWORK_ARGS = ("hidden_size", "num_layers", "k1", "k2", "optimizer", "lr", "clip_norm", "dtype", "device", "seed")
_ESTIMATOR = (*_NETWORK_ARGS, "_features", "_net", "_x_scaler")
#: ... and what the stream revealed (revealed targets, their columns, entities)
_REVEALED = ("_carried", "_cols_x", "_cols_y", "_entities", "_n_cols", "key", "max_idle", "revealed_targets")
_REGRESSOR = (*_ESTIMATOR, *_REVEALED, "_loss", "_target", "_y_scaler", "loss", "model_change", "scale_target")
_CLASSIFIER = (*_ESTIMATOR, *_REVEALED, "_class_index", "_classes")
_GLOBAL_FORECASTER = (
    "cell", "hidden_size", "num_layers", "k1", "k2", "optimizer", "lr", "clip_norm", "loss", "seasonality",
    "log_transform", "combine", "dtype", "seed", "max_idle", "_bank", "_series", "_last_seen", "_row", "correct",
    "_window", "_correctors",
)
_FORECASTER = (
    *_NETWORK_ARGS, "_base_errors", "_bases", "_clean", "_combination", "_features", "_feedback", "_first_time",
    "_history", "_last", "_log", "_log_pending", "_made", "_n", "_n_recent", "_net", "_outputs", "_pending",
    "_period", "_period_from", "_positive", "_recent", "_residuals", "_scale_prior", "_smoothing", "_surprises",
    "_w_stats", "_x_scaler", "combine", "horizon", "log_transform", "loss", "seasonality",
)
_DETECTOR = (
    *_NETWORK_ARGS, "cell", "_features", "_has_last", "_input", "_n_skipped", "_net", "_quiet", "_recent_ranges",
    "_scale_kept", "_season", "_st", "alarm_memory", "grace_period", "long_halflife", "short_window",
)
_ONLINE_RNN = (
    "_buf", "_ctr", "_in_shape", "_lay", "_np_dtype", "_out_shape", "_shape", "alpha", "approx_activations", "betas",
    "cell", "clip_norm", "device", "dtype", "eps", "hidden_size", "huber_delta", "input_size", "k1", "k2", "loss",
    "lr", "momentum", "num_layers", "optimizer", "output_size", "recompute", "seed", "weight_decay",
)
_BANK = (
    "_batch", "_buf", "_ctr", "_dev", "_dtype", "_free", "_input_size", "_key_of", "_last_seen", "_lay",
    "_n_created", "_output_size", "_slot_of", "config", "device", "max_idle", "seed", "_capacity_rows",
    "seed_by_key",
)
_SHARED_BANK = (
    "_batch", "_buf", "_ctr", "_dtype", "_free", "_input_size", "_key_of", "_last_seen", "_lay", "_n_created",
    "_origin", "_output_size", "_region", "_slot_of", "_steps_gone", "_stride", "_updates", "config", "max_idle",
    "seed", "_capacity_rows",
)


@dataclass(frozen=True)
class Schema:
    """A class the format saves.

    Attributes
    ----------
    cls
        The exact class (subclasses are other classes: not declared).
    attrs
        The attribute names its saved state may hold (a subset: states of
        earlier versions may lack some).
    state
        ``"dict"`` (attributes) or ``"bytes"``.
    check
        ``check(cls, state, limits)`` raises on a state that the class's code
        must not see; ``None``: the values need no check beyond their kinds
        (plain data and declared objects, which the decoder guarantees).
    """

    cls: type
    attrs: frozenset
    state: str = "dict"
    check: Callable | None = None
    complete: bool = False


def class_path(cls: type) -> str:
    """``"module:QualName"``, the name a file gives a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, Schema]:
    """Every declared class, by the name a file gives it."""
    from river import anomaly as river_anomaly
    from river import compose, preprocessing, stats

    from . import persist_checks as C
    from .anomaly import PredictiveDetector, ReconstructionDetector
    from .anomaly_season import SeasonalErrors
    from .bank import ModelBank
    from .classification import GRUClassifier, LSTMClassifier, RNNClassifier
    from .combination import HorizonCombination
    from .entities import EntityStates
    from .features import FeatureSpace, RunningScaler
    from .forecasting import GRUForecaster, LSTMForecaster, RNNForecaster
    from .global_forecasting import GlobalForecaster
    from .keyed import KeyedDetector, KeyedForecaster
    from .learner import OnlineRNN
    from .network import NetworkShape
    from .regression import GRURegressor, LSTMRegressor, RNNRegressor
    from .seasonal import SeasonalBase
    from .shared_bank import SeriesView, SharedWeightsBank
    from .smoothing import SeasonalSmoothing
    from .target_change import TargetChange
    from .window_network import WindowCorrector, WindowNetwork

    quantile_backend = type(stats.Quantile(0.5)._quantile)
    declared = [
        Schema(OnlineRNN, frozenset(_ONLINE_RNN), check=C.check_online_rnn),
        Schema(NetworkShape, frozenset(NetworkShape.__dataclass_fields__), check=C.check_network_shape),
        Schema(FeatureSpace, frozenset({"names", "index"}), check=C.check_feature_space),
        Schema(RunningScaler, frozenset({"_rooted", "beyond", "glitch", "glitch_out", "stats"}),
               check=C.check_running_scaler),
        *(Schema(c, frozenset(_REGRESSOR), check=C.check_regressor)
          for c in (RNNRegressor, GRURegressor, LSTMRegressor)),
        *(Schema(c, frozenset(_CLASSIFIER), check=C.check_classifier)
          for c in (RNNClassifier, GRUClassifier, LSTMClassifier)),
        *(Schema(c, frozenset(_FORECASTER), check=C.check_forecaster)
          for c in (RNNForecaster, GRUForecaster, LSTMForecaster)),
        Schema(HorizonCombination, frozenset({"abs_errors", "counts", "horizon", "made", "n_abs", "n_candidates",
                                              "origin", "sq_errors", "t", "unit"}), check=C.check_combination),
        Schema(SeasonalBase, frozenset({"_all_seen", "_gammas", "_stale", "_weights", "errors", "means", "n_errors",
                                        "no_change_error", "period", "prior", "seen"})),
        Schema(SeasonalSmoothing, frozenset({"long_period", "n", "params", "period", "season", "season_long",
                                             "state"})),
        Schema(SeasonalErrors, frozenset({"cycle", "empty", "history", "last_period", "level", "local", "n",
                                          "n_features", "period", "phase", "recent", "ring", "st"}),
               check=C.check_seasonal_errors),
        Schema(PredictiveDetector, frozenset(_DETECTOR), check=C.check_detector),
        Schema(ReconstructionDetector, frozenset({*_DETECTOR, "_recent_z", "_scaler", "window"}),
               check=C.check_detector),
        Schema(TargetChange, frozenset({"changes", "errors", "mode", "scored"}), check=C.check_target_change),
        Schema(EntityStates, frozenset({"_next_sweep", "active", "has_active", "last_seen", "max_idle", "rows",
                                        "stored"}), check=C.check_entity_states),
        *(Schema(c, frozenset({"_clock", "_last_seen", "_models", "_n_created", "max_idle", "seed", "seed_by_key",
                                     "template"}),
                 check=C.check_keyed) for c in (KeyedDetector, KeyedForecaster)),
        Schema(GlobalForecaster, frozenset(_GLOBAL_FORECASTER), check=C.check_global_forecaster),
        Schema(SeriesView, frozenset({"dtype", "input_size", "key", "output_size"}), check=C.check_series_view),
        Schema(WindowNetwork, frozenset({"batch", "lr", "m1", "m2", "n_hidden", "n_in", "n_out", "pending", "steps",
                                         "summed", "theta"}),
               check=C.check_window_network),
        Schema(WindowCorrector, frozenset({"anchors", "combination", "idle", "made", "n", "values"}),
               check=C.check_window_corrector),
        Schema(ModelBank, frozenset(_BANK), check=C.check_bank),
        Schema(SharedWeightsBank, frozenset(_SHARED_BANK), check=C.check_bank),
        # River objects users combine with the estimators: plain data (their states complete)
        Schema(preprocessing.StandardScaler, frozenset({"counts", "means", "vars", "window_size", "with_std"}),
               check=C.check_river_scaler, complete=True),
        Schema(preprocessing.MinMaxScaler, frozenset({"max", "min", "window_size"}), check=C.check_river_scaler,
               complete=True),
        Schema(compose.Pipeline, frozenset({"_inference_transformers", "_last_step_cached", "_last_step_params",
                                            "_plan", "steps"}), check=C.check_pipeline),
        Schema(compose.TransformerUnion, frozenset({"transformers"}), check=C.check_union, complete=True),
        Schema(river_anomaly.QuantileFilter, frozenset({"anomaly_detector", "protect_anomaly_detector", "quantile"}),
               check=C.check_filter, complete=True),
        Schema(river_anomaly.ThresholdFilter, frozenset({"anomaly_detector", "protect_anomaly_detector",
                                                         "threshold"}), check=C.check_filter, complete=True),
        Schema(stats.Min, frozenset({"min"}), check=C.check_extremum, complete=True),
        Schema(stats.Max, frozenset({"max"}), check=C.check_extremum, complete=True),
        Schema(stats.Quantile, frozenset({"_is_updated", "_quantile", "q"}), check=C.check_quantile, complete=True),
        Schema(quantile_backend, frozenset(), state="bytes", check=C.check_quantile_backend),
    ]
    return {class_path(s.cls): s for s in declared}
