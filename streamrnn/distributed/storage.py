"""Where checkpoints live: a local folder, or any fsspec URL where fsspec is
installed. Every file is written whole or not at all (a temporary file, then
a rename), so a reader sees either the earlier file or the new one."""

from __future__ import annotations

import io
import json
import os
import re

from .. import persist_archive as archive
from .. import persistence

__all__ = ["Storage"]

_TEMPORARY = re.compile(r"\..+\.(\d+)-[0-9a-f]{12}\.tmp")  # (persist_archive.temporary_name's)


def _fsspec():
    try:
        import fsspec
    except ImportError:
        raise ImportError("checkpoints at a URL need fsspec: pip install fsspec (and its filesystem's "
                          "package)") from None
    return fsspec


class Storage:
    """A checkpoint folder: ``path`` a local folder or an fsspec URL
    (``"s3://bucket/run"``, ``"memory://run"``). Picklable: shards get a
    copy and write their groups' files themselves.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     storage = Storage(tmp)
    ...     storage.write_json("manifest.json", {"offset": 7})
    ...     storage.read_json("manifest.json"), storage.names()
    ({'offset': 7}, ['manifest.json'])
    """

    def __init__(self, path):
        path = os.fspath(path)
        if not isinstance(path, str):
            path = os.fsdecode(path)
        self.url = "://" in path
        self.path = path if self.url else os.path.abspath(path)
        self._fs = None

    def __getstate__(self) -> dict:
        return {"url": self.url, "path": self.path, "_fs": None}

    @property
    def fs(self):
        """The fsspec filesystem of a URL (None for a local folder)."""
        if self.url and self._fs is None:
            self._fs, self._root = _fsspec().core.url_to_fs(self.path)
        return self._fs

    def _where(self, name: str) -> str:
        if self.url:
            self.fs  # (sets _root)
            return f"{self._root.rstrip('/')}/{name}"
        return os.path.join(self.path, name)

    def make(self) -> None:
        """Create the folder if it is not there."""
        if self.url:
            self.fs.makedirs(self._where(""), exist_ok=True)
        else:
            os.makedirs(self.path, exist_ok=True)

    def names(self) -> list[str]:
        """The names of the files in the folder, sorted."""
        if self.url:
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self._where(""), detail=False))
        return sorted(os.listdir(self.path))

    def remove(self, name: str) -> None:
        try:
            if self.url:
                self.fs.rm_file(self._where(name))
            else:
                os.unlink(self._where(name))
        except FileNotFoundError:
            pass

    def _put(self, name: str, data: bytes, durable: bool = True) -> None:
        """``data`` under ``name``, whole or not at all (a temporary file
        renamed); ``durable``: on disk before this returns (else once
        :meth:`flush` has run)."""
        if self.url:  # (an object store's put is whole and durable)
            tmp = self._where(f".{name}.{os.getpid()}.tmp")
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, self._where(name))
            return
        archive.write_whole(self._where(name), lambda f: f.write(data), durable or not hasattr(os, "sync"))

    def flush(self) -> None:
        """The files written so far on disk, renames included (one system
        ``sync`` for many files: an ``fsync`` each costs milliseconds)."""
        if self.url:
            return
        if hasattr(os, "sync"):
            os.sync()

    def clean(self) -> list[str]:
        """Remove the temporary files of writers that are gone (interrupted
        checkpoints); returns their names."""
        if self.url:
            return []
        removed = []
        for name in self.names():
            match = _TEMPORARY.fullmatch(name)
            if match and not archive._alive(int(match.group(1))):
                self.remove(name)
                removed.append(name)
        return removed

    def write_json(self, name: str, value) -> None:
        """``value`` (plain JSON data) as a JSON file, whole or not at all."""
        self._put(name, json.dumps(value, allow_nan=False, sort_keys=True).encode("utf-8"))

    def read_json(self, name: str, max_bytes: int = 64 << 20):
        """The JSON value in ``name`` (at most ``max_bytes`` long)."""
        if self.url:
            data = self.fs.cat_file(self._where(name))
        else:
            with open(self._where(name), "rb") as f:
                data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValueError(f"{name} is over {max_bytes} bytes: not a checkpoint manifest")
        return json.loads(data.decode("utf-8"))

    def save(self, name: str, model, durable: bool = True) -> None:
        """``model`` in the safe save format (:func:`streamrnn.save`), whole
        or not at all; ``durable`` as :meth:`_put`'s."""
        if self.url:
            data = io.BytesIO()
            persistence.save(model, data)
            self._put(name, data.getvalue(), durable)
        else:  # (straight into the temporary file: no copy of the bytes in memory)
            archive.write_whole(self._where(name), lambda f: persistence.save(model, f),
                                durable or not hasattr(os, "sync"))

    def load(self, name: str):
        """The model saved under ``name`` (checked by :func:`streamrnn.load`)."""
        if self.url:
            return persistence.load(io.BytesIO(self.fs.cat_file(self._where(name))))
        return persistence.load(self._where(name))
