"""Scalar activations shared by the CPU and CUDA kernels.

The fast variants use a clamped rational approximation of ``tanh`` (the odd
13/6 minimax form used by Eigen), whose absolute error is below 1e-6 in
float32 and float64. It costs a fraction of a nanosecond and vectorises;
libm's ``tanh`` costs ~16 ns. Constants are cast to the argument's type so
that float32 code stays float32.
"""

import math

from numba import njit

from .. import config

_TANH_CLAMP = 7.90531110763549805
_A1 = 4.89352455891786e-03
_A3 = 6.37261928875436e-04
_A5 = 1.48572235717979e-05
_A7 = 5.12229709037114e-08
_A9 = -8.60467152213735e-11
_A11 = 2.00018790482477e-13
_A13 = -2.76076847742355e-16
_B0 = 4.89352518554385e-03
_B2 = 2.26843463243900e-03
_B4 = 1.18534705686654e-04
_B6 = 1.19825839466702e-06


@njit(inline="always", fastmath=config.FASTMATH)
def fast_tanh(x):
    t = type(x)
    c = t(_TANH_CLAMP)
    # compare-and-select, not min/max: on a GPU those become max.f32/min.f32,
    # which return the other operand for a NaN (a NaN state would look finite)
    if x > c:
        x = c
    elif x < -c:
        x = -c
    x2 = x * x
    p = t(_A13)
    p = p * x2 + t(_A11)
    p = p * x2 + t(_A9)
    p = p * x2 + t(_A7)
    p = p * x2 + t(_A5)
    p = p * x2 + t(_A3)
    p = p * x2 + t(_A1)
    p = p * x
    q = t(_B6)
    q = q * x2 + t(_B4)
    q = q * x2 + t(_B2)
    q = q * x2 + t(_B0)
    return p / q


@njit(inline="always", fastmath=config.FASTMATH)
def act_tanh(x, approx):
    if approx:
        return fast_tanh(x)
    return math.tanh(x)


@njit(inline="always", fastmath=config.FASTMATH)
def act_sigmoid(x, approx):
    t = type(x)
    if approx:
        return t(0.5) * fast_tanh(t(0.5) * x) + t(0.5)
    return t(1.0) / (t(1.0) + math.exp(-x))
