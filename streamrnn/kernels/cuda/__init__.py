"""CUDA kernels of the model bank, twins of :mod:`streamrnn.kernels.recurrent`'s
``bank_learn``, ``bank_predict`` and ``bank_forecast`` with the same names
and argument order.

Nothing here imports ``numba.cuda`` until a function is called: the optional
dependency (``pip install "streamrnn[cuda]"``) is looked for then, with an
actionable error when it or a GPU is missing. ``NUMBA_ENABLE_CUDASIM=1``
(set before ``numba.cuda`` is first imported) runs the kernels in Numba's
CUDA simulator, on the CPU, slowly: for tests with tiny shapes.

On the device, a bank's ``buf`` has shape ``(lay[L_BUF], n_models)`` and its
``ctr`` shape ``(N_CTR, n_models)``: the CPU arrays transposed, so that the
threads of a warp, one per model, read neighbouring addresses (see
:mod:`.recurrent`). :class:`DeviceBuffers` keeps them and converts from and
to the CPU's row-per-model arrays.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from ..layout import L_BUF, L_INPUT, L_OUTPUT, N_CTR
from . import cooperative
from .recurrent import THREADS_PER_BLOCK, build

INSTALL_HINT = 'pip install "streamrnn[cuda]"'


def cuda_module():
    """``numba.cuda``, after checking that it is installed and that a GPU (or
    the simulator) is there.

    Raises
    ------
    RuntimeError
        If numba-cuda is not installed, or if no CUDA GPU is found and the
        simulator is not enabled.
    """
    if importlib.util.find_spec("numba_cuda") is None:
        raise RuntimeError(f"device='cuda' needs the numba-cuda package: {INSTALL_HINT}")
    try:
        from numba import cuda
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise RuntimeError(f"device='cuda' needs the numba-cuda package: {INSTALL_HINT} ({e})") from e
    if not cuda.is_available():
        raise RuntimeError(
            "device='cuda': no CUDA GPU found (numba.cuda.is_available() is False; check the NVIDIA driver "
            "and `nvidia-smi`). Use device='cpu', or set NUMBA_ENABLE_CUDASIM=1 before importing numba.cuda "
            "to run the CUDA kernels in Numba's simulator (slow; for tests)."
        )
    return cuda


def is_simulated() -> bool:
    """Whether the CUDA kernels run in Numba's simulator."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def _launch(name: str, n: int, *args) -> None:
    if n == 0:
        return
    threads = min(THREADS_PER_BLOCK, n)
    build()[name][(n + threads - 1) // threads, threads](*args)


def _is_device_array(a) -> bool:
    return hasattr(a, "copy_to_host")  # numba's device arrays, real or simulated


def _to_device(cuda, a):
    """A device array: ``a`` itself if it is one, else a copy of it."""
    if _is_device_array(a):
        return a
    return cuda.to_device(np.ascontiguousarray(a))


def _call(launch, args: tuple, out) -> None:
    """``launch(*args, out)`` on device arrays: host ``args`` are copied to
    the device, a host ``out`` in and back (rows the kernel does not write
    keep their values, as on the CPU)."""
    cuda = cuda_module()
    dev_args = [_to_device(cuda, a) for a in args]
    if _is_device_array(out):
        launch(*dev_args, out)
        return
    out_d = cuda.to_device(out)
    launch(*dev_args, out_d)
    out_d.copy_to_host(out)


def _run(name: str, threads_of: int, args: tuple, out) -> None:
    """Launch ``name`` with ``args`` then ``out``, one thread per element of
    ``args[threads_of]`` (see :func:`_call`)."""
    cuda_module()  # first: the error that says what to install
    n = len(args[threads_of])
    _call(lambda *a: _launch(name, n, *a), args, out)


def _host(a) -> np.ndarray:
    return a.copy_to_host() if _is_device_array(a) else np.asarray(a)


def check_batch(lay, buf, groups, starts, order, X, out, *, ctr=None, Y=None) -> np.ndarray:
    """Check a batch's arrays against the layout before a launch: a GPU
    thread reads wherever an index points, so a wrong shape or index would
    read or write another model's memory, or fault, instead of raising.

    Shapes are checked for host and device arrays; the indices (``groups``
    within the models, ``starts`` rising within ``order``, ``order`` within
    the rows) for host arrays, where that costs no copy from the device.
    ``out`` is ``(n, output_size)``, or ``(n, horizon, output_size)`` for a
    forecast (whose inputs must be as many as its outputs: they are fed back).

    Returns
    -------
    numpy.ndarray
        The layout on the host (a copy when ``lay`` is a device array).

    Raises
    ------
    ValueError
        Naming the first argument that does not fit.
    """
    host_lay = _host(lay)
    n_in, n_out = int(host_lay[L_INPUT]), int(host_lay[L_OUTPUT])
    if buf.ndim != 2 or buf.shape[0] != host_lay[L_BUF]:
        raise ValueError(f"buf must have shape (lay[L_BUF] = {host_lay[L_BUF]}, n_models), model-minor (see "
                         f"DeviceBuffers), got {buf.shape}")
    n_models = buf.shape[1]
    if ctr is not None and tuple(ctr.shape) != (N_CTR, n_models):
        raise ValueError(f"ctr must have shape ({N_CTR}, n_models = {n_models}), got {ctr.shape}")
    for name, a in (("groups", groups), ("starts", starts), ("order", order)):
        if a.ndim != 1 or np.dtype(a.dtype).kind not in "iu":
            raise ValueError(f"{name} must be a 1-D array of integers, got shape {a.shape} and dtype {a.dtype}")
    if len(starts) != len(groups) + 1:
        raise ValueError(f"starts must hold one more element than groups ({len(groups) + 1}), got {len(starts)}")
    n = X.shape[0] if X.ndim else 0
    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(f"X must have shape (n, input_size = {n_in}), got {X.shape}")
    if Y is not None and tuple(Y.shape) != (n, n_out):
        raise ValueError(f"Y must have shape (len(X) = {n}, output_size = {n_out}), got {Y.shape}")
    if out.ndim == 3 and n_in != n_out:
        raise ValueError(f"a forecast feeds its outputs back as inputs: input_size ({n_in}) must equal "
                         f"output_size ({n_out})")
    if out.ndim not in (2, 3) or out.shape[0] != n or out.shape[out.ndim - 1] != n_out:
        raise ValueError(f"out must have shape (len(X) = {n}, output_size = {n_out}) (with the horizon between "
                         f"for a forecast), got {out.shape}")
    if _is_device_array(groups) or _is_device_array(starts) or _is_device_array(order):
        return host_lay
    groups, starts, order = np.asarray(groups), np.asarray(starts), np.asarray(order)
    if len(groups) and (groups.min() < 0 or groups.max() >= n_models):
        raise ValueError(f"groups must index the {n_models} models of buf, got values in "
                         f"[{groups.min()}, {groups.max()}]")
    if starts[0] < 0 or starts[-1] > len(order) or (np.diff(starts) < 0).any():
        raise ValueError(f"starts must rise from 0 or more to at most len(order) = {len(order)}")
    rows = order[starts[0] : starts[-1]]
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"order must index the {n} rows of X, got values in [{rows.min()}, {rows.max()}]")
    return host_lay


