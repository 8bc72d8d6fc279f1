"""Per-key River estimators: one forecaster or anomaly detector per series,
for a River user streaming ``(key, value)`` rows."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from river import base

from .checks import check_integer, check_seed
from ._docs import document
from .guard import Guarded, exclusive
from .keys import holds_nan, key_seed, keys_to_evict


class _Keyed(Guarded):
    """One clone of ``template`` per key, the n-th key created (evicted ones
    counted) seeded ``seed + n`` when the template has a ``seed`` (so runs
    repeat exactly), or, with ``seed_by_key``, seeded from ``seed`` and the
    key; with ``max_idle``, the keys not learned from in the last
    ``max_idle`` calls of ``learn_one`` are evicted.

    Parameters
    ----------
    seed
        The n-th key created (evicted keys counted) gets the seed
        ``seed + n`` when the template has a ``seed`` parameter; None keeps
        the template's own.
    max_idle
        Evict a key, freeing its model, once ``max_idle`` calls of
        ``learn_one`` (for any key: the wrapper's own stream) have passed
        without one for it; a key seen again after that starts afresh, with
        a new model (and a new seed). None (the default) keeps every key.
        The memory then stays bounded by ``max_idle`` models, however many
        keys the stream has.
    seed_by_key
        Seed key ``k``'s model ``key_seed(seed, k)`` (from ``seed`` and a
        stable hash of the key, :func:`streamrnn.keys.key_seed`) instead of
        ``seed + n``: a key's model then depends neither on the order keys
        arrive in nor on which wrapper holds it, so wrappers holding parts
        of a stream's keys give the results of one (keys must be of the
        kinds :func:`streamrnn.keys.key_bytes` takes: None, bool, int,
        float, str, bytes, numpy scalars, tuples and frozensets of those).
    """

    _n_created = None  # for states saved before it was kept: the keys then held
    # for states saved before idle keys could be evicted
    max_idle = None
    _clock = 0
    _last_seen = None
    seed_by_key = False  # for states saved before there was a choice

    def __init__(self, template: base.Estimator, seed: int | None = None, max_idle: int | None = None,
                 seed_by_key: bool = False):
        check_seed(seed)
        max_idle = check_integer("max_idle", max_idle, none_ok=True)
        if not isinstance(seed_by_key, bool | np.bool_):
            raise TypeError(f"seed_by_key must be True or False, got {seed_by_key!r}")
        self.template = template
        self.seed = seed
        self.seed_by_key = bool(seed_by_key)
        self.max_idle = max_idle
        self._models: dict = {}
        self._n_created = 0
        self._clock = 0
        self._last_seen: OrderedDict = OrderedDict()

    def _new_model(self, key):
        """The model an unseen key gets (not registered)."""
        if holds_nan(key):
            raise ValueError(f"key {key!r} is or holds NaN: a missing key? (None is a valid key)")
        params = {}
        if self.seed is not None and "seed" in self.template._get_params():
            params["seed"] = key_seed(self.seed, key) if self.seed_by_key else self.seed + self._created()
        return self.template.clone(params)

    def _created(self) -> int:
        return len(self._models) if self._n_created is None else self._n_created

    def _learn(self, key, learn) -> None:
        """``learn(model)`` on the key's model; an unseen key is registered
        only once its model has learned (a refused sample leaves no key
        behind, and the seeds of later keys unchanged)."""
        model = self._models.get(key)
        if model is not None:
            learn(model)
        else:
            model = self._new_model(key)
            learn(model)
            self._n_created = self._created() + 1
            self._models[key] = model
        self._seen(key)

    def _seen(self, key) -> None:
        """Count a learned sample of ``key``, then evict the keys idle for
        more than ``max_idle`` samples (oldest first: the order of
        ``_last_seen`` is that of their last samples)."""
        self._clock += 1
        if self._last_seen is None:  # a state saved before it was kept: its keys as seen now
            self._last_seen = OrderedDict.fromkeys(self._models, self._clock)
        self._last_seen[key] = self._clock
        self._last_seen.move_to_end(key)
        self._evict_idle()

    def _evict_idle(self) -> None:
        """Evict the keys idle for more than ``max_idle`` samples at the
        current count."""
        if self.max_idle is None or self._last_seen is None:
            return
        while self._last_seen:
            oldest, when = next(iter(self._last_seen.items()))
            if self._clock - when <= self.max_idle:
                break
            del self._last_seen[oldest]
            self._models.pop(oldest, None)

    def _peek(self, key):
        """The key's model, or, for an unseen key, the one it would get
        (not registered)."""
        model = self._models.get(key)
        return self._new_model(key) if model is None else model

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, key) -> bool:
        return key in self._models

    @property
    def keys(self) -> list:
        return list(self._models)

    def __getitem__(self, key):
        return self._models[key]

    @exclusive
    def evict(self, keys) -> None:
        """Forget these keys' models (all known: ``KeyError`` otherwise, and
        none is forgotten)."""
        for key in keys_to_evict(self._models, keys):
            del self._models[key]
            if self._last_seen is not None:
                self._last_seen.pop(key, None)


class KeyedForecaster(_Keyed):
    """A River forecaster per key.

    Parameters
    ----------
    template
        The forecaster each key's model is cloned from (it learns nothing itself).

    Examples
    --------
    >>> from streamrnn import GRUForecaster
    >>> from streamrnn.keyed import KeyedForecaster
    >>> bank = KeyedForecaster(GRUForecaster(hidden_size=8), seed=0)
    >>> for t in range(30):
    ...     bank.learn_one("north", 10.0 + t)
    ...     bank.learn_one("south", 50.0 - t)
    >>> [round(v) for v in bank.forecast("north", 2)], [round(v) for v in bank.forecast("south", 2)]
    ([39, 39], [21, 21])
    """

    @exclusive
    def learn_one(self, key, y: float, x: dict | None = None) -> None:
        self._learn(key, lambda model: model.learn_one(y, x))

    @exclusive
    def forecast(self, key, horizon: int, xs=None) -> list[float]:
        return self._peek(key).forecast(horizon, xs)

    @exclusive
    def forecast_interval(self, key, horizon: int, coverage: float = 0.95, xs=None) -> tuple[list, list]:
        """The key's forecaster's ``forecast_interval``."""
        return self._peek(key).forecast_interval(horizon, coverage, xs)


class KeyedDetector(_Keyed):
    """A River anomaly detector per key.

    Parameters
    ----------
    template
        The anomaly detector each key's model is cloned from (it learns nothing itself).

    Examples
    --------
    >>> from streamrnn import PredictiveDetector
    >>> from streamrnn.keyed import KeyedDetector
    >>> fleet = KeyedDetector(PredictiveDetector(hidden_size=4), seed=0, max_idle=100)
    >>> for t in range(1000):
    ...     fleet.learn_one(f"sensor-{t // 10}", {"temp": 20.0 + t % 3})
    >>> len(fleet), fleet.keys[:2]
    (11, ['sensor-89', 'sensor-90'])
    """

    @exclusive
    def learn_one(self, key, x: dict) -> None:
        self._learn(key, lambda model: model.learn_one(x))

    @exclusive
    def score_one(self, key, x: dict) -> float:
        return self._peek(key).score_one(x)


for _cls in (KeyedForecaster, KeyedDetector):  # the shared parameters written once, above
    document(_cls)
del _cls
