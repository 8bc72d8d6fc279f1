"""A global forecaster: one recurrent network learning from many keyed
series, each series with its own state, scale, seasonal base, smoothing and
combination."""

from __future__ import annotations

import collections
import datetime as dt

import numpy as np
from river import base

from .checks import check_integer, check_seed, is_integer
from .corrector_store import CorrectorStore
from .guard import Guarded, exclusive, without_guard
from .forecasting import N_BASE_INPUTS, GRUForecaster, LSTMForecaster, RecurrentForecaster, RNNForecaster
from .kernels import layout as L
from .keys import holds_nan, keys_to_evict
from .shared_bank import SeriesView, SharedWeightsBank
from .window_network import HORIZON, WindowCorrector, WindowNetwork, window_network

_FORECASTERS = {"rnn": RNNForecaster, "gru": GRUForecaster, "lstm": LSTMForecaster}
#: A key's forecaster's ``learn_one`` without its guard (the global forecaster's covers it).
_LEARN = RecurrentForecaster.learn_one.__wrapped__


class GlobalForecaster(Guarded, base.Base):
    """Forecasts of many keyed series by one recurrent network that learns
    from all of them.

    Each key gets the forecaster of its ``cell``
    (:class:`~streamrnn.LSTMForecaster` by default) with everything that is
    the series' own: its scale, period, seasonal base, reversion, glitch
    filter, smoothing, combination and prediction intervals, and its hidden
    state and TBPTT window. The network's weights and optimizer state are one
    set, shared by every key (a :class:`~streamrnn.SharedWeightsBank`): every
    series' surprises, scaled by that series' own scale, train it, so a new
    series starts with what the others taught it. The network sees only the
    series' own surprises (no exogenous features: the calendar of one series
    is not another's).

    Rows are learned in arrival order, each one at once: the network a key
    forecasts with is the one learned from every row before, of every key.
    A key's network runs its own recurrent forecast for the first
    :data:`~streamrnn.forecasting.SHARED_NETWORK_STEPS` steps of each
    origin and holds the departure reached beyond (its surprises helped at
    the first steps only). So ``learn_many`` equals ``learn_one`` in a loop
    bit for bit, a single key equals its per-series forecaster (without
    ``x``, its network forecasting as far) bit for bit, and
    the statistical part of each key (its base, smoothing and combination)
    does not depend on how keys interleave; the network does, as any model
    learning online from a shared stream does.

    Not thread-safe: a call while another thread is inside raises
    :class:`~streamrnn.guard.ConcurrentUseError` (see :mod:`streamrnn.guard`).

    Parameters
    ----------
    cell
        ``"lstm"``, ``"gru"`` or ``"rnn"``.
    hidden_size, num_layers, k1, k2, optimizer, lr, clip_norm, loss, seasonality, log_transform, combine, dtype
        Those of the per-series forecasters (:class:`~streamrnn.LSTMForecaster`),
        with the same defaults; the network's arguments are the shared
        network's. Recursive forecasts only (no direct ``horizon``).
    seed
        Seed of the shared network's weights.
    max_idle
        If set, a key not learned from in the last ``max_idle`` rows (of
        any key) is evicted: its forecaster and its state in the network are
        forgotten, so memory stays bounded on a stream of ever new keys.
    correct
        Correct each key's forecasts of up to 48 steps by a second network
        shared by all keys, that learns across series from windows of their
        last 168 values (on the log scale, less their level) and the
        forecasts made from them (:mod:`streamrnn.window_network`), at a
        tenth of ``lr``; at each horizon, a key's forecast is the mean of
        its forecast and the corrected one (weighted by their recent errors)
        only where that mean has erred less there than the forecast alone.
        Positive series only: a key idles from its first value <= 0.

    Examples
    --------
    Two of River's bundled series, one network:

    >>> from river import datasets
    >>> from streamrnn import GlobalForecaster
    >>> model = GlobalForecaster(hidden_size=8, seed=0)
    >>> for (_, flow), (_, passengers) in zip(datasets.WaterFlow(), datasets.AirlinePassengers()):
    ...     model.learn_one("water", flow)
    ...     model.learn_one("airline", passengers)
    >>> len(model), model.n_updates > 0
    (2, True)
    >>> [round(v) for v in model.forecast("airline", 3)]
    [445, 422, 459]
    """

    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        k1: int = 4,
        k2: int = 16,
        optimizer: str = "adam",
        lr: float = 1e-3,
        clip_norm: float | None = 1.0,
        loss: str = "squared",
        seasonality: int | str | None = "auto",
        log_transform: bool | str = "auto",
        combine: bool = True,
        dtype: str = "float32",
        seed: int | None = None,
        max_idle: int | None = None,
        correct: bool = True,
    ):
        if cell not in _FORECASTERS:
            raise ValueError(f"cell must be one of {sorted(_FORECASTERS)}, got {cell!r}")
        check_seed(seed)
        check_integer("max_idle", max_idle, none_ok=True)
        if type(correct) is not bool:
            raise ValueError(f"correct must be True or False, got {correct!r}")
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip_norm = clip_norm
        self.loss = loss
        self.seasonality = seasonality
        self.log_transform = log_transform
        self.combine = combine
        self.dtype = dtype
        self.seed = seed
        self.max_idle = max_idle
        self.correct = correct
        template = self._forecaster()  # checks the forecaster's arguments
        net = template._net
        self._bank = SharedWeightsBank(
            seed=seed, cell=cell, input_size=N_BASE_INPUTS, output_size=1, hidden_size=hidden_size,
            num_layers=num_layers, k1=k1, k2=k2, optimizer=optimizer, lr=lr, clip_norm=clip_norm, loss=loss,
            dtype=dtype,
        )
        # the shared network starts as each forecaster's own would (its head at zero)
        lay = self._bank._lay
        self._bank._buf[: lay[L.L_STATE]] = net._buf[: lay[L.L_STATE]]
        self._series: dict = {}
        self._last_seen: collections.OrderedDict = collections.OrderedDict()  # key -> row, oldest first
        self._row = 0
        self._window = window_network(float(lr), seed) if correct else None
        self._correctors: dict = {}  # key -> its WindowCorrector
        self._store = CorrectorStore(self._window) if correct else None  # their state, updated in batches

    def _forecaster(self) -> RecurrentForecaster:
        return _FORECASTERS[self.cell](
            hidden_size=self.hidden_size, num_layers=self.num_layers, k1=self.k1, k2=self.k2,
            optimizer=self.optimizer, lr=self.lr, clip_norm=self.clip_norm, loss=self.loss,
            seasonality=self.seasonality, log_transform=self.log_transform, combine=self.combine,
            dtype=self.dtype, seed=self.seed,
        )

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4, "seed": 1}

    # ------------------------------------------------------------ keys

    def __len__(self) -> int:
        return len(self._series)

    def __contains__(self, key) -> bool:
        return key in self._series

    @property
    def keys(self) -> list:
        """The keys held, in the order they were first learned."""
        return list(self._series)

    def __getitem__(self, key) -> RecurrentForecaster:
        """The key's forecaster (running on the shared network)."""
        return self._series[key]

    @property
    def n_updates(self) -> int:
        """Updates of the shared network's weights."""
        return self._bank.n_updates

    @property
    def bank(self) -> SharedWeightsBank:
        """The shared network, with every key's state."""
        return self._bank

    def _new(self, key) -> RecurrentForecaster:
        """The forecaster an unseen key gets (not registered)."""
        if holds_nan(key):
            raise ValueError(f"key {key!r} is or holds NaN: a missing key? (None is a valid key)")
        forecaster = self._forecaster()
        forecaster._net = SeriesView(self._bank, key)
        return forecaster

    def _peek(self, key) -> RecurrentForecaster:
        forecaster = self._series.get(key)
        return self._new(key) if forecaster is None else forecaster

    @exclusive
    def evict(self, keys) -> None:
        """Forget these keys (all known: ``KeyError`` otherwise, and none is
        forgotten): their forecasters and their states in the network."""
        keys = keys_to_evict(self._series, keys)
        self._bank.evict([k for k in keys if k in self._bank])
        for key in keys:
            del self._series[key]
            del self._last_seen[key]
            if self._correctors.pop(key, None) is not None:
                self._store.detach(key)

    # ------------------------------------------------------------ learning

    @staticmethod
    def _check_dates(x) -> None:
        if x is None:
            return
        if not isinstance(x, dict) or not all(v is None or isinstance(v, dt.date) for v in x.values()):
            raise ValueError("x must be None or a dict of dates (they give the period): the global forecaster's "
                             "network learns from the series alone, without exogenous features")

    @exclusive
    def learn_one(self, key, y: float, x: dict | None = None) -> None:
        """Learn the next value ``y`` of series ``key``; ``x``: None, or the
        value's dates (they give the period with ``seasonality="auto"``)."""
        self._check_dates(x)
        try:
            self._learn_row(key, y, x)
        finally:
            self._flush()

    def _flush(self) -> None:
        """Run the corrections' updates queued by the rows learned."""
        if self._store is not None:
            self._store.flush()

    def _learn_row(self, key, y, x) -> None:
        """:meth:`learn_one`, ``x`` checked, inside this forecaster's guard
        (the key's forecaster, its own, is run without taking its guard)."""
        forecaster = self._series.get(key)
        if forecaster is None:
            forecaster = self._new(key)
            _LEARN(forecaster, y)  # a refused value leaves no key behind
            self._series[key] = forecaster
        else:
            _LEARN(forecaster, y)
        if x and forecaster.seasonality == "auto" and forecaster._period is None and forecaster._n <= 1:
            forecaster._look_for_period(x)
        if self._window is not None:
            corrector = self._correctors.get(key)
            if corrector is None:
                corrector = self._correctors[key] = WindowCorrector()
                self._store.attach(key, corrector)
            if not corrector.idle:  # (queued: a key's forecaster never reads its corrector)
                given = forecaster._made[1]  # the forecast made now, on the forecaster's scale (a fresh array)
                self._store.queue(key, forecaster._last, np.exp(given) if forecaster._log else given)
        last_seen = self._last_seen
        last_seen[key] = self._row
        last_seen.move_to_end(key)
        self._row += 1
        if self.max_idle is not None:
            self._evict_idle()

    def _evict_idle(self) -> None:
        oldest = self._row - 1 - self.max_idle
        idle = []
        for key, row in self._last_seen.items():
            if row >= oldest:
                break
            idle.append(key)
        if idle:
            self.evict(idle)

    @exclusive
    def learn_many(self, keys, ys, xs=None) -> None:
        """``learn_one(keys[i], ys[i], xs[i])`` for each row, in order."""
        keys = list(keys)
        ys = ys if isinstance(ys, list) else np.asarray(ys, dtype=np.float64).reshape(-1).tolist()
        if len(keys) != len(ys) or (xs is not None and len(xs) != len(keys)):
            raise ValueError(f"keys, ys and xs must have the same length, got {len(keys)}, {len(ys)}"
                             + (f" and {len(xs)}" if xs is not None else ""))
        try:
            if xs is None:
                learn = self._learn_row
                for key, y in zip(keys, ys):  # (the key's forecaster checks each y)
                    learn(key, y, None)
                return
            for key, y, x in zip(keys, ys, xs):
                self._check_dates(x)
                self._learn_row(key, y, x)
        finally:
            self._flush()  # (the rows learned before a refused one are learned whole)

    # ------------------------------------------------------------ forecasts

    def _check_future(self, xs) -> None:
        if xs is not None:
            for x in xs:
                self._check_dates(x)

    @exclusive
    def forecast(self, key, horizon: int, xs: list | None = None) -> list[float]:
        """The next ``horizon`` values of series ``key`` (zeros for an unseen
        key); changes nothing. ``xs``: None, or the steps' dates (checked,
        not used: the network takes no features)."""
        self._check_future(xs)
        values = self._peek(key).forecast(horizon)
        corrector = self._correctors.get(key)
        if corrector is not None and corrector.made is not None and horizon <= HORIZON:
            given, choice = corrector.made
            for h in np.flatnonzero(choice[:horizon]).tolist():  # the corrections' mean where it has erred less
                values[h] = float(np.exp(given[h]))
        return values

    @exclusive
    def forecast_interval(self, key, horizon: int, coverage: float = 0.95, xs: list | None = None) -> tuple[list, list]:
        """Lower and upper bounds of the next ``horizon`` values of ``key``
        (see :meth:`~streamrnn.LSTMForecaster.forecast_interval`)."""
        self._check_future(xs)
        lower, upper = self._peek(key).forecast_interval(horizon, coverage)
        corrector = self._correctors.get(key)
        if corrector is not None and corrector.made is not None and horizon <= HORIZON:
            given, choice = corrector.made
            steps = np.flatnonzero(choice[:horizon])
            if len(steps):
                q = corrector.combination.quantiles(choice[: steps[-1] + 1], float(coverage))
                with np.errstate(over="ignore", invalid="ignore"):
                    for h in steps.tolist():
                        lower[h], upper[h] = float(np.exp(given[h] - q[h])), float(np.exp(given[h] + q[h]))
        return lower, upper

    @exclusive
    def forecast_many(self, keys, horizon: int) -> np.ndarray:
        """The next ``horizon`` values of each key, shape ``(len(keys), horizon)``."""
        if not is_integer(horizon) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        keys = list(keys)
        out = np.empty((len(keys), int(horizon)))
        for i, key in enumerate(keys):
            out[i] = self.forecast(key, int(horizon))
        return out

    # ------------------------------------------------------------ state

    def __getstate__(self) -> dict:
        state = without_guard(dict(self.__dict__))
        state.pop("_store", None)  # (made again from the correctors)
        return state

    def __setstate__(self, state: dict) -> None:
        bank, series = state.get("_bank"), state.get("_series")
        if not (isinstance(bank, SharedWeightsBank) and type(series) is dict):
            raise ValueError("the global forecaster's bank or series are malformed")
        for key, forecaster in series.items():
            view = getattr(forecaster, "_net", None)
            if not (isinstance(forecaster, RecurrentForecaster) and type(view) is SeriesView and view.key == key):
                raise ValueError(f"the forecaster of key {key!r} does not run on the shared network")
            view.link(bank)
        if not all(k in series for k in bank.keys) or set(state.get("_last_seen", ())) != set(series):
            raise ValueError("the global forecaster's keys do not match its network's")
        if "correct" not in state:  # saved before the corrections: continues without them, as it was
            state.update(correct=False, _window=None, _correctors={})
        window, correctors, correct = state.get("_window"), state.get("_correctors"), state.get("correct")
        if not (type(correct) is bool and (window is None) == (not correct)
                and (window is None or type(window) is WindowNetwork) and type(correctors) is dict
                and all(k in series and type(c) is WindowCorrector for k, c in correctors.items())
                and (correct or not correctors)):
            raise ValueError("the global forecaster's corrections are malformed")
        state.pop("_store", None)
        self.__dict__.update(state)
        self._store = store = CorrectorStore(window) if correct else None
        for key, corrector in correctors.items():
            store.attach(key, corrector)
