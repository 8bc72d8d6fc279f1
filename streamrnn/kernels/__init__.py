"""Numba kernels on arrays and scalars; no River, pandas or API imports here."""
