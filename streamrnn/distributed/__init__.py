"""Keyed models beyond one process: :class:`ShardedBank`, a
:class:`~streamrnn.ModelBank` over Ray actors by key group, and
:class:`ShardedKeyedForecaster` and :class:`ShardedKeyedDetector`, the keyed
River wrappers likewise, with checkpoints, recovery and rescaling that keep
every model exact.

Needs Ray (``pip install "streamrnn[ray]"``), imported when a bank is made;
importing this package does not import Ray.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"ShardedBank": "sharded", "Shard": "shard", "Storage": "storage", "KeyedShard": "keyed_shard",
            "ShardedKeyedForecaster": "sharded_keyed", "ShardedKeyedDetector": "sharded_keyed",
            "start_ray": "base"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streamrnn.distributed' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
