"""``OnlineRNN``: the array-level online learner every estimator is built on."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np

from .checks import check_choice, check_integer, check_real, check_seed, is_integer, unmasked
from .kernels import layout as L
from .kernels import recurrent as K
from .network import NetworkShape, aligned_zeros, build_layout, init_parameters, parameter_names, parameter_views

_DTYPES = {"float32": np.float32, "float64": np.float64}
_predict_one, _learn_one = K.predict_one, K.learn_one  # module globals: one lookup less per call


def _region_views(shape: NetworkShape, lay: np.ndarray, buf: np.ndarray, region: int | None) -> dict[str, np.ndarray]:
    """A parameter-shaped region of ``buf`` (parameters, gradient, moments;
    None: the parameters) by name, for the layout ``lay`` of ``shape``."""
    start = 0 if region is None else lay[region]
    return parameter_views(shape, lay, buf[start : start + lay[L.L_NPARAM]])


class OnlineRNN:
    """A stack of recurrent cells with a linear head that learns one sample at
    a time by truncated backpropagation through time.

    The hidden state is carried from sample to sample. Every ``k1`` samples
    the weights are updated with the gradient of the mean loss of the last
    ``min(k1, k2)`` predictions, backpropagated through the last ``k2`` steps
    (the state before them is a constant): TBPTT(k1, k2).

    Parameters
    ----------
    cell
        ``"rnn"`` (tanh Elman), ``"gru"`` or ``"lstm"``.
    input_size, hidden_size, num_layers, output_size
        Sizes of the network: ``num_layers`` stacked cells, then a linear head.
    k1
        Samples between weight updates.
    k2
        Steps backpropagated through at each update (the window length).
    optimizer
        ``"sgd"`` (with ``momentum``), ``"rmsprop"``, ``"adam"`` or ``"adamw"``,
        with PyTorch's update formulas.
    lr
        Learning rate.
    clip_norm
        Gradients are rescaled to this global norm when larger; ``None``
        disables clipping.
    loss
        ``"squared"`` (PyTorch's ``MSELoss``) or ``"huber"`` (``HuberLoss``
        with ``huber_delta``), averaged over steps and outputs; or
        ``"cross_entropy"`` (``CrossEntropyLoss``: the outputs are logits,
        targets are class probabilities, e.g. one-hot), averaged over steps.
    dtype
        ``"float32"`` (fast) or ``"float64"`` (reference).
    device
        ``"cpu"``, the only device of a single model: its steps form a
        sequential chain of small matrix-vector products (a few µs each on a
        CPU core), which a GPU runs no faster and pays kernel launches and
        transfers on top. GPUs pay for many models at once:
        :class:`~streamrnn.ModelBank` with ``device="cuda"`` runs one GPU
        thread per model.
    seed
        Seed of the parameter initialisation; the same seed gives
        bit-identical results.
    momentum
        SGD momentum.
    betas, eps
        Adam/AdamW moment decay rates and denominator term; ``eps`` is also
        RMSprop's.
    alpha
        RMSprop's squared-gradient decay rate.
    weight_decay
        L2 penalty (SGD, RMSprop, Adam) or decoupled decay (AdamW); ``None``
        means PyTorch's default: 0.01 for AdamW, 0 otherwise.
    huber_delta
        Threshold of the Huber loss.
    recompute
        When ``k1 < k2``, recompute the window's activations with the current
        weights before backpropagating (exact TBPTT) instead of using the
        activations stored when each step was taken. Identical when
        ``k1 >= k2``.
    approx_activations
        Use a rational approximation of tanh and sigmoid (absolute error
        < 1e-6, several times faster). ``None``: on for float32, off for
        float64.

    Notes
    -----
    Non-finite values never reach the weights: an input, target, loss or
    gradient that is not finite skips its sample or update, and an update
    that would write a non-finite parameter or moment (an overflow) is
    rolled back (:attr:`n_skipped`, :attr:`n_overflows`). Hyperparameters
    with which no update could ever apply are refused.

    Not thread-safe, and not guarded (its calls are a few µs): use one
    model per thread. The banks and the River estimators built on it detect
    use from two threads at once (:class:`~streamrnn.guard.ConcurrentUseError`).

    Examples
    --------
    Learn the next hourly change of River's bundled WaterFlow series from the
    last one, prequentially (``learn_many`` returns each prediction made
    before its target was learned):

    >>> import numpy as np
    >>> from river import datasets
    >>> from streamrnn import OnlineRNN
    >>> y = np.array([v for _, v in datasets.WaterFlow()])
    >>> change = np.diff(y)
    >>> rnn = OnlineRNN(cell="gru", hidden_size=16, seed=0)
    >>> pred = rnn.learn_many(change[:-1, None], change[1:, None])[:, 0]
    >>> mae = np.mean(np.abs(pred - change[1:]))
    >>> persistence = np.mean(np.abs(change[1:]))  # forecasting no change
    >>> print(f"MAE {mae:.3f}, persistence {persistence:.3f}")
    MAE 0.620, persistence 0.631
    >>> rnn.n_steps, rnn.n_updates, rnn.n_skipped
    (1266, 1266, 0)
    """

    def __init__(
        self,
        cell: str = "lstm",
        input_size: int = 1,
        hidden_size: int = 32,
        num_layers: int = 1,
        output_size: int = 1,
        k1: int = 1,
        k2: int = 16,
        optimizer: str = "adam",
        lr: float = 1e-3,
        clip_norm: float | None = 1.0,
        loss: str = "squared",
        dtype: str = "float32",
        device: str = "cpu",
        seed: int | None = None,
        momentum: float = 0.9,
        betas: tuple = (0.9, 0.999),
        eps: float = 1e-8,
        alpha: float = 0.99,
        weight_decay: float | None = None,
        huber_delta: float = 1.0,
        recompute: bool = False,
        approx_activations: bool | None = None,
    ):
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.output_size = output_size
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip_norm = clip_norm
        self.loss = loss
        self.dtype = dtype
        self.device = device
        self.seed = seed
        self.momentum = momentum
        self.betas = betas
        self.eps = eps
        self.alpha = alpha
        self.weight_decay = weight_decay
        self.huber_delta = huber_delta
        self.recompute = recompute
        self.approx_activations = approx_activations

        check_choice("cell", cell, L.CELL_CODES)
        check_choice("optimizer", optimizer, L.OPT_CODES)
        check_choice("loss", loss, L.LOSS_CODES)
        dtype_name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
        self._np_dtype = np.dtype(_DTYPES[check_choice("dtype", dtype_name, _DTYPES)])
        if device == "cuda":
            raise ValueError(
                "OnlineRNN runs on the CPU only (device='cpu'): a single model is a sequential chain of small "
                "steps, which a GPU runs no faster than one CPU core. For many models use "
                "ModelBank(device='cuda'), which runs one GPU thread per model."
            )
        if device != "cpu":
            raise ValueError(f"device must be 'cpu', got {device!r}")
        check_seed(seed)
        if not isinstance(recompute, bool):
            raise ValueError(f"recompute must be a bool, got {recompute!r}")
        if approx_activations is not None and not isinstance(approx_activations, bool):
            raise ValueError(f"approx_activations must be a bool or None, got {approx_activations!r}")
        if not (isinstance(betas, tuple | list) and len(betas) == 2):
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")

        self._shape = NetworkShape(
            cell=cell,
            input_size=check_integer("input_size", input_size),
            hidden_size=check_integer("hidden_size", hidden_size),
            num_layers=check_integer("num_layers", num_layers),
            output_size=check_integer("output_size", output_size),
            k1=check_integer("k1", k1),
            k2=check_integer("k2", k2),
            loss=loss,
            optimizer=optimizer,
            approx=(self._np_dtype == np.float32) if approx_activations is None else approx_activations,
            recompute=recompute,
        )
        if weight_decay is None:
            weight_decay = 0.01 if optimizer == "adamw" else 0.0
        hp = np.zeros(L.N_HP)
        positive = dict(low=0.0, low_open=True)
        for name, at, value, bounds in (
            ("lr", L.HP_LR, lr, positive),
            ("momentum", L.HP_MOMENTUM, momentum, dict(low=0.0, high=1.0)),
            ("betas[0]", L.HP_BETA1, betas[0], dict(low=0.0, high=1.0)),
            ("betas[1]", L.HP_BETA2, betas[1], dict(low=0.0, high=1.0)),
            ("eps", L.HP_EPS, eps, positive),
            ("alpha", L.HP_ALPHA, alpha, dict(low=0.0, high=1.0)),
            ("weight_decay", L.HP_WEIGHT_DECAY, weight_decay, dict(low=0.0)),
            ("clip_norm", L.HP_CLIP, clip_norm, positive),
            ("huber_delta", L.HP_HUBER_DELTA, huber_delta, positive),
        ):
            if value is not None:  # (clip_norm None: no clipping, stored as 0)
                hp[at] = self._stored_hyperparameter(name, value, bounds)

        self._check_updates_can_apply(hp)
        self._allocate(self._shape)
        hp_at = self._lay[L.L_HP]
        self._buf[hp_at : hp_at + L.N_HP] = hp
        init_parameters(self._shape, self._views(), np.random.default_rng(seed))

    def _stored_hyperparameter(self, name: str, value, bounds: dict) -> float:
        """``value`` checked within ``bounds``, as given and as stored in the
        model's dtype (in float32, betas of 0.99999999 round to 1 and an eps
        of 1e-46 to 0: the bias correction or the step would divide by 0)."""
        value = check_real(name, value, **bounds)
        with np.errstate(over="ignore"):
            stored = float(self._np_dtype.type(value))
        try:
            check_real(name, stored, **bounds)
        except ValueError as error:
            raise ValueError(f"{error} once stored in {self._np_dtype.name}, the model's dtype "
                             f"(given {value!r})") from None
        return value

    def _check_updates_can_apply(self, hp: np.ndarray) -> None:
        """Refuse hyperparameters with which no update could ever be applied:
        Adam's first step ``lr / (1 - betas[0])``, AdamW's decay ``lr *
        weight_decay`` or RMSprop's first step ``lr / sqrt(1 - alpha)`` (from
        zero moments) beyond the dtype's largest float (every update would
        overflow and be rolled back, and the next be a first one again)."""
        dtype = self._np_dtype
        big = float(np.finfo(dtype).max)
        with np.errstate(over="ignore"):
            lr, b1, wd, alpha = (float(dtype.type(hp[i])) for i in (L.HP_LR, L.HP_BETA1, L.HP_WEIGHT_DECAY,
                                                                    L.HP_ALPHA))
        if self.optimizer == "rmsprop" and lr / math.sqrt(1.0 - alpha) > big:
            raise ValueError(f"lr={self.lr!r} is too large for {dtype.name} with alpha={self.alpha!r}: rmsprop's "
                             f"first step, about lr / sqrt(1 - alpha) = {lr / math.sqrt(1.0 - alpha):.3g} for every "
                             f"gradient entry beyond eps, is beyond ±{big:.3g}, so every update would overflow (and, "
                             "rolled back, leave the moments at zero for the next)")
        if self.optimizer not in ("adam", "adamw"):
            return
        if lr / (1.0 - b1) > big:
            raise ValueError(f"lr={self.lr!r} is too large for {dtype.name} with betas[0]={self.betas[0]!r}: "
                             f"{self.optimizer}'s first step, lr / (1 - betas[0]) = {lr / (1.0 - b1):.3g}, is "
                             f"beyond ±{big:.3g}, so every update would overflow")
        if self.optimizer == "adamw" and lr * wd > big:
            raise ValueError(f"lr={self.lr!r} is too large for {dtype.name} with weight_decay={wd!r}: adamw's "
                             f"decay, lr * weight_decay = {lr * wd:.3g}, is beyond ±{big:.3g}, so every update "
                             "would overflow")

    def _allocate(self, shape: NetworkShape) -> None:
        self._install(shape, *self._allocation(shape))

    def _allocation(self, shape: NetworkShape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """New ``(lay, ctr, buf)`` arrays for ``shape``, zeroed; nothing of
        the model changes (so a failure here, such as a ``MemoryError``,
        leaves it whole)."""
        lay = build_layout(shape)
        return lay, np.zeros(L.N_CTR, dtype=np.int64), aligned_zeros(lay[L.L_BUF], self._np_dtype)

    def _install(self, shape: NetworkShape, lay: np.ndarray, ctr: np.ndarray, buf: np.ndarray) -> None:
        """Make ``shape`` and its arrays the model's, all at once."""
        # (attributes in the order of the earlier versions: a saved model's state lists them so)
        self._shape = shape
        self._in_shape, self._out_shape = (shape.input_size,), (shape.output_size,)
        self._lay, self._ctr, self._buf = lay, ctr, buf

    def _region_views(self, region: int) -> dict[str, np.ndarray]:
        """A parameter-shaped region of ``buf`` (parameters, gradient, moments) by name."""
        return _region_views(self._shape, self._lay, self._buf, region)

    def resize(self, input_size: int | None = None, output_size: int | None = None) -> None:
        """Grow the input or the output layer in place, for features or classes
        that appear in a stream.

        Existing weights, optimizer moments, the hidden state and the counters
        are kept; the new input columns and output rows start at zero, so the
        outputs that existed are unchanged until the next update. The TBPTT
        window restarts.

        All or nothing: the grown model is built beside the old one and takes
        its place only once complete, so a size that cannot be allocated
        raises (``MemoryError``) and leaves the model as it was.
        """
        old = self._shape
        input_size = old.input_size if input_size is None else check_integer("input_size", input_size)
        output_size = old.output_size if output_size is None else check_integer("output_size", output_size)
        if input_size < old.input_size or output_size < old.output_size:
            raise ValueError(
                f"resize only grows the network: input_size {old.input_size} -> {input_size}, "
                f"output_size {old.output_size} -> {output_size}"
            )
        if (input_size, output_size) == (old.input_size, old.output_size):
            return
        shape = dataclasses.replace(old, input_size=input_size, output_size=output_size)
        try:
            lay, ctr, buf = self._allocation(shape)
        except (OverflowError, ValueError):  # sizes beyond int64 offsets or numpy's array limit
            raise MemoryError(f"cannot grow the network to input_size {input_size}, output_size {output_size}: "
                              "its buffer would exceed the addressable memory") from None
        for region in (None, L.L_M, L.L_V):
            views = self._region_views(region)
            for name, new in _region_views(shape, lay, buf, region).items():
                v = views[name]
                new[tuple(slice(0, n) for n in v.shape)] = v
        old_lay, old_buf, n_hp = self._lay, self._buf, L.N_HP
        buf[lay[L.L_HP] : lay[L.L_HP] + n_hp] = old_buf[old_lay[L.L_HP] : old_lay[L.L_HP] + n_hp]
        n_state = 2 * old.num_layers * old_lay[L.L_HSTRIDE]
        buf[lay[L.L_STATE] : lay[L.L_STATE] + n_state] = old_buf[old_lay[L.L_STATE] : old_lay[L.L_STATE] + n_state]
        for c in (L.C_STEPS, L.C_UPDATES, L.C_SKIPPED, L.C_RESETS, L.C_OVERFLOWS):
            ctr[c] = self._ctr[c]
        self._install(shape, lay, ctr, buf)
        self.input_size, self.output_size = input_size, output_size

    # ------------------------------------------------------------- helpers

    def _views(self) -> dict[str, np.ndarray]:
        return self._region_views(None)

    def _matrix(self, a, size, name) -> np.ndarray:
        """``a`` as a C-contiguous (n, size) array of the model dtype (the
        masked entries of a masked array as NaN: missing, not learned)."""
        a = unmasked(a)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        if a.ndim == 1 and size == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] != size:
            raise ValueError(f"{name} must have shape (n, {size}), got {a.shape}")
        return np.ascontiguousarray(a, dtype=self._np_dtype)

    def _vector(self, a, size, name) -> np.ndarray:
        """``a`` as a C-contiguous (size,) array of the model dtype."""
        if type(a) is np.ndarray and a.dtype == self._np_dtype and a.shape == (size,) and a.flags.c_contiguous:
            return a
        a = unmasked(a)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        if a.shape != (size,) and not (size == 1 and a.shape == ()):
            raise ValueError(f"{name} must have shape ({size},), got {a.shape}")
        return np.ascontiguousarray(a, dtype=self._np_dtype).reshape(size)

    # ------------------------------------------------------------ learning

    def predict(self, x) -> np.ndarray:
        """The prediction for ``x`` (shape ``(input_size,)``) from the carried
        state; changes no state. NaN if ``x`` is not finite."""
        # the common case inline: a C-contiguous vector of the model dtype
        if type(x) is not np.ndarray or x.dtype is not self._np_dtype or x.shape != self._in_shape:
            x = self._vector(x, self._shape.input_size, "x")
        elif not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        out = np.empty(self._out_shape, self._np_dtype)
        _predict_one(self._lay, self._buf, x, out)
        return out

    def predict_many(self, X) -> np.ndarray:
        """Predictions for the rows of ``X`` run in order from the carried
        state, shape ``(n, output_size)``; the carried state is not changed."""
        X = self._matrix(X, self._shape.input_size, "X")
        out = np.empty((X.shape[0], self._shape.output_size), dtype=self._np_dtype)
        K.predict_many(self._lay, self._buf, X, out)
        return out

    def predict_each(self, X) -> np.ndarray:
        """For each row of ``X`` independently, the prediction of one step
        from the carried state (what ``predict`` gives row by row), shape
        ``(n, output_size)``; changes no state."""
        X = self._matrix(X, self._shape.input_size, "X")
        out = np.empty((X.shape[0], self._shape.output_size), dtype=self._np_dtype)
        K.predict_each(self._lay, self._buf, X, out)
        return out

    def forecast(self, U, feedback=()) -> np.ndarray:
        """Run the rows of ``U`` from the carried state without changing it,
        feeding the first output back into the inputs: for each ``(column,
        lag)`` in ``feedback``, row ``k >= lag`` reads the output of row
        ``k - lag`` in that column (earlier rows keep the values given, the
        known history). Returns the outputs, shape ``(len(U), output_size)``.
        """
        U = np.array(self._matrix(U, self._shape.input_size, "U"))
        fb = self._feedback_pairs(feedback)
        out = np.empty((U.shape[0], self._shape.output_size), dtype=self._np_dtype)
        K.forecast_recursive(self._lay, self._buf, U, fb, out)
        return out

    def _forecast_own(self, U: np.ndarray, feedback: np.ndarray) -> np.ndarray:
        """:meth:`forecast` for the estimators' own inputs, checked where
        they are built: ``U`` a fresh C-contiguous array of the model's dtype
        and width (overwritten), ``feedback`` int64 pairs within it."""
        out = np.empty((U.shape[0], self._shape.output_size), dtype=self._np_dtype)
        K.forecast_recursive(self._lay, self._buf, U, feedback, out)
        return out

    def _feedback_pairs(self, feedback) -> np.ndarray:
        """``feedback`` as an int64 ``(n, 2)`` array of ``(column, lag)``
        pairs, each checked: integers (not bools, not floats that would be
        truncated), ``0 <= column < input_size``, ``lag >= 1``."""
        n_in = self._shape.input_size
        if type(feedback) is np.ndarray and feedback.dtype == np.int64 and feedback.ndim == 2 \
                and feedback.shape[1] == 2 and feedback.flags.c_contiguous:  # the forecasters' own: checked at once
            if ((feedback[:, 0] >= 0) & (feedback[:, 0] < n_in) & (feedback[:, 1] >= 1)).all():
                return feedback
        try:
            pairs = [tuple(pair) for pair in feedback]
        except TypeError:
            raise ValueError(f"feedback must be (column, lag) pairs, got {feedback!r}") from None
        n_in = self._shape.input_size
        for pair in pairs:
            if not (len(pair) == 2 and all(is_integer(v) for v in pair)
                    and 0 <= pair[0] < n_in and 1 <= pair[1] <= np.iinfo(np.int64).max):
                raise ValueError(f"feedback must be (column, lag) pairs of integers with 0 <= column < input_size "
                                 f"({n_in}) and lag >= 1, got {pair!r}")
        return np.array(pairs, dtype=np.int64).reshape(-1, 2)

    def learn(self, x, y) -> np.ndarray:
        """Learn from one sample; returns the prediction made before the update."""
        if type(x) is not np.ndarray or x.dtype is not self._np_dtype or x.shape != self._in_shape:
            x = self._vector(x, self._shape.input_size, "x")
        elif not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        if type(y) is not np.ndarray or y.dtype is not self._np_dtype or y.shape != self._out_shape:
            y = self._vector(y, self._shape.output_size, "y")
        elif not y.flags.c_contiguous:
            y = np.ascontiguousarray(y)
        out = np.empty(self._out_shape, self._np_dtype)
        _learn_one(self._lay, self._ctr, self._buf, x, y, out)
        return out

    def learn_many(self, X, Y) -> np.ndarray:
        """Learn from the rows of ``X`` and ``Y`` in order, in one kernel call;
        returns the prequential predictions, bit-identical to ``learn`` in a loop."""
        X = self._matrix(X, self._shape.input_size, "X")
        Y = self._matrix(Y, self._shape.output_size, "Y")
        if X.shape[0] != Y.shape[0]:
            raise ValueError(f"X and Y must have the same number of rows, got {X.shape[0]} and {Y.shape[0]}")
        out = np.empty((X.shape[0], self._shape.output_size), dtype=self._np_dtype)
        K.learn_many(self._lay, self._ctr, self._buf, X, Y, out)
        return out

    def gradient(self, X, Y, loss_steps: int | None = None) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and gradient of a sequence run from the carried state.

        The loss is the mean loss of the last ``loss_steps`` rows (default
        ``min(k1, len(X))``) of ``X``, ``Y`` (at most ``k2`` rows), the
        gradient that of the parameters, by name, as an update would compute
        it. Changes no weights, state or counters. A row that is not finite in
        the model's dtype raises ``ValueError`` (learning skips such rows).
        """
        X = self._matrix(X, self._shape.input_size, "X")
        Y = self._matrix(Y, self._shape.output_size, "Y")
        n = X.shape[0]
        if not 1 <= n <= self._shape.k2 or Y.shape[0] != n:
            raise ValueError(f"X and Y must have the same number of rows, between 1 and k2={self._shape.k2}")
        for name, a in (("X", X), ("Y", Y)):
            bad = ~np.isfinite(a).all(axis=1)
            if bad.any():  # learning skips such rows; a loss over them has no meaning
                raise ValueError(f"{name} row {int(np.argmax(bad))} is not finite in {self._np_dtype.name} "
                                 f"(a missing value, an infinity or beyond ±{np.finfo(self._np_dtype).max:.3g}); "
                                 "gradient needs finite rows")
        loss_steps = min(self._shape.k1, n) if loss_steps is None else loss_steps
        if not is_integer(loss_steps) or not 1 <= loss_steps <= n:
            raise ValueError(f"loss_steps must be an integer between 1 and {n}, got {loss_steps!r}")
        loss = K.sequence_gradient(self._lay, self._buf, X, Y, int(loss_steps))
        return float(loss), {name: np.array(g, order="C") for name, g in self._region_views(L.L_GRAD).items()}

    def reset_state(self) -> None:
        """Zero the carried hidden state and forget the TBPTT window."""
        K.reset_window(self._lay, self._ctr, self._buf)

    # ------------------------------------------------------------- weights

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters under PyTorch's names, shapes and gate
        orders (``torch.nn.RNN/GRU/LSTM`` then ``torch.nn.Linear`` as ``head``)."""
        return {name: np.array(v, order="C") for name, v in self._views().items()}

    def load_state_dict(self, state_dict) -> None:
        """Set the parameters from a ``state_dict`` of arrays (NumPy or torch
        tensors) with exactly the names and shapes of :meth:`state_dict`.
        Optimizer moments and the hidden state are kept."""
        views = self._views()
        missing = sorted(set(views) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(views))
        if missing or unexpected:
            raise ValueError(f"state_dict keys do not match: missing {missing}, unexpected {unexpected}")
        values = {}
        for name, view in views.items():
            v = state_dict[name]
            v = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
            if v.shape != view.shape:
                raise ValueError(f"{name} must have shape {view.shape}, got {v.shape}")
            if v.dtype.kind not in "biuf" or not np.all(np.isfinite(v)):
                raise ValueError(f"{name} must hold finite real numbers")
            with np.errstate(over="ignore"):
                cast = v.astype(self._np_dtype)
            if not np.all(np.isfinite(cast)):
                raise ValueError(f"{name} holds values beyond the range of {self._np_dtype.name} "
                                 f"(±{np.finfo(self._np_dtype).max:.3g}), the model's dtype")
            values[name] = cast
        for name, v in values.items():
            views[name][...] = v

    # ----------------------------------------------------------- read-outs

    @property
    def parameter_names(self) -> list[str]:
        return parameter_names(self._shape)

    @property
    def n_params(self) -> int:
        """Number of trainable parameters (as PyTorch counts them)."""
        return int(sum(v.size for v in self._views().values()))

    @property
    def hidden_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the carried ``(h, c)``, each ``(num_layers, hidden_size)``
        (``c`` is zero except for LSTM)."""
        s = self._shape
        hs = self._lay[L.L_HSTRIDE]
        st = self._buf[self._lay[L.L_STATE] : self._lay[L.L_STATE] + 2 * s.num_layers * hs]
        st = st.reshape(s.num_layers, 2, hs)[:, :, : s.hidden_size]
        return np.array(st[:, 0]), np.array(st[:, 1])

    @property
    def n_steps(self) -> int:
        """Samples learned from (a sample with a non-finite input is not)."""
        return int(self._ctr[L.C_STEPS])

    @property
    def n_updates(self) -> int:
        """Weight updates applied."""
        return int(self._ctr[L.C_UPDATES])

    @property
    def n_skipped(self) -> int:
        """Samples and updates skipped under the non-finite policy."""
        return int(self._ctr[L.C_SKIPPED])

    @property
    def n_overflows(self) -> int:
        """Updates rolled back because they would have written a non-finite
        parameter or optimizer moment (an overflow, from a learning rate or
        gradient far too large); each is also counted in :attr:`n_skipped`.
        The weights stay those before the update."""
        return int(self._ctr[L.C_OVERFLOWS])

    @property
    def n_resets(self) -> int:
        """Times the hidden state went non-finite and was reset."""
        return int(self._ctr[L.C_RESETS])

    def __getstate__(self) -> dict:
        # the scratch end of the buffer is not model state: leaving it out
        # makes pickles of equal models equal, whatever was predicted since
        state = dict(self.__dict__)
        state["_buf"] = self._buf[: self._lay[L.L_PERSIST]].copy()
        return state

    def __copy__(self) -> OnlineRNN:
        """An independent copy (a shallow one would share the counters, and
        not the weights and window they index)."""
        return copy.deepcopy(self)

    def __setstate__(self, state: dict) -> None:
        persistent = state["_buf"]
        state["_buf"] = aligned_zeros(state["_lay"][L.L_BUF], persistent.dtype)
        state["_buf"][: len(persistent)] = persistent
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (
            f"OnlineRNN(cell={self.cell!r}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}, output_size={self.output_size}, k1={self.k1}, k2={self.k2}, "
            f"optimizer={self.optimizer!r}, lr={self.lr}, dtype={self.dtype!r})"
        )
