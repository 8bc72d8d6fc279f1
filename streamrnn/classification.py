"""Recurrent classifiers whose hidden state runs along the stream of ``x``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from river import base

from .keys import holds_nan
from .estimator import RecurrentEstimator, RowPath, as_targets, exclusive_as
from .guard import exclusive, holding_token
from .kernels.estimator_rows import (DONE, NOT_READ, R_REVEALED, R_STATUS, classifier_binary_dict,
                                     classifier_learn, classifier_logits, classifier_proba_dict)
from .kernels.numpy_exp import exp_loop_checked
from ._docs import document


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

    **What the stream has revealed.** With ``revealed_targets`` = ``n`` (3 by
    default; 0: none), the network's inputs at each step include the one-hots
    of the last ``n`` labels learned (of the row's entity, with ``key``), the
    latest first, each class an input per lag (a fresh model, or a lag not
    reached yet, reads all zeros). The semantics are the regressors' (see
    :class:`~streamrnn.regression.RecurrentRegressor`): the labels learned
    last, whatever the order of predictions; a prediction never sees the
    label of its own row. On Elec2 the last labels carry most of the signal
    (accuracy 0.93 with them, 0.88 without); on a stream of independent
    rows they cost a little.

    **Entities** (``key``, ``max_idle``): as for the regressors.
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
        revealed_targets: int = 3,
        key=None,
        max_idle: int | None = None,
    ):
        super().__init__(hidden_size, num_layers, k1, k2, optimizer, lr, clip_norm, dtype, device, seed,
                         revealed_targets, key, max_idle)
        self._classes: list = []
        self._class_index: dict = {}

    @classmethod
    def _unit_test_params(cls):
        yield from super()._unit_test_params()
        yield {"hidden_size": 4, "k2": 4, "seed": 1, "revealed_targets": 0}
        yield {"hidden_size": 4, "k2": 4, "seed": 1, "key": "is_popular", "max_idle": 20}

    def _fresh_carried(self) -> list:
        # the indices of the last classes learned, the latest first (-1: none yet)
        return [-1] * self.revealed_targets

    def _one_hots(self, previous: list, out: np.ndarray) -> None:
        """The one-hots of the classes ``previous`` (the latest first) into
        ``out``: class ``c`` at lag ``j + 1`` is input ``c * revealed_targets + j``."""
        n = self.revealed_targets
        for j, c in enumerate(previous):
            if c >= 0:
                out[c * n + j] = 1.0

    def _revealed(self, n: int) -> np.ndarray | None:
        return None if not self._cols_y else np.tile(self._revealed_one(), (n, 1))

    def _revealed_one(self):
        if not self._cols_y:
            return None
        r = np.zeros(len(self._cols_y))
        self._one_hots(self._carried, r)
        return r

    @property
    def _multiclass(self):
        return True

    def _new_row_path(self) -> RowPath:
        n, nc = self.revealed_targets, len(self._classes)
        # the softmax in the kernel, by NumPy's exponential, where it sums as NumPy (fewer than 8 values)
        exp = exp_loop_checked() if 0 < nc < 8 else (0, 0)
        binary = nc == 2 and exp[0] != 0
        path = RowPath(self, (0, 0, n, nc), revealed=n, reader=classifier_binary_dict if binary else
                       classifier_proba_dict, exp=exp)
        path.reader_args = (path.shifted,)
        path.exp, path.binary = exp[0] != 0, binary  # (the reader leaves probabilities; as a pair)
        self._refresh(path)
        return path

    def _refresh(self, path: RowPath) -> None:
        """The last classes learned, into ``path``'s row."""
        path.row[R_REVEALED : R_REVEALED + len(self._carried)] = self._carried

    def _register_targets(self, values) -> None:
        new = 0
        for v in values:
            if v not in self._class_index:
                self._class_index[v] = len(self._classes)
                self._classes.append(v)
                new += 1
        outputs = max(len(self._classes), self._net.output_size)
        if new:
            self.__dict__.pop("_path", None)  # (its classes change)
        if not new and outputs == self._net.output_size:
            return
        if self.revealed_targets:  # each class an input per lag too: the one-hots of the last classes learned
            self._cols_y.extend(self._new_columns(new * self.revealed_targets, output_size=outputs))
        elif outputs > self._net.output_size:
            self._new_columns(0, output_size=outputs)

    def _learn_rows(self, Z: np.ndarray, labels) -> None:
        """Learn rows of the active entity (standardised features ``Z``), one after the other."""
        carried = self._carried
        if len(labels) == 1:  # learn_one's path (the same arithmetic, without the matrices)
            c = self._class_index[labels[0]]
            r = None
            if self._cols_y:
                r = np.zeros(len(self._cols_y))
                self._one_hots(carried, r)
            y = np.zeros(self._net.output_size, dtype=self._net._np_dtype)
            y[c] = 1.0
            self._net.learn(self._compose_one(Z[0], r), y)
            if carried:
                carried[:] = [c] + carried[:-1]
            self._refreshed()
            return
        index = [self._class_index[v] for v in labels]
        R = None
        if self._cols_y:
            R = np.zeros((len(index), len(self._cols_y)))
        for i, c in enumerate(index):
            if R is not None:
                self._one_hots(carried, R[i])
            if carried:
                carried[:] = [c] + carried[:-1]
        Y = np.zeros((len(index), self._net.output_size))
        Y[np.arange(len(index)), index] = 1.0
        self._net.learn_many(self._compose(Z, R), Y)
        self._refreshed()

    def _refreshed(self) -> None:
        path = self._path
        if path is not None:
            self._refresh(path)

    def _probabilities(self, logits: np.ndarray) -> np.ndarray:
        z = logits[:, : len(self._classes)].astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    # The public per-row methods take a row in one kernel call (a RowPath)
    # where they can, holding the guard's token themselves (one Python call
    # less than the exclusive wrapper); anything else, and the first rows,
    # go to the guarded methods below, which make the path or take the row
    # row by row.

    def learn_one(self, x: dict, y) -> None:
        path, held = self._path, self._busy
        if path is not None and held and type(x) is dict:
            try:
                c = self._class_index.get(y)  # (a class seen before is a label)
            except TypeError:  # unhashable: the guarded method says so
                c = None
            if c is not None and holding_token(held, self._learn_in_one_call, path, x, c):
                return
        self._learn_one(x, y)

    def _learn_in_one_call(self, path, x: dict, c: int) -> bool:
        """Learn the row ``x`` of the class of index ``c`` in one kernel call; whether it could."""
        carried = self._carried
        plan = path.pack(x, c)
        if plan is None or not classifier_learn(path.row, plan, self._x_scaler.stats, self._x_scaler.beyond,
                                                self._net._ctr, self._net._buf, path.scratch):
            return False
        if carried:
            carried[:] = [c, *carried[:-1]]
        return True

    @exclusive_as("learn_one")
    def _learn_one(self, x: dict, y) -> None:
        if not _is_label(y):
            raise ValueError(f"y must be a class label (hashable, not None or NaN), got {y!r}")
        self._check_x(x)
        if self._entities is None:
            c = self._class_index.get(y)
            path = self._row_path()
            if c is not None and path is not None and self._learn_in_one_call(path, x, c):
                return
        k = None
        if self._entities is not None:
            k = self._entity_of(x)
            x = self._without_key(x)
            self._features.present(x)  # bad values raise before the entity changes
            self._entities.activate(self, k)
        Z = self._one_features(x, learn=True)
        self._register_targets([y])
        self._learn_rows(Z, [y])
        if self._entities is not None:
            self._entities.learned(k)

    def predict_proba_one(self, x: dict) -> dict:
        path, held = self._path, self._busy
        if path is not None and held and type(x) is dict:
            try:
                token = held.pop()  # (the guard's token: see streamrnn.guard)
            except IndexError:  # (taken meanwhile: the guarded method says so)
                return self._predict_proba_one(x)
            try:  # (spelled out: predictions are the cheapest calls)
                read = path.read
                if read is not None and self._x_scaler.stats is path.stats and self._net._buf is path.buf:
                    if path.binary:  # (the dict read in the kernel, two classes: their probabilities)
                        p0, p1 = read(id(x))
                        if p0 == p0 or path.row[R_STATUS] == DONE:
                            c0, c1 = self._classes
                            return {c0: p0, c1: p1}
                    elif read(id(x)):  # (the dict read in the kernel)
                        if path.exp:
                            return dict(zip(self._classes, path.shifted.tolist()))
                        return self._softmax_dict(path.shifted)
                    # another key order or other types: packed here; else the row-by-row path
                    p = self._proba_in_one_call(path, x) if path.row[R_STATUS] == NOT_READ else None
                else:
                    p = self._proba_in_one_call(path, x)
                if p is not None:
                    return p
            finally:
                held.append(token)
        return self._predict_proba_one(x)

    def _proba_in_one_call(self, path, x: dict) -> dict | None:
        """The probabilities for ``x`` from one kernel call, its values
        packed here (and the path's dict reading bound to its plan), then
        NumPy's exponential; None where it cannot."""
        found = path.packed(x, 0.0)
        stats, buf = self._x_scaler.stats, self._net._buf
        if found is None or not classifier_logits(path.row, found[1], stats, buf, path.scratch, path.shifted):
            return None
        path.bind(found, stats, buf)
        return self._softmax_dict(path.shifted)

    @exclusive_as("predict_proba_one")
    def _predict_proba_one(self, x: dict) -> dict:
        self._check_x(x)
        if self._entities is None:
            path = self._row_path()
            if path is not None:
                p = self._proba_in_one_call(path, x)
                if p is not None:
                    return p
            return self._proba_dict(self._net.predict(self._one_input(x, learn=False)))
        with self._entities.peeking(self, self._entity_of(x)):
            return self._proba_dict(self._net.predict(self._one_input(self._without_key(x), learn=False)))

    def _softmax_dict(self, shifted: np.ndarray) -> dict:
        """:meth:`_proba_dict` from the logits less the largest (float64):
        the same exponentials, sum and quotients, bit for bit."""
        classes = self._classes
        if not classes:
            return {}
        if len(classes) >= 8:
            e = np.exp(shifted)[None, :]
            return {c: float(pc) for c, pc in zip(classes, (e / e.sum(axis=1, keepdims=True))[0])}
        values = np.exp(shifted, out=shifted).tolist()  # (the logits are the kernel's again at the next call)
        # NumPy's sum of fewer than 8 values: in order, from 0 (at least 1: exp(0) is among them)
        if len(values) == 2:  # (the common binary case, spelled out)
            total = 0.0 + values[0] + values[1]
            return {classes[0]: values[0] / total, classes[1]: values[1] / total}
        total = 0.0
        for v in values:
            total += v
        p = {}
        for c, v in zip(classes, values):
            p[c] = v / total
        return p

    def _proba_dict(self, logits: np.ndarray) -> dict:
        if not self._classes:
            return {}
        p = self._probabilities(logits[None, :])[0]
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
        self._learn_batch(X, labels, events, self._learn_rows)

    @exclusive
    def predict_proba_many(self, X: pd.DataFrame) -> pd.DataFrame:
        p = self._predict_rows(X, lambda logits: self._probabilities(logits) if self._classes else logits[:, :0])
        if not self._classes:
            return pd.DataFrame(index=X.index)
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
    Accuracy: 86.39%

    Phishing's rows are independent: the revealed labels carry nothing and
    cost a little (without them, 86.95%):

    >>> evaluate.progressive_val_score(datasets.Phishing(), LSTMClassifier(revealed_targets=0, seed=0),
    ...                                metrics.Accuracy())
    Accuracy: 86.95%
    """

    _cell = "lstm"


for _cls in (RNNClassifier, GRUClassifier, LSTMClassifier):  # a Parameters section of its own for help() (the bases are not exported)
    document(_cls)
del _cls
