"""The zip archive under :mod:`streamrnn.persistence`: reading entries
within caps fixed before anything is decompressed, and the temporary files
of :func:`~streamrnn.persistence.save`.

Sizes come from the archive's central directory (each entry's declared
uncompressed size, the number of entries) and, for an ``.npy`` entry, from
its header (shape and dtype), and are checked before an entry's data is
read: the declared sizes together at most ``max_bytes``, an array's
``shape x itemsize`` exactly the data its entry declares. :mod:`zipfile`
never returns more than an entry's declared size (a deflate stream that
would inflate further fails its CRC check), and arrays are read in chunks
into a buffer of their checked size.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import time
import zipfile

import numpy as np

from .persist_checks import Invalid

__all__ = ["MAX_ENTRIES", "MAX_META_BYTES", "check_json_size", "clean_stale_temporaries", "entries", "read_array",
           "read_bytes", "temporary_name"]

#: Entries an archive may hold.
MAX_ENTRIES = 1 << 20
#: The largest JSON document of a file, in bytes.
MAX_META_BYTES = 1 << 26
#: Bytes of Python objects counted per JSON value (an int in a list takes
#: 36, a dict entry of strings more): a document of ``n`` values may take
#: ``n * JSON_VALUE_BYTES`` once parsed, at most half of ``max_bytes``.
JSON_VALUE_BYTES = 64
_CHUNK = 1 << 24
_MAX_HEADER = 1 << 16
_KINDS = "biufcmMSUV"


def entries(zf: zipfile.ZipFile, max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    """The entries by name, checked from the central directory alone."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise Invalid(f"the archive has {len(infos)} entries, more than {MAX_ENTRIES}")
    total = 0
    out = {}
    for info in infos:
        if info.filename in out:
            raise Invalid(f"the archive holds entry {info.filename[:80]!r} twice")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
            raise Invalid(f"entry {info.filename[:80]!r} is encrypted or uses an unsupported compression")
        total += info.file_size
        out[info.filename] = info
    if total > max_bytes:
        raise Invalid(f"the archive declares {total} bytes uncompressed, above the cap of {max_bytes} bytes "
                      "(max_bytes of load)")
    return out


def _read_into(f, target: np.ndarray) -> None:
    view = memoryview(target.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        chunk = f.read(min(_CHUNK, len(view) - done))
        if not chunk:
            raise Invalid("an entry is shorter than it declares")
        view[done : done + len(chunk)] = chunk
        done += len(chunk)


def _end(f) -> None:
    """Reads past the end: zipfile checks the entry's CRC-32 there."""
    if f.read(1):
        raise Invalid("an entry is longer than it declares")


def check_json_size(text: bytes, max_bytes: int) -> None:
    """Refuse a JSON document whose parsed values would take more than half
    of ``max_bytes`` (counted from its separators, before parsing)."""
    values = 1 + sum(text.count(c) for c in (b",", b":", b"[", b"{"))
    if values * JSON_VALUE_BYTES > max_bytes // 2:
        raise Invalid(f"the metadata holds about {values} values, which would take more than half of the cap of "
                      f"{max_bytes} bytes (max_bytes of load) once parsed")


def read_bytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    if info.file_size > cap:
        raise Invalid(f"entry {info.filename[:80]!r} declares {info.file_size} bytes, above the cap of {cap}")
    with zf.open(info) as f:
        data = f.read(info.file_size)
        if len(data) != info.file_size:
            raise Invalid("an entry is shorter than it declares")
        _end(f)
    return data


def read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """An ``.npy`` entry (no pickles), its shape checked against the size
    the entry declares before the array is allocated."""
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=_MAX_HEADER)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=_MAX_HEADER)
            else:
                raise ValueError(f"unsupported npy version {version}")
        except ValueError as e:
            raise Invalid(f"entry {info.filename[:80]!r} is not a valid array ({e})") from None
        header = f.tell()
        if dtype.hasobject or dtype.kind not in _KINDS or dtype.itemsize == 0 and dtype.kind != "V":
            raise Invalid(f"entry {info.filename[:80]!r} holds arrays of dtype {dtype}, "
                          "which the format does not allow")
        count = math.prod(shape)
        if count * dtype.itemsize != info.file_size - header:
            raise Invalid(f"entry {info.filename[:80]!r}: its shape {shape} and dtype {dtype} do not match its "
                          f"declared size")
        a = np.empty(count, dtype=dtype)
        if count:
            _read_into(f, a)
        _end(f)
    if fortran:
        return a.reshape(shape[::-1]).T
    return a.reshape(shape)


# --------------------------------------------------------------- temporaries

_MIN_AGE_OLD_NAMES = 60.0  # seconds: temporaries named without their writer's pid


def temporary_name(directory: str, name: str) -> str:
    """``.<name>.<pid>-<random>.tmp`` beside the target."""
    return os.path.join(directory, f".{name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")


def write_whole(path: str, write, durable: bool = True) -> None:
    """Write a file whole or not at all: ``write(f)`` fills a temporary file
    beside ``path`` (see :func:`temporary_name`), which then replaces
    ``path``; on any error the temporary file is removed and ``path`` is as
    before. ``durable``: the file's data and its new name are on disk before
    this returns (else once the system writes them back, or a ``sync``).

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> write_whole(os.path.join(folder, "a.bin"), lambda f: f.write(b"abc"))
    >>> open(os.path.join(folder, "a.bin"), "rb").read(), os.listdir(folder)
    (b'abc', ['a.bin'])
    """
    directory, name = os.path.split(os.path.abspath(path))
    tmp = temporary_name(directory, name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable and os.name == "posix":  # the rename too
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def clean_stale_temporaries(directory: str, name: str) -> list[str]:
    """Remove the temporaries of interrupted saves to ``name``: those whose
    writer process is gone, and those of earlier streamrnn versions (named
    without a pid) older than a minute. Returns the paths removed."""
    pattern = re.compile(re.escape(f".{name}.") + r"(?:(\d+)-)?[0-9a-f]{12}\.tmp")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for entry in names:
        match = pattern.fullmatch(entry)
        if match is None:
            continue
        path = os.path.join(directory, entry)
        try:
            if match.group(1) is not None:
                stale = not _alive(int(match.group(1)))
            else:
                stale = now - os.stat(path).st_mtime > _MIN_AGE_OLD_NAMES
            if stale:
                os.unlink(path)
                removed.append(path)
        except OSError:
            continue
    return removed
