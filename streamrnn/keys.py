"""Keys of the per-key banks and wrappers: telling keys apart as a dict
does (with a clear error for a missing key, which has no equality to go by)
and finding the slots of a batch's keys."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Set

import numpy as np
import pandas as pd


def factorize(keys) -> tuple[np.ndarray, list]:
    """Codes of ``keys`` (a list, or a 1-D numpy array of integers or
    strings) into their distinct values, in order of appearance; the values
    as Python scalars. Keys are told apart as a dict's keys are (``None``
    included, which pandas would take for missing); a key that is or holds
    NaN raises ``ValueError`` (a missing key: each NaN would be a key of its
    own).

    >>> codes, uniques = factorize(["pump-2", None, "pump-2", (1, "a")])
    >>> codes.tolist(), uniques
    ([0, 1, 0, 2], ['pump-2', None, (1, 'a')])
    >>> factorize(["pump-2", float("nan")])
    Traceback (most recent call last):
        ...
    ValueError: key of row 1 is or holds NaN: a missing key? (None is a valid key)
    """
    index: dict = {}
    if isinstance(keys, np.ndarray):  # integer or string ids: no Python objects on the way
        codes, uniques = pd.factorize(keys, sort=False)
        return codes.astype(np.int64), uniques.tolist()
    if len(keys) > 64:
        try:  # C speed for hashable scalars
            codes, uniques = pd.factorize(pd.Series(keys, dtype=object), sort=False)
            # no key taken for missing, none holding NaN (pandas equates those)
            # pandas codes NaN-like scalars -1; containers holding one are looked into
            if (codes.size == 0 or codes.min() >= 0) and not any(
                    isinstance(u, (tuple, frozenset)) and holds_nan(u) for u in uniques):
                return codes.astype(np.int64), list(uniques)
        except TypeError:
            pass
    codes = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
    for i, k in enumerate(index):
        if holds_nan(k):
            raise ValueError(f"key of row {int(np.flatnonzero(codes == i)[0])} is or holds NaN: a missing key? "
                             "(None is a valid key)")
    return codes, list(index)


def is_missing(k) -> bool:
    """Whether ``k`` is missing: unequal to itself (a float or complex NaN,
    NaT, ...) or pandas' NA (whose comparisons are NA)."""
    if k is pd.NA:
        return True
    try:
        return bool(k != k)
    except (TypeError, ValueError):
        return False


def holds_nan(k) -> bool:
    """Whether ``k`` is NaN-like (unequal to itself) or a tuple or frozenset
    holding one, at any depth (such keys have no equality to go by: each NaN
    object would be a key of its own).

    >>> import pandas as pd
    >>> [holds_nan(k) for k in (float("nan"), pd.NA, ("a", (1, float("nan"))), None, ("a", 1))]
    [True, True, True, False, False]
    """
    return is_missing(k) or (isinstance(k, (tuple, frozenset)) and any(map(holds_nan, k)))


def known_slots(slot_of: dict, keys) -> np.ndarray | None:
    """The slot of every key when all are known (a bank's steady state), by
    dict look-ups alone (~25 ns a key, half the cost of factorizing); None if
    a key is new or unhashable, or ``keys`` is a numpy array (factorized
    without Python objects)."""
    if isinstance(keys, np.ndarray):
        return None
    try:
        return np.fromiter(map(slot_of.__getitem__, keys), np.int64, len(keys))
    except (KeyError, TypeError):
        return None


