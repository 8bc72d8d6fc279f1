"""The kernels' memory intrinsics (:mod:`streamrnn.kernels._memory`):
``copy_into`` copies as a loop of assignments would, and checks its source's
length under bounds checking; ``unowned`` views read and write the array's
own memory without taking references."""

import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import numpy as np
import pytest
from numba import njit

from streamrnn.kernels._memory import copy_into, unowned

ROOT = Path(__file__).resolve().parents[1]


@njit
def copy_slices(dst, src, lo, n, at):
    """``dst[at:at + n] = src[lo:lo + n]`` by ``copy_into`` on views."""
    copy_into(dst[at : at + n], src[lo : lo + n])


@njit
def sum_and_mark(a, lo, hi):
    """Through an unowned view: the sum of ``a[lo:hi]``, then ``a[lo] = -1``."""
    v = unowned(a)
    s = v[lo:hi].sum()
    w = v[lo:hi]
    w[0] = -1.0
    return s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copy_into_copies_the_values_of_a_loop_of_assignments(dtype):
    rng = np.random.default_rng(0)
    src = rng.normal(size=301).astype(dtype)
    src[7] = np.nan
    src[9] = -0.0
    for lo, n, at in [(0, 301, 0), (3, 128, 17), (7, 1, 0), (5, 0, 2), (250, 51, 249)]:
        dst = rng.normal(size=300 + 1).astype(dtype)
        expected = dst.copy()
        for k in range(n):  # the reference: one assignment at a time
            expected[at + k] = src[lo + k]
        copy_slices(dst, src, lo, n, at)
        assert dst.tobytes() == expected.tobytes()


def test_copy_into_refuses_what_is_not_two_contiguous_vectors_of_one_dtype():
    @njit
    def copy(dst, src):
        copy_into(dst, src)

    with pytest.raises(Exception, match="copy_into"):
        copy(np.zeros(4), np.zeros(4, np.float32))
    with pytest.raises(Exception, match="copy_into"):
        copy(np.zeros(4), np.zeros(8)[::2])


def test_copy_into_raises_on_a_short_source_under_bounds_checking(tmp_path):
    code = """
        import numpy as np
        from numba import njit
        from streamrnn.kernels._memory import copy_into

        @njit
        def copy(dst, src):
            copy_into(dst, src)

        dst = np.zeros(5)
        copy(dst, np.arange(5.0))
        assert dst.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        try:
            copy(dst, np.arange(3.0))
        except IndexError as error:
            print("IndexError", error)
    """
    environ = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(tmp_path), NUMBA_BOUNDSCHECK="1")
    done = subprocess.run([sys.executable, "-c", dedent(code)], env=environ, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "IndexError copy_into: the source is shorter" in done.stdout


def test_an_unowned_view_reads_and_writes_the_arrays_memory():
    a = np.arange(10.0)
    before = sys.getrefcount(a)
    assert sum_and_mark(a, 2, 6) == 2.0 + 3.0 + 4.0 + 5.0
    assert a[2] == -1.0 and a[3] == 3.0
    assert sys.getrefcount(a) == before
