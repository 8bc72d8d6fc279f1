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
    """The threading layer Numba's parallel kernels run on (found by running one)."""
    import numba
    import numpy as np

    from ..bank import ModelBank

    ModelBank(hidden_size=2, seed=0).predict_many(["probe"], np.zeros((1, 1)))  # a parallel kernel
    try:
        return f"{numba.threading_layer()} ({numba.get_num_threads()} threads)"
    except ValueError as error:
        return f"unknown ({error})"


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