class IntKeyLookup:
    """The values of a dict's integer keys, to look up a numpy array of
    integer keys without Python objects: in a table indexed by the key when
    the keys fill most of their range (as ids ``0..n-1`` do; one gather, ~1 ns
    a key, and its 8 bytes a key stay few cache lines even when the look-up
    runs cache-cold between two kernels), else in a pandas Index (~3 ns a
    key warm, up to ~100 ns cold). Either way far below the ~35 ns of dict
    look-ups of the array's Python scalars. A snapshot: make a new one after
    the dict changes. Keys of other kinds are left out (an array's key equal
    to one of them, ``2`` to ``2.0``, is not found here: the dict is asked
    then).

    >>> lookup = IntKeyLookup({3: 0, "a": 1, 7: 2})
    >>> lookup.get(np.array([7, 3, 7])).tolist()
    [2, 0, 2]
    >>> lookup.get(np.array([7, 4])) is None
    True
    >>> sparse = IntKeyLookup({10**12: 0, -5: 1})
    >>> sparse.table is None, sparse.get(np.array([-5, 10**12])).tolist()
    (True, [1, 0])
    """

    __slots__ = ("index", "values", "table", "low")

    def __init__(self, mapping: dict):
        items = [(int(k), v) for k, v in mapping.items()
                 if isinstance(k, int | np.integer) and -2**63 <= k < 2**63]
        keys = np.fromiter((k for k, _ in items), np.int64, len(items))
        self.values = np.fromiter((v for _, v in items), np.int64, len(items))
        self.table, self.low, self.index = None, 0, None
        if len(keys):
            low, high = int(keys.min()), int(keys.max())
            if high - low < 4 * len(keys) + 64:  # dense enough: a table of the range
                self.table = np.full(high - low + 1, -1, dtype=np.int64)
                self.table[keys - low] = self.values
                self.low = low
        if self.table is None:
            self.index = pd.Index(keys)

    def get(self, keys: np.ndarray) -> np.ndarray | None:
        """The value of each key of ``keys`` (a numpy array of signed
        integers), or None if one is not here."""
        if self.table is None:
            pos = self.index.get_indexer(keys)
            if len(pos) and pos.min() < 0:
                return None
            return self.values[pos]
        if not len(keys):
            return np.empty(0, dtype=np.int64)
        low, high = int(keys.min()), int(keys.max())  # (Python ints: no overflow below)
        if low < self.low or high - self.low >= len(self.table):
            return None
        found = self.table[keys if self.low == 0 else keys.astype(np.int64) - self.low]
        if found.min() < 0:
            return None
        return found


def array_lookup(owner, mapping: dict, keys) -> np.ndarray | None:
    """The values of ``keys`` in ``mapping`` when all are known, else None:
    by ``owner._int_lookup`` (an :class:`IntKeyLookup` of ``mapping``, made
    here once the dict look-ups find every key of a batch; ``None`` there
    after ``mapping`` changes) for a numpy array of signed integers, else
    by dict look-ups (:func:`known_slots`; a numpy array's Python scalars)."""
    if isinstance(keys, np.ndarray):
        if keys.dtype.kind == "i":
            lookup = getattr(owner, "_int_lookup", None)
            if lookup is not None:
                found = lookup.get(keys)
                if found is not None:
                    return found
            found = known_slots(mapping, keys.tolist())
            if found is not None and lookup is None:
                owner._int_lookup = IntKeyLookup(mapping)
            return found
        keys = keys.tolist()
    return known_slots(mapping, keys)


def keys_to_evict(known, keys) -> list:
    """``keys`` as a list without repeats, each checked to be in ``known``
    before anything is evicted (a str is refused: it would be taken for its
    characters)."""
    if isinstance(keys, str | bytes):
        raise ValueError(f"keys must be a list of keys, got the {type(keys).__name__} {keys!r}")
    keys = list(dict.fromkeys(keys))
    for key in keys:
        if key not in known:
            raise KeyError(key)
    return keys


