"""The checkpoint manifest: what a checkpoint holds, written last, read
with checks (a manifest is input from disk: it names only files of the
expected form, of groups in range, and a bank the constructor accepts)."""

from __future__ import annotations

import re

from .shard import group_file
from .storage import Storage

__all__ = ["FORMAT", "MANIFEST", "read_manifest", "stale_files", "wrapper_file"]

MANIFEST = "manifest.json"
FORMAT = "streamrnn-checkpoint"
FORMAT_VERSION = 1
_CHECKPOINT_FILE = re.compile(r"(group-\d{5}-\d{6}|wrapper-\d{6})\.npz")  # (a group's, a keyed wrapper's)


def wrapper_file(checkpoint: int) -> str:
    """The name of a checkpoint's file of keyed wrapper arguments.

    >>> wrapper_file(3)
    'wrapper-000003.npz'
    """
    return f"wrapper-{checkpoint:06d}.npz"


def _need(cond: bool, storage: Storage, problem: str) -> None:
    if not cond:
        raise ValueError(f"{storage.path}: not a valid checkpoint: {problem}")


def _int(v) -> bool:
    return type(v) is int


def read_manifest(storage: Storage) -> dict | None:
    """The manifest of the checkpoint in ``storage``, checked; None if there
    is none."""
    if MANIFEST not in storage.names():
        return None
    m = storage.read_json(MANIFEST)
    _need(isinstance(m, dict) and m.get("format") == FORMAT, storage, f"{MANIFEST} is not a streamrnn checkpoint's")
    _need(m.get("format_version") == FORMAT_VERSION, storage,
          f"format_version {m.get('format_version')!r} (this streamrnn reads {FORMAT_VERSION})")
    n_groups, checkpoint = m.get("n_groups"), m.get("checkpoint")
    _need(_int(n_groups) and 1 <= n_groups <= 99_999 and _int(checkpoint) and 1 <= checkpoint <= 999_999,
          storage, "n_groups or checkpoint number out of range")
    _need(_int(m.get("n_shards")) and 1 <= m["n_shards"] <= n_groups and _int(m.get("batch")) and m["batch"] >= 0,
          storage, "n_shards or batch out of range")
    kind = m.get("kind", "bank")
    if kind == "keyed":  # keyed wrappers: their arguments (a template) saved beside the groups
        _need(m.get("wrapper") == wrapper_file(checkpoint), storage, "no wrapper file named")
    else:
        _need(kind == "bank", storage, f"unknown kind {kind!r}"[:200])
        bank = m.get("bank")
        _need(isinstance(bank, dict) and isinstance(bank.get("config"), dict), storage, "no bank arguments")
    groups = m.get("groups")
    _need(isinstance(groups, list), storage, "no list of groups")
    seen = set()
    for entry in groups:
        _need(isinstance(entry, list) and len(entry) == 3 and _int(entry[0]) and _int(entry[2]), storage,
              f"malformed group entry {entry!r}"[:200])
        group, name, _ = entry
        _need(0 <= group < n_groups and group not in seen and name == group_file(group, checkpoint), storage,
              f"group entry {entry!r} does not name its group's file"[:200])
        seen.add(group)
    return m


def stale_files(storage: Storage, manifest: dict) -> list[str]:
    """The checkpoint files in ``storage`` that ``manifest`` does not name
    (of earlier or interrupted checkpoints)."""
    named = {name for _, name, _ in manifest["groups"]} | {manifest.get("wrapper")}
    return [n for n in storage.names() if _CHECKPOINT_FILE.fullmatch(n) and n not in named]
