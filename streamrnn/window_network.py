"""A network that corrects forecasts from a window of a series' recent
values, learning across series, and each series' record of it.

:class:`WindowNetwork` maps the last :data:`WINDOW` values of a series and a
forecast of its next :data:`HORIZON` values, all on the log scale less the
mean of the last :data:`LEVEL` values (the series' level: the network sees
shapes, not sizes), to a correction of each step of that forecast (one
hidden tanh layer; its head starts at zero: no correction). It learns
online, by Adam on the absolute error of the corrected forecast (on the log
scale: relative errors, like the M4 competition's sMAPE), once the values a
forecast was made for are known. One network can serve many series: what it
learns from one applies to all. The corrector's network computes in float32
(:data:`DTYPE`: half the memory traffic and twice the vector width of
float64 for its Adam step over ~17k parameters); one saved in float64
continues in float64.

:class:`WindowCorrector` is one series' part: its recent values, the
forecasts awaiting their values, and the corrected forecast's record beside the
forecast it corrects (a :class:`~streamrnn.combination.HorizonCombination`
of the two, on the log scale): at each horizon the correction counts only
where it has erred less there, series by series.
"""

from __future__ import annotations

import math

import numpy as np

from .combination import DISCOUNT, MARGIN, MIN_COUNT, THIN, TRIM, HorizonCombination
from .network import aligned_zeros
from .kernels.window_network import corrector_update, window_accumulate, window_adam, window_forward, window_learn

#: Values in the window the network sees, and of the mean that sets the level.
WINDOW = 168
LEVEL = 24
#: Steps corrected.
HORIZON = 48
#: Units of the hidden layer.
HIDDEN = 64
#: Its learning rate, relative to the recurrent network's.
LR_FACTOR = 0.1
#: Samples per Adam step of the network a corrector uses.
BATCH = 1
#: The precision of the network a corrector uses (its weights, moments and
#: arithmetic).
DTYPE = "float32"
#: Inputs beyond this many (log) units from the level, and targets beyond
#: this many from the forecast, are clipped (a glitch or a level shift moves
#: the network by a bounded step).
CLIP_INPUTS = 3.0
CLIP_TARGETS = 1.0
_BETAS, _EPS = (0.9, 0.999), 1e-8
_NONE = np.zeros(0)
_DTYPES = ("float64", "float32")


