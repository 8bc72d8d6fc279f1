"""``IntKeyLookup`` against the dict it is made from."""

import numpy as np
import pytest

from streamrnn.keys import IntKeyLookup


def _dict_lookup(mapping, keys):
    """The reference: a look-up of each key's Python int in the dict, None if one is missing."""
    try:
        return np.array([mapping[int(k)] for k in keys], dtype=np.int64)
    except KeyError:
        return None


@pytest.mark.parametrize("kind", ["ids", "offset", "holes", "sparse", "negative", "extremes"])
def test_int_key_lookup_finds_what_the_dict_finds(kind):
    rng = np.random.default_rng(["ids", "offset", "holes", "sparse", "negative", "extremes"].index(kind))
    n = 200
    keys = {"ids": np.arange(n), "offset": np.arange(n) + 10**15, "holes": rng.choice(3 * n, n, replace=False),
            "sparse": rng.choice(10**9, n, replace=False), "negative": np.arange(n) - 50,
            "extremes": np.array([-2**63, 2**63 - 1, 0, 1, 5])}[kind]
    mapping = {int(k): int(v) for k, v in zip(keys, rng.permutation(len(keys)))}
    mapping["not an int"] = 10**6  # keys of other kinds are left out
    lookup = IntKeyLookup(mapping)
    assert (lookup.table is None) == (kind in ("sparse", "extremes"))
    present = np.array(list(k for k in mapping if isinstance(k, int)), dtype=np.int64)
    absent = np.array([int(present.min()) - 1, int(present.max()) + 1, 7 * n + 3], dtype=object)
    absent = np.array([a for a in absent if -2**63 <= a < 2**63 and a not in mapping], dtype=np.int64)
    for _ in range(20):
        batch = rng.choice(present, rng.integers(0, 3 * len(present)))
        if rng.random() < 0.5 and len(absent):
            batch = np.insert(batch, rng.integers(0, len(batch) + 1), rng.choice(absent))
        got, want = lookup.get(batch), _dict_lookup(mapping, batch)
        if want is None:
            assert got is None
        else:
            assert got.dtype == np.int64 and np.array_equal(got, want)
    for dtype in (np.int8, np.int16, np.int32):  # narrow integer arrays, the table's offset applied without overflow
        small = present[(present >= np.iinfo(dtype).min) & (present <= np.iinfo(dtype).max)].astype(dtype)
        got = lookup.get(small)
        assert got is not None and np.array_equal(got, _dict_lookup(mapping, small))
    assert IntKeyLookup({}).get(np.array([0])) is None
    assert IntKeyLookup({}).get(np.array([], dtype=np.int64)).tolist() == []