def batch_keys(keys):
    """The keys of a batch, one per row: a 1-D numpy array of integers or
    strings as it is, any other sequence as a list. Refused, as they would
    be misread: a string or bytes (its characters would be keys), a set or a
    mapping (no row order; a mapping's keys would be taken), a DataFrame (its
    column names), a numpy array of more than one dimension.

    >>> batch_keys(("pump-1", "pump-2"))
    ['pump-1', 'pump-2']
    >>> batch_keys("pump-1")
    Traceback (most recent call last):
        ...
    TypeError: keys must hold one key per row (a list, tuple, Series or array), got the str 'pump-1'
    """
    if isinstance(keys, np.ndarray):
        if keys.ndim != 1:
            raise ValueError(f"keys must be one key per row (1-D), got an array of shape {keys.shape}")
        if keys.dtype.kind in "iuUS":
            return keys  # factorized without Python objects
    if isinstance(keys, str | bytes | bytearray | Set | Mapping | pd.DataFrame):
        raise TypeError(f"keys must hold one key per row (a list, tuple, Series or array), got the "
                        f"{type(keys).__name__} {keys!r}"[:300])
    return list(keys)


# ----------------------------------------------------------- stable hashes

_HASHED_KINDS = "None, bool, int, float, str, bytes, numpy scalars of those, and tuples or frozensets of them"


def _length(b: bytes) -> bytes:
    return len(b).to_bytes(8, "little") + b


def key_bytes(key) -> bytes:
    """The canonical bytes of ``key``: equal for keys a dict takes for the
    same key (``1``, ``1.0``, ``True``, ``np.int64(1)``; ``"a"`` and
    ``np.str_("a")``; tuples of such), whatever the process, platform or
    ``PYTHONHASHSEED``. Keys of other kinds raise ``TypeError``.

    >>> key_bytes(("pump", 2)) == key_bytes((np.str_("pump"), np.float64(2.0)))
    True
    >>> key_bytes(1.5)
    b'f0x1.8000000000000p+0'
    >>> key_bytes([1])
    Traceback (most recent call last):
        ...
    TypeError: a key of type list has no stable hash: keys must be None, bool, int, float, str, bytes, ...
    """
    if key is None:
        return b"n"
    if isinstance(key, str):  # (numpy's str_ too)
        return b"s" + str.encode(key, "utf-8", "surrogatepass")
    if isinstance(key, bytes):
        return b"b" + bytes(key)
    if isinstance(key, int | np.integer | np.bool_):  # (bool too: True == 1)
        return b"i" + str(int(key)).encode()
    if isinstance(key, float | np.floating):
        value = float(key)
        if value.is_integer():  # 2.0 == 2: the same key
            return b"i" + str(int(value)).encode()
        if value != value:
            raise ValueError("a NaN key has no stable hash (nor equality to go by)")
        return b"f" + value.hex().encode()
    if isinstance(key, tuple):
        return b"t" + b"".join(_length(key_bytes(k)) for k in key)
    if isinstance(key, frozenset):  # equal sets in any iteration order
        return b"z" + b"".join(sorted(_length(key_bytes(k)) for k in key))
    raise TypeError(f"a key of type {type(key).__name__} has no stable hash: keys must be {_HASHED_KINDS}")


def key_hash(key) -> int:
    """A stable 64-bit hash of ``key`` (BLAKE2b of :func:`key_bytes`): the
    same in every process, unlike Python's salted ``hash()``.

    >>> key_hash("pump-1") == key_hash(np.str_("pump-1"))
    True
    >>> 0 <= key_hash(7) < 2**64
    True
    """
    return int.from_bytes(hashlib.blake2b(key_bytes(key), digest_size=8).digest(), "little")


def key_group(key, n_groups: int) -> int:
    """The key group of ``key`` among ``n_groups``: its stable hash modulo
    ``n_groups``.

    >>> key_group("pump-1", 4096) == key_group(np.str_("pump-1"), 4096)
    True
    """
    return key_hash(key) % n_groups


def key_seed(seed: int, key) -> int:
    """The seed of ``key``'s model derived from the bank's ``seed`` and the
    key's stable hash: a non-negative 64-bit integer, the same wherever the
    model is made.

    >>> key_seed(0, "pump-1") == key_seed(0, np.str_("pump-1")) != key_seed(1, "pump-1")
    True
    """
    message = b"seed %d key " % int(seed) + key_hash(key).to_bytes(8, "little")
    return int.from_bytes(hashlib.blake2b(message, digest_size=8).digest(), "little")
