"""Robust exponential smoothing of a level and up to two seasonal cycles: the
statistical forecasts that hold their level over a whole horizon, beside the
recurrent path of the forecasters (:mod:`streamrnn.combination` weighs them).

Each of several smoothing settings keeps a level ``l``, a seasonal index per
phase of the period ``m`` (``s``) and, for a second, longer period ``M`` (a
multiple of ``m``: the week of an hourly series), a second index (``S``):
the value expected at time ``t`` is ``l + s[t % m] + S[t % M]`` (Taylor's
double-seasonal Holt-Winters, additive: on the log scale it is
multiplicative). Each one-step error ``e`` moves the level by ``alpha e``
and the indices by ``gamma (1 - alpha) e``. The error is first clipped at
three times a running root mean square of the clipped errors (after Gelper,
Fried and Croux's robust Holt-Winters): one glitch, or two in a row, move
the level by a bounded step; errors beyond the clip on
:data:`SHIFT_AFTER` steps in a row, all of one sign, are a level shift, and
are learned unclipped from then on, so that the shift is followed within a
few steps.
"""

from __future__ import annotations

import numpy as np

from .kernels import combination as K

#: (alpha, gamma of the period, gamma of the long period) of each setting.
SETTINGS = (
    (0.02, 0.1, 0.1),
    (0.05, 0.2, 0.2),
    (0.1, 0.3, 0.2),
    (0.2, 0.3, 0.3),
    (0.05, 0.2, 0.0),
    (0.1, 0.3, 0.0),
)
#: Errors beyond this many running root mean squares are clipped.
CLIP_ERRORS = 3.0
#: Weight of the newest squared error in the running mean square.
SCALE_DECAY = 0.01
#: Errors beyond the clip on this many steps in a row, all of one sign, are a
#: level shift, not a glitch: from then on they are learned unclipped.
SHIFT_AFTER = 3


def long_period(m: int | None) -> int | None:
    """The second period kept beside ``m``: the week (168) of an hourly
    series' day (24); None for any other period.

    >>> long_period(24), long_period(12), long_period(None)
    (168, None, None)
    """
    return 7 * m if m == 24 else None


class SeasonalSmoothing:
    """Robust additive smoothing of a level and seasonal indices, one per
    setting in :data:`SETTINGS`, updated together (vectorised).

    Parameters
    ----------
    period
        The period ``m`` (None: the level alone).
    long_period
        A second period, a multiple of ``period`` (None: none).

    Examples
    --------
    A noisy daily cycle on top of a level that steps up by 10, and one
    glitch: each setting forecasts the cycle on the new level, and the glitch
    moved the level by a bounded step only.

    >>> import numpy as np
    >>> from streamrnn.smoothing import SeasonalSmoothing
    >>> day = np.sin(2 * np.pi * np.arange(24) / 24)
    >>> y = np.concatenate([np.tile(day, 20), 10 + np.tile(day, 20)])
    >>> y += 0.01 * np.random.default_rng(0).normal(size=len(y))
    >>> y[300] = 1e6
    >>> model = SeasonalSmoothing(24)
    >>> for v in y:
    ...     model.update(float(v))
    >>> forecasts = model.forecast(24)
    >>> bool(np.abs(forecasts - (10 + day)).max() < 0.5)
    True
    """

    def __init__(self, period: int | None = None, long_period: int | None = None):
        if long_period is not None and (period is None or long_period % period):
            raise ValueError(f"long_period must be a multiple of period, got {long_period} and {period}")
        settings = np.array(SETTINGS)
        self.period = period
        self.long_period = long_period
        alpha = settings[:, 0]
        # rows: alpha, and each period's gamma times 1 - alpha
        self.params = np.stack([alpha, settings[:, 1] * (1.0 - alpha), settings[:, 2] * (1.0 - alpha)])
        k = len(settings)
        # rows: level, running mean square of the clipped errors, signed count
        # of the last errors beyond the clip (all of one sign)
        self.state = np.zeros((3, k))
        self.season = np.zeros((k, period or 1))
        self.season_long = np.zeros((k, long_period or 1))
        self.n = 0  # values seen

    def __len__(self) -> int:
        return self.params.shape[1]

    def __setstate__(self, state: dict) -> None:
        """Refuse a state whose arrays the kernels would index out of bounds
        (an edited file), or whose settings are not smoothing constants."""

        def array(name, shape):
            a = state.get(name)
            if not (type(a) is np.ndarray and a.dtype == np.float64 and a.shape == shape and a.flags.c_contiguous):
                raise ValueError(f"the smoothing's {name} must be a float64 array of shape {shape}")
            return a

        m, M, n = state.get("period"), state.get("long_period"), state.get("n")
        for name, v in (("period", m), ("long_period", M)):
            if not (v is None or (type(v) is int and v >= 2)):
                raise ValueError(f"the smoothing's {name} must be None or an integer >= 2, got {v!r}")
        if M is not None and (m is None or M % m):
            raise ValueError("the smoothing's long period must be a multiple of its period")
        if not (type(n) is int and n >= 0):
            raise ValueError(f"the smoothing's count must be a non-negative integer, got {n!r}")
        params = state.get("params")
        k = params.shape[1] if type(params) is np.ndarray and params.ndim == 2 else -1
        if k < 1:
            raise ValueError("the smoothing's params must be a float64 array of 3 rows")
        params = array("params", (3, k))
        if not (np.all(params >= 0) and np.all(params <= 1)):
            raise ValueError("the smoothing's constants must lie in [0, 1]")
        array("state", (3, k))
        array("season", (k, m or 1))
        array("season_long", (k, M or 1))
        self.__dict__.update(state)

    def update(self, z: float) -> None:
        """Learn the next value ``z`` (finite)."""
        K.smoothing_update(self.params, self.state, self.season, self.season_long, self.n, self.period or 0,
                           self.long_period or 0, z, CLIP_ERRORS, SCALE_DECAY, SHIFT_AFTER)
        self.n += 1

    def forecast(self, horizon: int, out: np.ndarray | None = None) -> np.ndarray:
        """The forecasts of the next ``horizon`` values by each setting,
        shape ``(len(SETTINGS), horizon)`` (written into ``out`` when
        given); NaN while the first cycle is incomplete."""
        if out is None:
            out = np.empty((len(self), horizon))
        K.smoothing_forecast(self.state, self.season, self.season_long, self.n, self.period or 0,
                             self.long_period or 0, out)
        return out
