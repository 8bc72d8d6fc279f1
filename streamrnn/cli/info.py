"""``streamrnn info``: what the installation has."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import TextIO

PACKAGES = ("streamrnn", "numpy", "numba", "pandas", "river", "numba-cuda", "matplotlib", "tqdm", "torch")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def threading_layer() -> str:
    """The threading layer Numba's parallel kernels will run on, as
    configured (one is picked at the first parallel run: nothing is compiled
    or run here), and their thread count."""
    from numba.core import config

    layer = config.THREADING_LAYER
    chosen = "picked at the first parallel run" if layer == "default" else "set by NUMBA_THREADING_LAYER"
    return f"{layer} ({chosen}; {config.NUMBA_NUM_THREADS} threads)"


def cuda_status() -> str:
    """Whether CUDA kernels can run: numba-cuda installed, and a GPU (or the simulator)."""
    try:
        from numba import cuda
    except ImportError:
        return "unavailable: numba-cuda is not installed (pip install streamrnn[cuda])"
    try:
        if cuda.is_available():
            name = cuda.get_current_device().name
            return f"available: {name.decode() if isinstance(name, bytes) else name}"
    except Exception as error:  # a broken driver: say so instead of failing
        return f"unavailable: {error}"
    return "unavailable: no CUDA GPU or driver found"


def info(stdout: TextIO) -> int:
    rows = [("python", platform.python_version())]
    rows += [(name, _version(name)) for name in PACKAGES]
    rows += [("numba threading layer", threading_layer()), ("cuda", cuda_status())]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}", file=stdout)
    return 0
