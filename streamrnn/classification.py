"""Recurrent classifiers whose hidden state runs along the stream of ``x``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from river import base

from .keys import holds_nan
from .estimator import RecurrentEstimator, as_targets
from .guard import exclusive


class RecurrentClassifier(RecurrentEstimator, base.MiniBatchClassifier):
    """Base of :class:`RNNClassifier`, :class:`GRUClassifier` and
    :class:`LSTMClassifier`: binary and multiclass, with classes that appear
    over time (each new class gets an output, starting from zero logits).

    The network's outputs are logits learned with the cross-entropy loss;
    ``predict_proba_one`` is their softmax over the classes seen so far (an
    empty dict before the first class). Each ``learn_one(x, y)`` advances the
    hidden state by one step; prediction changes nothing.

    Not thread-safe: a call from a second thread while one is inside raises
    :class:`~streamrnn.guard.ConcurrentUseError`. A feature named NaN (or
    anything unequal to itself) is refused with a ``ValueError``.
    """

    _loss = "cross_entropy"

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
        super().__init__(hidden_size, num_layers, k1, k2, optimizer, lr, clip_norm, dtype, device, seed)
        self._classes: list = []
        self._class_index: dict = {}

    @property
    def _multiclass(self):
        return True

    def _register_targets(self, values) -> None:
        for v in values:
            if v not in self._class_index:
                self._class_index[v] = len(self._classes)
                self._classes.append(v)
        if len(self._classes) > self._net.output_size:
            self._net.resize(output_size=len(self._classes))

    def _one_hot(self, labels) -> np.ndarray:
        Y = np.zeros((len(labels), self._net.output_size))
        Y[np.arange(len(labels)), [self._class_index[v] for v in labels]] = 1.0
        return Y

    def _probabilities(self, logits: np.ndarray) -> np.ndarray:
        z = logits[:, : len(self._classes)].astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    @exclusive
    def learn_one(self, x: dict, y) -> None:
        if not _is_label(y):
            raise ValueError(f"y must be a class label (hashable, not None or NaN), got {y!r}")
        z = self._one_input(x, learn=True)
        self._register_targets([y])
        self._net.learn(z, self._one_hot([y])[0])

    @exclusive
    def predict_proba_one(self, x: dict) -> dict:
        z = self._one_input(x, learn=False)
        if not self._classes:
            return {}
        p = self._probabilities(self._net.predict(z)[None, :])[0]
        return {c: float(pc) for c, pc in zip(self._classes, p)}

    @exclusive
    def learn_many(self, X: pd.DataFrame, y: pd.Series) -> None:
        labels = as_targets(y, len(X))
        events: dict[int, list] = {}
        seen = set(self._class_index)
        for i, v in enumerate(labels):
            if not _is_label(v):
                raise ValueError(f"y must hold class labels (hashable, not None or NaN); row {i} is {v!r}")
            if v not in seen:
                seen.add(v)
                events.setdefault(i, []).append(v)
        self._learn_batch(X, labels, events, lambda Z, t: self._net.learn_many(Z, self._one_hot(t)))

    @exclusive
    def predict_proba_many(self, X: pd.DataFrame) -> pd.DataFrame:
        Z = self._many_inputs(X)
        if not self._classes:
            return pd.DataFrame(index=X.index)
        p = self._probabilities(self._net.predict_each(Z))
        return pd.DataFrame(p, index=X.index, columns=self._classes)


def _is_label(y) -> bool:
    """Whether ``y`` can be a class: hashable, and neither None nor NaN-like
    (unequal to itself: each NaN would be a class of its own)."""
    try:
        hash(y)
    except TypeError:
        return False
    return y is not None and not holds_nan(y)


class RNNClassifier(RecurrentClassifier):
    """Elman RNN (tanh) classifier; see :class:`RecurrentClassifier`."""

    _cell = "rnn"


class GRUClassifier(RecurrentClassifier):
    """GRU classifier; see :class:`RecurrentClassifier`."""

    _cell = "gru"


class LSTMClassifier(RecurrentClassifier):
    """LSTM classifier; see :class:`RecurrentClassifier`.

    Examples
    --------
    >>> from river import datasets, evaluate, metrics
    >>> from streamrnn import LSTMClassifier
    >>> evaluate.progressive_val_score(datasets.Phishing(), LSTMClassifier(seed=0), metrics.Accuracy())
    Accuracy: 86.95%
    """

    _cell = "lstm"
