"""The one atomic file writer: checkpoints, run folders and the kernel cache all use it.

A file is written to a temporary name beside its destination, flushed to disk, then renamed
over it: a crash at any moment leaves the old file or the new one, never a torn one, and a
symlink at the destination is replaced, never written through.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]


def atomic_write(
    path: str | os.PathLike,
    data: bytes | Callable[[BinaryIO], object],
    *,
    private: bool = False,
    keep_open: bool = False,
) -> Path | BinaryIO:
    """Write ``path`` whole through a temporary file beside it and a rename.

    Args:
        path: the destination; its folder must exist.
        data: the bytes, or a function that writes into the open binary file
            (``lambda f: torch.save(obj, f)``).
        private: mode 0600 (the kernel cache); otherwise what a plain ``open()`` would
            give under the current umask.
        keep_open: return the file, still open for appending at the end of ``data``,
            instead of closing it (a log that keeps growing under its new name).

    Returns:
        ``Path(path)``, or the open file with ``keep_open``. A process killed mid-write
        leaves a ``.<name>.*.tmp`` beside ``path`` (safe to delete); the folder is fsynced
        after the rename, so the new name survives a power loss on POSIX file systems.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    handle = os.fdopen(fd, "wb")
    try:
        if callable(data):
            data(handle)
        else:
            handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        if not private:  # mkstemp makes 0600
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        handle.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    if keep_open:
        return handle
    handle.close()
    return path


def _umask() -> int:
    current = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(current)
    return current


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return  # directories cannot be opened for fsync on Windows
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
