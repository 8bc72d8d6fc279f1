"""``streamrnn info``: what the installation has."""

from __future__ import annotations

import importlib.util
import os
import platform
from importlib import metadata
from typing import TextIO

PACKAGES = ("streamrnn", "numpy", "numba", "pandas", "river", "numba-cuda", "matplotlib", "tqdm", "torch")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _numba_setting(name: str, default: str) -> tuple[str, bool]:
    """A Numba setting as Numba will read it: the environment variable
    ``NUMBA_<NAME>``, else a ``.numba_config.yaml`` in the working folder,
    else ``default``; and whether it was set. Read without importing Numba
    (that alone takes most of a second, SciPy with it)."""
    value = os.environ.get(f"NUMBA_{name}")
    if value is not None:
        return value, True
    if os.path.isfile(".numba_config.yaml"):  # rare: let Numba read its own file
        from numba.core import config

        value = str(getattr(config, name if name != "NUM_THREADS" else "NUMBA_NUM_THREADS"))
        return value, value != default
    return default, False


def _default_threads() -> int:
    """Numba's default thread count: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # (not on every platform)
        return max(1, os.cpu_count() or 1)


def threading_layer() -> str:
    """The threading layer Numba's parallel kernels will run on, as
    configured (one is picked at the first parallel run: nothing is compiled
    or run here), and their thread count.

    >>> threading_layer().endswith(" threads)")
    True
    """
    layer, given = _numba_setting("THREADING_LAYER", "default")
    threads, _ = _numba_setting("NUM_THREADS", str(_default_threads()))
    chosen = "set by NUMBA_THREADING_LAYER" if given else "picked at the first parallel run"
    return f"{layer} ({chosen}; {threads} threads)"


def _driver_found() -> bool:
    """Whether an NVIDIA driver is installed: its kernel module's version
    file (Linux) or its library on the loader's path. Cheap: nothing is
    imported or initialised."""
    if os.path.exists("/proc/driver/nvidia/version"):
        return True
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None or ctypes.util.find_library("nvcuda") is not None


def cuda_status(probe: bool = False) -> str:
    """Whether CUDA kernels can run: numba-cuda installed, and a GPU (or the
    simulator).

    Without ``probe`` only what costs nothing is looked at (numba-cuda
    installed, ``NUMBA_ENABLE_CUDASIM``, a driver on this machine), so that
    ``streamrnn info`` starts at once; with it numba-cuda is asked for the
    device (importing Numba and initialising the driver: seconds).

    >>> cuda_status().startswith(("unavailable", "simulator", "driver found"))
    True
    """
    if importlib.util.find_spec("numba_cuda") is None:
        return "unavailable: numba-cuda is not installed (pip install streamrnn[cuda])"
    if not probe:
        if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
            return "simulator (NUMBA_ENABLE_CUDASIM is set; streamrnn info --cuda to check it)"
        if _driver_found():
            return "driver found (streamrnn info --cuda asks numba-cuda for the GPU)"
        return "unavailable: no NVIDIA driver found (streamrnn info --cuda asks numba-cuda)"
    try:
        from numba import cuda
    except ImportError as error:
        return f"unavailable: {error}"
    try:
        if cuda.is_available():
            name = cuda.get_current_device().name
            return f"available: {name.decode() if isinstance(name, bytes) else name}"
    except Exception as error:  # a broken driver: say so instead of failing
        return f"unavailable: {error}"
    return "unavailable: no CUDA GPU or driver found"


def info(stdout: TextIO, probe_cuda: bool = False) -> int:
    """Print the versions, Numba's threading layer and CUDA's status
    (``probe_cuda``: ask numba-cuda for the GPU, see :func:`cuda_status`)."""
    rows = [("python", platform.python_version())]
    rows += [(name, _version(name)) for name in PACKAGES]
    rows += [("numba threading layer", threading_layer()), ("cuda", cuda_status(probe_cuda))]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}", file=stdout)
    return 0