class WindowNetwork:
    """One hidden layer from a window of ``n_in`` inputs to ``n_out``
    corrections, learned online by Adam on their absolute errors.

    Parameters
    ----------
    n_in, n_hidden, n_out
        Inputs, hidden units, outputs.
    lr
        Adam's learning rate.
    seed
        Seed of the first layer's weights (the head starts at zero).
    batch
        Samples per Adam step: the step follows the mean gradient of the
        last ``batch`` samples learned (each taken at the weights of the
        last step), so the network moves once per batch and the step's cost
        is shared by its samples. ``1``: a step per sample.
    dtype
        ``"float64"`` or ``"float32"``: the precision of its weights,
        moments and arithmetic (the first layer's weights are drawn in
        float64, then rounded).

    Examples
    --------
    It learns a fixed correction of two steps:

    >>> import numpy as np
    >>> from streamrnn.window_network import WindowNetwork
    >>> net = WindowNetwork(3, 8, 2, lr=1e-2, seed=0)
    >>> x, y = np.array([0.5, -1.0, 0.2]), np.array([0.3, -0.2])
    >>> net.forward(x).tolist()
    [0.0, 0.0]
    >>> for _ in range(500):
    ...     _ = net.learn(x, y)
    >>> bool(np.abs(net.forward(x) - y).max() < 0.01)
    True
    """

    batch = 1  # (states saved before it was kept: a step per sample)
    pending = 0  # samples in the gradient summed since the last step

    def __init__(self, n_in: int, n_hidden: int, n_out: int, lr: float = 1e-4, seed: int | None = None,
                 batch: int = 1, dtype: str = "float64"):
        if type(batch) is not int or not 1 <= batch <= 1 << 16:
            raise ValueError(f"batch must be an integer from 1 to 65536, got {batch!r}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        self.n_in, self.n_hidden, self.n_out, self.lr = n_in, n_hidden, n_out, lr
        rng = np.random.default_rng(seed)
        first = rng.normal(size=n_in * n_hidden) / math.sqrt(n_in)
        self.steps = 0
        if batch > 1:
            self.batch = batch
        self._place(np.concatenate([first, np.zeros(n_hidden + n_hidden * n_out + n_out)]).astype(dtype))

    _SCRATCH = ("_grad", "_hidden", "_out", "_x", "_y")

    def _place(self, theta: np.ndarray, m1=None, m2=None, summed=None) -> None:
        """Put the weights, moments (zeros unless given), summed gradients
        (with a batch above 1: those of the pending samples) and every
        scratch array the kernels touch in one 64-byte-aligned block, each
        at a multiple of 64 bytes and always in the same order. The kernels'
        vectorised sums, and the checks for overlapping arrays that choose
        between their vector and scalar loops, then meet the same layout in
        every process, whatever memory the arrays came from: the same
        inputs give the same bits."""
        size, dtype = theta.shape[0], theta.dtype
        sizes = {"theta": size, "m1": size, "m2": size, "summed": size if self.batch > 1 else 0, "_grad": size,
                 "_hidden": self.n_hidden, "_out": self.n_out, "_x": self.n_in, "_y": self.n_out}
        line = 64 // dtype.itemsize  # values in 64 bytes
        block = aligned_zeros(sum(-(-n // line) * line for n in sizes.values()), dtype)
        at = 0
        for name, n in sizes.items():
            if n:
                self.__dict__[name] = block[at : at + n]
            at += -(-n // line) * line
        self.theta[:] = theta
        for name, given in (("m1", m1), ("m2", m2), ("summed", summed)):
            if given is not None:
                self.__dict__[name][:] = given

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._SCRATCH}

    def __setstate__(self, state: dict) -> None:
        """Refuse a state whose arrays the kernels would index out of bounds."""
        n_in, n_hidden, n_out = (state.get(k) for k in ("n_in", "n_hidden", "n_out"))
        if not all(type(v) is int and 1 <= v <= 1 << 16 for v in (n_in, n_hidden, n_out)):
            raise ValueError("the window network's sizes must be positive integers")
        size = n_in * n_hidden + n_hidden + n_hidden * n_out + n_out
        theta = state.get("theta")
        # (saved before the precision was chosen: float64, as it was)
        dtype = theta.dtype if type(theta) is np.ndarray and theta.dtype.name in _DTYPES else np.dtype(np.float64)
        for name in ("theta", "m1", "m2"):
            a = state.get(name)
            if not (type(a) is np.ndarray and a.dtype == dtype and a.shape == (size,) and a.flags.c_contiguous):
                raise ValueError(f"the window network's {name} must be a {dtype} array of shape ({size},)")
        lr, steps = state.get("lr"), state.get("steps")
        if not (type(lr) is float and math.isfinite(lr) and lr >= 0 and type(steps) is int and steps >= 0):
            raise ValueError("the window network's learning rate and steps are malformed")
        batch, pending = state.get("batch", 1), state.get("pending", 0)
        if not (type(batch) is int and 1 <= batch <= 1 << 16 and type(pending) is int and 0 <= pending < batch):
            raise ValueError("the window network's batch or pending count is malformed")
        summed = state.get("summed")
        if batch == 1 and summed is not None:
            raise ValueError("the window network keeps summed gradients only with a batch above 1")
        if batch > 1 and not (type(summed) is np.ndarray and summed.dtype == dtype and summed.shape == (size,)
                              and summed.flags.c_contiguous):
            raise ValueError(f"the window network's summed gradients must be a {dtype} array of shape ({size},)")
        state = dict(state)
        arrays = {name: state.pop(name) for name in ("theta", "m1", "m2", "summed") if name in state}
        self.__dict__.update(state)
        self._place(**arrays)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The corrections for the inputs ``x`` (float64)."""
        self._x[:] = x
        window_forward(self.theta, self.n_in, self.n_hidden, self.n_out, self._x, self._hidden, self._out)
        return self._out.astype(np.float64)

    @property
    def dtype(self) -> str:
        """The precision of its weights and arithmetic."""
        return self.theta.dtype.name

    def learn(self, x: np.ndarray, y: np.ndarray) -> float:
        """Learn the corrections ``y`` for the inputs ``x`` (a step, or with
        ``batch`` above 1 a step once ``batch`` samples are summed); returns
        the mean absolute error before it (NaN, and nothing learned, for a
        non-finite input or target)."""
        self._x[:] = x
        self._y[:] = y
        if self.batch > 1:
            loss = window_accumulate(self.theta, self.summed, self.n_in, self.n_hidden, self.n_out, self._x, self._y,
                                     self._hidden, self._out)
            if loss == loss:
                self.pending += 1
                if self.pending == self.batch:
                    self.steps += 1
                    window_adam(self.theta, self.m1, self.m2, self.summed, 1.0 / self.batch, self.steps, self.lr,
                                _BETAS[0], _BETAS[1], _EPS)
                    self.pending = 0
            return loss
        step = self.steps + 1
        loss = window_learn(self.theta, self.m1, self.m2, self._grad, self.n_in, self.n_hidden, self.n_out, self._x,
                            self._y, step, self.lr, _BETAS[0], _BETAS[1], _EPS, self._hidden, self._out)
        if loss == loss:
            self.steps = step
        return loss


def window_network(lr: float, seed: int | None) -> WindowNetwork:
    """The network a :class:`WindowCorrector` uses, for a recurrent network
    learning at ``lr``."""
    return WindowNetwork(WINDOW + HORIZON, HIDDEN, HORIZON, lr=LR_FACTOR * lr, seed=seed, batch=BATCH, dtype=DTYPE)


class WindowCorrector:
    """One series' corrections of its forecasts by a :class:`WindowNetwork`
    (not kept here: handed to each call, as it may be shared).

    Each :meth:`update` takes the series' next value and the forecast then
    made of the values after it (positive values; the corrector stays idle
    from the first value that is not): the forecast made :data:`HORIZON`
    steps before, whose values are now all known, teaches the network; the
    network corrects the new forecast once :data:`WINDOW` values are known;
    both forecasts are scored as their values arrive, and :meth:`forecast`
    gives, at each horizon, the forecast unless their mixture has erred less.
    """

    def __init__(self):
        # ring of the last log values: the window of the origin HORIZON steps
        # back and the values since (its inputs are made again to learn from it)
        self.values = np.zeros(WINDOW + HORIZON)
        self.n = 0  # values seen
        self.anchors = np.full((HORIZON, HORIZON), np.nan)  # the log forecasts corrected at the last origins (NaN: none)
        self.combination = HorizonCombination(2, HORIZON)
        self.made: tuple | None = None  # the forecast to give now (log scale) and which one, per horizon
        self.idle = False

    def __setstate__(self, state: dict) -> None:
        n, idle, comb, made = (state.get(k) for k in ("n", "idle", "combination", "made"))
        for name, shape in (("values", (WINDOW + HORIZON,)), ("anchors", (HORIZON, HORIZON))):
            a = state.get(name)
            if not (type(a) is np.ndarray and a.dtype == np.float64 and a.shape == shape and a.flags.c_contiguous):
                raise ValueError(f"the window corrector's {name} must be a float64 array of shape {shape}")
        if not (type(n) is int and n >= 0 and type(idle) is bool and isinstance(comb, HorizonCombination)
                and comb.n_candidates == 2 and comb.horizon == HORIZON):
            raise ValueError("the window corrector's count, flag or combination is malformed")
        if made is not None and not (
            type(made) is tuple and len(made) == 2 and all(type(a) is np.ndarray for a in made)
            and made[0].dtype == np.float64 and made[1].dtype == np.int64 and made[0].shape == made[1].shape == (HORIZON,)
            and ((made[1] == 0) | (made[1] == 1)).all()
        ):
            raise ValueError("the window corrector's last forecast is malformed")
        self.__dict__.update(state)

    def update(self, value: float, forecast: np.ndarray, network: WindowNetwork) -> None:
        """Learn the series' next ``value`` and the ``forecast`` then made of
        the values after it (at most :data:`HORIZON`; NaN where none)."""
        prepared = self._prepare(value, forecast)
        if prepared is not None:
            self._learn(forecast, *prepared, network, np.empty(HORIZON), np.empty(HORIZON, dtype=np.int64))

    def _learn(self, forecast: np.ndarray, z: float, k: int, logs: np.ndarray, network: WindowNetwork,
               given: np.ndarray, choice: np.ndarray) -> None:
        """:meth:`update`, its inputs prepared (:meth:`_prepare`); its output
        into ``given`` and ``choice``."""
        comb, net = self.combination, network
        F, mixture = np.empty((2, HORIZON)), np.empty(HORIZON)
        # the ring, learning, correction, and the combination's scoring, mixture and record: one kernel call
        steps, pending = corrector_update(
            self.values, self.n, self.anchors, z, forecast, k, logs, WINDOW, LEVEL, CLIP_INPUTS, CLIP_TARGETS,
            net.theta, net.m1, net.m2, net._grad, net.summed if net.batch > 1 else net._grad, net.batch, net.pending,
            net.steps, net.lr, _BETAS[0], _BETAS[1], _EPS, net._hidden, net._out, net._x, net._y, F,
            comb.made, comb.origin, comb.unit, comb.sq_errors, comb.counts, comb.abs_errors, comb.n_abs, comb.t,
            DISCOUNT, THIN, MIN_COUNT, TRIM, MARGIN, mixture, given, choice)
        if steps < 0:  # a forecast value not positive (nothing changed)
            self.idle, self.made = True, None
            return
        self.n += 1
        net.steps = steps
        if net.batch > 1:
            net.pending = pending
        comb.t += 1
        self.made = (given, choice)

    def _prepare(self, value: float, forecast: np.ndarray) -> tuple | None:
        """The log ``value``, the forecast's steps taken and, until the window
        is full, their logs: the kernel's inputs of :meth:`update`; None, the
        corrector made idle, where it stays idle or the values are not
        positive."""
        k = min(len(forecast), HORIZON)
        if self.n + 1 < WINDOW:  # the forecast's logs, until the window is full: then the network's inputs take them
            positive = value > 0 and (forecast[:k] > 0).all()
            logs = np.log(forecast[:k]) if positive else _NONE
        else:
            positive, logs = value > 0, _NONE  # (the kernel checks the forecast)
        if self.idle or not positive:
            self.idle, self.made = True, None
            return None
        return math.log(value), k, logs

    def forecast(self, horizon: int, coverage: float | None = None):
        """The corrected forecast of the next ``horizon`` values (at most
        :data:`HORIZON`), or with ``coverage`` its interval's bounds; None
        while idle or before the first value."""
        if self.made is None or horizon > HORIZON:
            return None
        given, choice = self.made
        g = given[:horizon]
        if np.isnan(g).any():
            return None
        if coverage is None:
            return np.exp(g).tolist()
        q = self.combination.quantiles(choice[:horizon], coverage)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.exp(g - q).tolist(), np.exp(g + q).tolist()
