"""Memory layout of a stack of recurrent cells plus a linear head.

A model is one flat float buffer (parameters first, then optimizer moments,
carried state, the compact TBPTT window, hyperparameters, then scratch) and an
integer array of offsets into it (see :mod:`streamrnn.kernels.layout`).
Sub-arrays start on multiples of 16 elements. This module builds the layout,
initialises parameters like PyTorch does, and maps them to and from
PyTorch's ``state_dict`` names and shapes (``torch.nn.RNN/GRU/LSTM`` with a
``torch.nn.Linear`` head named ``head``), as views, never copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels import layout as L

ALIGN = 16


def _pad(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


BYTE_ALIGN = 64


def aligned_zeros(shape, dtype) -> np.ndarray:
    """Zeros whose first element sits on a 64-byte boundary.

    numpy puts large arrays 16 bytes past a 64-byte boundary; the kernels'
    vector loads then straddle cache lines, and the LSTM forward step runs
    20-25 % slower (measured on the project's machine). With every
    sub-array at a multiple of 16 elements (:data:`ALIGN`) and buffer lengths
    padded likewise, each sub-array of each model is then 64-byte aligned.

    >>> a = aligned_zeros((3, 32), np.float32)
    >>> a.ctypes.data % 64, a.shape, a.flags.c_contiguous, float(a.sum())
    (0, (3, 32), True, 0.0)
    """
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.zeros(n * dtype.itemsize + BYTE_ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % BYTE_ALIGN
    return raw[start : start + n * dtype.itemsize].view(dtype).reshape(shape)


@dataclass(frozen=True)
class NetworkShape:
    """Sizes and codes that fix a model's memory layout."""

    cell: str
    input_size: int
    hidden_size: int
    num_layers: int
    output_size: int
    k1: int
    k2: int
    loss: str
    optimizer: str
    approx: bool
    recompute: bool

    @property
    def gates(self) -> int:
        return L.GATES[self.cell]

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.hidden_size


class _Allocator:
    def __init__(self):
        self.size = 0

    def take(self, n: int) -> int:
        start = self.size
        self.size += _pad(n)
        return start


def build_layout(shape: NetworkShape) -> np.ndarray:
    """The int64 ``lay`` array of a model; ``lay[L_BUF]`` is its buffer length."""
    H, O, G = shape.hidden_size, shape.output_size, shape.gates
    GH = G * H
    n_in_max = max(shape.input_size, H)
    lay = np.zeros(L.L_PARAMS0 + 4 * shape.num_layers, dtype=np.int64)
    lay[L.L_CELL] = L.CELL_CODES[shape.cell]
    lay[L.L_LAYERS] = shape.num_layers
    lay[L.L_INPUT] = shape.input_size
    lay[L.L_HIDDEN] = H
    lay[L.L_OUTPUT] = O
    lay[L.L_GATES] = G
    lay[L.L_K1] = shape.k1
    lay[L.L_K2] = shape.k2
    lay[L.L_LOSS] = L.LOSS_CODES[shape.loss]
    lay[L.L_OPT] = L.OPT_CODES[shape.optimizer]
    lay[L.L_APPROX] = int(shape.approx)
    lay[L.L_RECOMPUTE] = int(shape.recompute)

    a = _Allocator()
    for layer in range(shape.num_layers):
        p = L.L_PARAMS0 + 4 * layer
        lay[p] = a.take(shape.layer_input_size(layer) * GH)
        lay[p + 1] = a.take(H * GH)
        lay[p + 2] = a.take(GH)
        lay[p + 3] = a.take(GH)
    lay[L.L_HEAD_W] = a.take(H * O)
    lay[L.L_HEAD_B] = a.take(O)
    n_param = a.size
    lay[L.L_NPARAM] = n_param
    lay[L.L_M] = a.take(n_param)
    # SGD (momentum) and RMSprop (square average) keep one moment, Adam two
    two_moments = shape.optimizer not in ("sgd", "rmsprop")
    lay[L.L_V] = a.take(n_param) if two_moments else lay[L.L_M]

    hs = _pad(H)
    lay[L.L_HSTRIDE] = hs
    lay[L.L_STATE] = a.take(2 * shape.num_layers * hs)
    lay[L.L_WSTATE] = a.take(2 * shape.num_layers * hs)

    # a compact row of the window: input, target and prediction, then per
    # layer the gate activations (and the GRU's W_hn h + b_hn)
    c = _Allocator()
    lay[L.L_C_X] = 0
    lay[L.L_C_Y] = shape.input_size
    lay[L.L_C_YHAT] = shape.input_size + O
    c.take(shape.input_size + 2 * O)
    lay[L.L_C_LAYER0] = c.size
    c.size = 0
    lay[L.L_C_ACT] = c.take(GH)
    lay[L.L_C_AUX] = c.take(H) if shape.cell == "gru" else c.size
    lay[L.L_CROW_LAYER] = c.size
    lay[L.L_CROW] = lay[L.L_C_LAYER0] + shape.num_layers * c.size

    # a full row: every value of a step, and the gradients of its pre-activations
    r = _Allocator()
    for slot, n in (
        (L.L_R_XIN, n_in_max),
        (L.L_R_HP, H),
        (L.L_R_CP, H),
        (L.L_R_ACT, GH),
        (L.L_R_AUX, H),
        (L.L_R_HN, H),
        (L.L_R_CN, H),
        (L.L_R_DAX, GH),
        (L.L_R_DAH, GH),
    ):
        lay[slot] = r.take(n)
    lay[L.L_ROW_LAYER] = r.size
    r.size *= shape.num_layers
    lay[L.L_R_Y] = r.take(O)
    lay[L.L_R_YHAT] = r.take(O)
    lay[L.L_ROW] = r.size

    lay[L.L_CACHE] = a.take(shape.k2 * int(lay[L.L_CROW]))
    lay[L.L_HP] = a.take(L.N_HP)
    # scratch from here on: rewritten before it is read, so not model state
    lay[L.L_PERSIST] = a.size
    lay[L.L_GRAD] = a.take(n_param)
    lay[L.L_RCACHE] = a.take(shape.k2 * r.size)
    lay[L.L_PRED] = a.take(r.size)
    lay[L.L_PSTATE] = a.take(2 * shape.num_layers * hs)
    for slot, n in (
        (L.L_S_AX, GH),
        (L.L_S_AH, GH),
        (L.L_S_DIN, n_in_max),
        (L.L_S_GH, H),
        (L.L_S_DH, shape.num_layers * hs),
        (L.L_S_DC, shape.num_layers * hs),
    ):
        lay[slot] = a.take(n)
    lay[L.L_BUF] = a.size
    return lay


def window_span(lay: np.ndarray) -> tuple[int, int]:
    """Where a model's TBPTT window lies in its buffer, ``(start, end)``: the
    state before its oldest step, then its compact rows."""
    return int(lay[L.L_WSTATE]), int(lay[L.L_CACHE] + lay[L.L_K2] * lay[L.L_CROW])


def counters_problem(lay: np.ndarray, ctr: np.ndarray) -> str | None:
    """What makes the counters ``ctr`` (one model's, or one row per model)
    unfit for the kernels of layout ``lay`` (an edited snapshot or file): a
    TBPTT window position, fill or schedule out of its range, which a kernel
    would index by, or a negative count; None if nothing does."""
    ctr = np.asarray(ctr).reshape(-1, L.N_CTR)
    k1, k2 = int(lay[L.L_K1]), int(lay[L.L_K2])
    ranges = (
        (L.C_POS, "window position", 0, k2 - 1), (L.C_FILL, "window fill", 0, k2),
        (L.C_SINCE, "steps since the last update", 0, k1 - 1), (L.C_STEPS, "steps", 0, None),
        (L.C_UPDATES, "updates", 0, None), (L.C_SKIPPED, "skipped", 0, None), (L.C_RESETS, "resets", 0, None),
        (L.C_OVERFLOWS, "overflows", 0, None),
    )
    for column, what, low, high in ranges:
        values = ctr[:, column]
        bad = np.flatnonzero((values < low) | (values > (high if high is not None else np.inf)))
        if bad.size:
            bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
            return f"counter '{what}' of model {int(bad[0])} is {int(values[bad[0]])}, not in {bounds}"
    return None

def parameter_names(shape: NetworkShape) -> list[str]:
    """PyTorch ``state_dict`` names, in PyTorch's order."""
    names = []
    for layer in range(shape.num_layers):
        names += [f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_ih_l{layer}", f"bias_hh_l{layer}"]
    return names + ["head.weight", "head.bias"]


def parameter_views(shape: NetworkShape, lay: np.ndarray, params: np.ndarray) -> dict[str, np.ndarray]:
    """Views of ``params`` (the start of a buffer) in PyTorch's names and shapes.

    Writing to a view writes the parameter; weight matrices are transposed
    views of the stored ``(in, G*H)`` blocks.
    """
    H, O = shape.hidden_size, shape.output_size
    GH = shape.gates * H
    views = {}

    def block(offset, rows, cols):
        return params[offset : offset + rows * cols].reshape(rows, cols)

    for layer in range(shape.num_layers):
        p = L.L_PARAMS0 + 4 * layer
        n_in = shape.layer_input_size(layer)
        views[f"weight_ih_l{layer}"] = block(lay[p], n_in, GH).T
        views[f"weight_hh_l{layer}"] = block(lay[p + 1], H, GH).T
        views[f"bias_ih_l{layer}"] = params[lay[p + 2] : lay[p + 2] + GH]
        views[f"bias_hh_l{layer}"] = params[lay[p + 3] : lay[p + 3] + GH]
    views["head.weight"] = block(lay[L.L_HEAD_W], O, H)
    views["head.bias"] = params[lay[L.L_HEAD_B] : lay[L.L_HEAD_B] + O]
    return views


def init_parameters(shape: NetworkShape, views: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """PyTorch's default initialisation: every recurrent weight and bias from
    U(-1/sqrt(H), 1/sqrt(H)); the head's weight and bias from
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = H. Drawn in float64 in
    ``parameter_names`` order, so a seed gives the same model in every dtype."""
    bound = 1.0 / np.sqrt(shape.hidden_size)
    for name in parameter_names(shape):
        view = views[name]
        view[...] = rng.uniform(-bound, bound, size=view.shape)