def bank_learn(lay, ctr, buf, groups, starts, order, X, Y, out, *, block_per_model: bool = False,
               threads: int | None = None) -> None:
    """``learn_one`` for every row, each on its own model: the CUDA twin of
    :func:`streamrnn.kernels.recurrent.bank_learn`.

    Parameters
    ----------
    lay
        The layout of one model (int64).
    ctr, buf
        Device arrays, model-minor: shapes ``(N_CTR, n_models)`` and
        ``(lay[L_BUF], n_models)``; updated in place.
    groups, starts, order
        ``groups[g]`` is the model of the rows ``order[starts[g]:starts[g + 1]]``,
        in arrival order; ``groups`` should be sorted (coalesced access).
    X, Y
        Inputs and targets, one row per sample.
    out
        Receives the prediction made before each update (host or device array).
    block_per_model
        Run each model on a block of threads with its recurrent weights in
        shared memory (:mod:`.cooperative`: one-layer models with stored
        windows) instead of one thread per model.
    threads
        Threads per block of the block-per-model kernel (default: the gate
        pre-activations' count rounded up to a power of two).
    """
    cuda_module()  # first: the error that says what to install
    if not (_is_device_array(ctr) and _is_device_array(buf)):
        raise ValueError("ctr and buf must be device arrays (model-minor: see DeviceBuffers); the models of host "
                         "arrays would be updated in a copy on the GPU and the copy dropped")
    host_lay = check_batch(lay, buf, groups, starts, order, X, out, ctr=ctr, Y=Y)
    if not block_per_model:
        _run("bank_learn_kernel", 3, (lay, ctr, buf, groups, starts, order, X, Y), out)
        return
    _run_blocks("learn", host_lay, (lay, ctr, buf, groups, starts, order, X, Y), out, threads, buf, groups)


def _run_blocks(kind: str, host_lay: np.ndarray, args: tuple, out, threads: int | None, buf, groups) -> None:
    """Launch the block-per-model kernel ``kind`` (:mod:`.cooperative`) with
    ``args`` (the layout first; ``host_lay``, its host copy, sizes the
    launch) then ``out``: a block per element of ``groups``, shared memory
    for the models of ``buf``."""
    why = cooperative.supports(host_lay, learn=kind == "learn")
    if why is not None:
        raise ValueError(why)
    if threads is None:
        threads = cooperative.threads_for(host_lay)
    if not 1 <= threads <= cooperative.MAX_THREADS:
        raise ValueError(f"threads must lie in 1..{cooperative.MAX_THREADS}, got {threads}")
    shared_bytes = cooperative.shared_elements(host_lay, threads) * buf.dtype.itemsize
    if shared_bytes > cooperative.MAX_SHARED_BYTES:
        raise ValueError(f"the block-per-model kernel would need {shared_bytes} bytes of shared memory per block, "
                         f"over the {cooperative.MAX_SHARED_BYTES} every GPU grants: a smaller model, or "
                         "block_per_model=False")
    n = len(groups)
    if n:
        _call(cooperative.build(buf.dtype, kind)[n, threads, 0, shared_bytes], args, out)


