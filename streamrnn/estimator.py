"""What the recurrent River estimators share: their network arguments, the
feature space and its scaling, and the splitting of mini-batches where
features or classes first appear (so ``learn_many`` equals ``learn_one`` in
a loop, bit for bit)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .features import FeatureSpace, RunningScaler, first_appearances
from .guard import Guarded
from .learner import OnlineRNN


def check_regression_loss(loss) -> None:
    """The losses of a real-valued target (``"cross_entropy"``, a network
    loss too, is for classes)."""
    if loss not in ("squared", "huber"):
        raise ValueError(f"loss must be 'squared' or 'huber', got {loss!r}")


def build_network(owner, cell: str, loss: str, input_size: int, output_size: int, zero_head: bool = False) -> OnlineRNN:
    """The :class:`OnlineRNN` of an estimator, from the network arguments it
    stores under their own names. With ``zero_head`` the linear head starts
    at zero, so an untrained network outputs zeros (a residual learner then
    starts from its base forecast)."""
    net = OnlineRNN(
        cell=cell,
        input_size=input_size,
        hidden_size=owner.hidden_size,
        num_layers=owner.num_layers,
        output_size=output_size,
        k1=owner.k1,
        k2=owner.k2,
        optimizer=owner.optimizer,
        lr=owner.lr,
        clip_norm=owner.clip_norm,
        loss=loss,
        dtype=owner.dtype,
        device=owner.device,
        seed=owner.seed,
    )
    if zero_head:
        start = net.state_dict()
        start["head.weight"][:] = 0.0
        start["head.bias"][:] = 0.0
        net.load_state_dict(start)
    return net


class RecurrentEstimator(Guarded):
    """Mixin for estimators built on one :class:`~streamrnn.OnlineRNN`
    whose hidden state runs along the stream of ``x``.

    Subclasses set ``_cell`` and ``_loss`` and implement the target side,
    their public methods wrapped by :func:`~streamrnn.guard.exclusive` (not
    thread-safe: a call from a second thread while one is inside raises
    :class:`~streamrnn.guard.ConcurrentUseError`).
    """

    _cell = "lstm"
    _loss = "squared"

    def __init__(
        self,
        hidden_size: int = 32,
        num_layers: int = 1,
        k1: int = 1,
        k2: int = 16,
        optimizer: str = "adam",
        lr: float = 1e-3,
        clip_norm: float | None = 1.0,
        dtype: str = "float32",
        device: str = "cpu",
        seed: int | None = None,
    ):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip_norm = clip_norm
        self.dtype = dtype
        self.device = device
        self.seed = seed
        self._features = FeatureSpace()
        self._x_scaler = RunningScaler(guard=True)  # a glitch in a feature reads as missing
        self._net = self._network(output_size=1)

    def _network(self, output_size: int) -> OnlineRNN:
        return build_network(self, self._cell, self._loss, input_size=1, output_size=output_size)

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4, "seed": 1}
        yield {"hidden_size": 3, "num_layers": 2, "k1": 2, "k2": 3}  # seed None: River checks seeding

    # ------------------------------------------------------------ features

    def _register(self, names) -> None:
        new = self._features.unseen(names)  # (NaN-like names refused here)
        if new:
            n = len(self._features) + len(new)
            # all or nothing: the network first (the large allocation), the features last
            self._net.resize(input_size=max(n, self._net.input_size))
            self._x_scaler.grow(n)
            self._features.register(new)

    def _inputs(self, M: np.ndarray, update: bool) -> np.ndarray:
        """Standardised network inputs for the float64 rows ``M`` over the
        known columns (NaN missing)."""
        Z = self._x_scaler.transform(M, update)
        if Z.shape[1] < self._net.input_size:  # no feature seen yet: the one input reads 0
            Z = np.zeros((Z.shape[0], self._net.input_size))
        return Z

    def _one_input(self, x: dict, learn: bool) -> np.ndarray:
        if not isinstance(x, dict):
            raise ValueError(f"x must be a dict of features, got {type(x).__name__}")
        if learn:
            self._register(self._features.present(x))
        return self._inputs(self._features.row(x)[None, :], update=learn)[0]

    def _many_inputs(self, X: pd.DataFrame) -> np.ndarray:
        M, columns = self._features.frame(X)
        return self._inputs(self._features.arrange(M, columns), update=False)

    def _register_targets(self, values) -> None:
        """Classifiers give new classes an output here."""

    def _learn_batch(self, X: pd.DataFrame, targets: np.ndarray, target_events: dict, learn_rows) -> None:
        """Learn a mini-batch in segments cut where features or (listed in
        ``target_events``, ``{row: [values]}``) classes first appear, each
        registered where ``learn_one`` would register it; ``learn_rows(Z,
        targets)`` learns one segment's standardised inputs."""
        M, columns = self._features.frame(X)
        if len(targets) != len(M):
            raise ValueError(f"X and y must have the same length, got {len(M)} and {len(targets)}")
        feature_events = first_appearances(M, columns, self._features.index)
        cuts = sorted({0, *feature_events, *target_events}) + [len(M)]
        for start, stop in zip(cuts[:-1], cuts[1:]):
            if start in feature_events:
                self._register(feature_events[start])
            if start in target_events:
                self._register_targets(target_events[start])
            if start < stop:
                Z = self._inputs(self._features.arrange(M[start:stop], columns), update=True)
                learn_rows(Z, targets[start:stop])


def as_targets(y, n: int, name: str = "y") -> np.ndarray:
    """A Series or array of ``n`` targets as an object array, in order."""
    values = y.to_numpy() if isinstance(y, pd.Series) else np.asarray(y)
    if values.ndim != 1 or len(values) != n:
        raise ValueError(f"{name} must be one-dimensional with {n} values, got shape {values.shape}")
    return values