def bank_predict(lay, buf, groups, starts, order, X, out, *, block_per_model: bool = False,
                 threads: int | None = None) -> None:
    """Predictions for every row, the rows of a model run in order from its
    carried state (not changed): the CUDA twin of
    :func:`streamrnn.kernels.recurrent.bank_predict`; arguments as in
    :func:`bank_learn` (the block-per-model kernel runs one-layer models)."""
    cuda_module()  # first: the error that says what to install
    host_lay = check_batch(lay, buf, groups, starts, order, X, out)
    if not block_per_model:
        _run("bank_predict_kernel", 2, (lay, buf, groups, starts, order, X), out)
        return
    _run_blocks("predict", host_lay, (lay, buf, groups, starts, order, X), out, threads, buf, groups)


def bank_forecast(lay, buf, groups, starts, order, X0, out) -> None:
    """For every row ``i``, ``out.shape[1]`` steps of its model from the
    carried state (not changed), each step's outputs fed back as the next
    inputs, starting from ``X0[i]``: the CUDA twin of
    :func:`streamrnn.kernels.recurrent.bank_forecast`; rows grouped by
    model and ``buf`` as in :func:`bank_learn` (one thread per model, its
    rows one after another), ``out`` of shape ``(n, horizon, output_size)``."""
    cuda_module()  # first: the error that says what to install
    check_batch(lay, buf, groups, starts, order, X0, out)
    _run("bank_forecast_kernel", 2, (lay, buf, groups, starts, order, X0), out)


class DeviceBuffers:
    """A bank's model buffers and counters in GPU memory, model-minor.

    Parameters
    ----------
    lay
        The layout of one model.
    buf, ctr
        Host arrays with one row per model, as on the CPU:
        ``(n_models, lay[L_BUF])`` and ``(n_models, N_CTR)``.
    """

    def __init__(self, lay: np.ndarray, buf: np.ndarray, ctr: np.ndarray):
        cuda = cuda_module()
        self.lay = cuda.to_device(np.ascontiguousarray(lay, dtype=np.int64))
        self.buf = cuda.to_device(np.ascontiguousarray(buf.T))
        self.ctr = cuda.to_device(np.ascontiguousarray(ctr.T))
        self.n_elements = int(lay[L_BUF])

    @property
    def capacity(self) -> int:
        return int(self.buf.shape[1])

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` models; the new ones are zero. Both arrays
        are allocated before either is replaced: out of memory, the buffers
        stay as they were (not one grown and the other not)."""
        cuda = cuda_module()
        grown = {name: cuda.device_array((getattr(self, name).shape[0], capacity), dtype=getattr(self, name).dtype)
                 for name in ("buf", "ctr")}
        for name, new in grown.items():
            _launch("copy_columns_kernel", capacity, getattr(self, name), new)
            setattr(self, name, new)

    def put(self, slots, buf: np.ndarray, ctr: np.ndarray) -> None:
        """Write host rows (models) ``buf[j]``, ``ctr[j]`` (``buf`` may hold
        only the first elements of each model) into the models ``slots[j]``."""
        if len(slots) == 0:
            return
        cuda = cuda_module()
        cols = cuda.to_device(np.ascontiguousarray(slots, dtype=np.int64))
        _launch("put_columns_kernel", len(slots), self.buf, cols, cuda.to_device(np.ascontiguousarray(buf.T)))
        _launch("put_columns_kernel", len(slots), self.ctr, cols, cuda.to_device(np.ascontiguousarray(ctr.T)))

    def take(self, slots, n_elements: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Host copies of the models ``slots``: ``buf`` rows (their first
        ``n_elements`` elements, default all) and ``ctr`` rows."""
        cuda = cuda_module()
        n = self.n_elements if n_elements is None else int(n_elements)
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        buf = np.empty((n, len(slots)), dtype=self.buf.dtype)
        ctr = np.empty((self.ctr.shape[0], len(slots)), dtype=self.ctr.dtype)
        if len(slots):
            cols = cuda.to_device(slots)
            for src, host in ((self.buf, buf), (self.ctr, ctr)):
                dst = cuda.device_array(host.shape, dtype=host.dtype)
                _launch("take_columns_kernel", len(slots), src, cols, dst)
                dst.copy_to_host(host)
        return np.ascontiguousarray(buf.T), np.ascontiguousarray(ctr.T)


def host_to_device(buf: np.ndarray):
    """A device copy of host model rows ``(n, lay[L_BUF])``, model-minor."""
    return cuda_module().to_device(np.ascontiguousarray(buf.T))


__all__ = [
    "DeviceBuffers",
    "bank_forecast",
    "bank_learn",
    "bank_predict",
    "build",
    "check_batch",
    "cuda_module",
    "host_to_device",
    "is_simulated",
]
