"""A training run's folder: a new one per run, one writer at a time, files replaced whole.

- ``out_dir=None`` creates ``runs/<YYYYmmdd-HHMMSS>`` (``-1``, ``-2`` ... when two runs start
  in the same second) and points the symlink ``runs/latest`` at it; a resumed run writes
  into the folder of its checkpoint.
- A named ``out_dir`` that already holds a run (:data:`RUN_FILES`) is refused unless
  ``overwrite`` (which deletes those files first) or the run resumes its own checkpoint.
- ``.lock`` in the folder is held with ``flock`` for the whole run: a second run into the
  same folder fails at once. The run removes the file when it ends, finished or failed; a
  killed process leaves it unlocked (the flock dies with the process), and the next run
  takes it over.
- :func:`write_atomic` writes a temporary file beside the target and renames it over the
  name: a crash leaves the old file or the new one, and a symlink planted at the name is
  replaced, never written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
import warnings
from pathlib import Path

__all__ = [
    "LATEST",
    "RUN_FILES",
    "RunDir",
    "RunDirError",
    "open_run_dir",
    "replace_and_keep_open",
    "write_atomic",
]

RUNS_ROOT = Path("runs")
LATEST = "latest"
LOCK_NAME = ".lock"
#: The files of a run; a folder holding any of them holds a run.
RUN_FILES = ("checkpoint.pth", "metrics.jsonl", "summary.json", "curves.png")


class RunDirError(ValueError):
    """The run folder cannot be used as asked; the message says why and what to do."""


class RunDir:
    """A run folder whose ``.lock`` this process holds until :meth:`close`.

    Attributes:
        path: the folder.
        created: whether this run created it (a fresh ``runs/<timestamp>``).
    """

    def __init__(self, path: Path, created: bool = False) -> None:
        self.path = path
        self.created = created
        self._lock_fd: int | None = None

    def _lock(self) -> None:
        import fcntl

        lock = self.path / LOCK_NAME
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        while True:
            try:
                fd = os.open(lock, flags, 0o644)
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise RunDirError(f"{lock} is a symlink: remove it") from err
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunDirError(
                        f"{self.path} is in use by another cortexgnn train (pid {holder}): wait "
                        f"for it to finish or choose another --out-dir"
                    ) from err
                raise
            if _same_file(fd, lock):
                break
            # the previous owner removed this file between our open and our flock: the
            # lock we hold is on a file nobody else will see; take the one at the path
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def discard_if_unused(self) -> None:
        """Remove a folder this run created but never wrote to (it failed before a file).

        ``runs/latest`` is removed with it when it points there; a folder that was not
        created by this run, or holds anything besides the lock, stays.
        """
        if not self.created or any(p.name != LOCK_NAME for p in self.path.iterdir()):
            return
        (self.path / LOCK_NAME).unlink(missing_ok=True)
        self.path.rmdir()
        latest = self.path.parent / LATEST
        if latest.is_symlink() and os.readlink(latest) == self.path.name:
            latest.unlink()

    def close(self) -> None:
        """Release the lock and remove ``.lock`` (while still holding it, see :meth:`_lock`).

        A second process that opened the file just before it was removed finds, after its
        ``flock``, that the path no longer names that file, and starts again.
        """
        if self._lock_fd is not None:
            lock = self.path / LOCK_NAME
            if _same_file(self._lock_fd, lock):
                with contextlib.suppress(OSError):  # a read-only folder: the file stays
                    lock.unlink()
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` (not followed) still names the file open as ``fd``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (opened.st_dev, opened.st_ino)


def _new_run_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        path = root / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            path.mkdir()  # never an existing folder: two runs never share one
        except FileExistsError:
            continue
        return path
    raise RunDirError(f"{root} holds 1000 runs started at {stamp}: choose --out-dir")


def _point_latest(run: Path) -> None:
    """Make ``<root>/latest`` a symlink to ``run`` (a warning when that fails)."""
    link = run.parent / LATEST
    tmp = run.parent / f".{LATEST}.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(run.name, tmp)
        os.replace(tmp, link)  # replaces an old symlink atomically; a real folder stays
    except OSError as err:
        tmp.unlink(missing_ok=True)
        warnings.warn(
            f"could not point {link} at {run.name} ({err.strerror or err}); the run is in {run}",
            stacklevel=3,
        )


def open_run_dir(
    out_dir: str | os.PathLike | None,
    *,
    overwrite: bool = False,
    resume_dir: str | os.PathLike | None = None,
    runs_root: str | os.PathLike = RUNS_ROOT,
) -> RunDir:
    """Create or check the run folder and take its lock.

    Args:
        out_dir: the folder; ``None`` means ``resume_dir`` when resuming, else a new
            ``<runs_root>/<timestamp>``.
        overwrite: delete the :data:`RUN_FILES` of a run already in ``out_dir``.
        resume_dir: the folder of the checkpoint a resumed run continues.
        runs_root: where new run folders go.

    Returns:
        The locked :class:`RunDir` (use it as a context manager).

    Raises:
        RunDirError: the folder holds another run, is in use, or is not a folder.
        OSError: the folder cannot be created (permissions, read-only or full disk).
    """
    created = False
    if out_dir is None and resume_dir is None:
        path, created = _new_run_folder(Path(runs_root)), True
    else:
        path = Path(out_dir if out_dir is not None else resume_dir)
        if path.exists() and not path.is_dir():
            raise RunDirError(
                f"--out-dir {path} exists and is not a folder: remove it or choose another "
                f"--out-dir"
            )
        path.mkdir(parents=True, exist_ok=True)
    run = RunDir(path, created)
    run._lock()
    try:
        existing = [name for name in RUN_FILES if os.path.lexists(path / name)]
        same = resume_dir is not None and path.resolve() == Path(resume_dir).resolve()
        if existing and not same:
            if not overwrite:
                raise RunDirError(
                    f"{path} already holds a run ({', '.join(existing)}): pass --overwrite "
                    f"to replace it, --resume {path / 'checkpoint.pth'} to continue it, or "
                    f"choose another --out-dir"
                )
            for name in existing:
                (path / name).unlink()
    except BaseException:
        run.close()
        raise
    if created:
        _point_latest(path)
    return run


def replace_and_keep_open(path: str | os.PathLike, data: bytes):
    """Write ``data`` to a temporary file, rename it to ``path`` and return it still open.

    The rename replaces whatever has the name (a symlink included) instead of writing
    through it, and later writes go to the same file whatever happens to the name: the
    append-only log of a run. The file gets the permissions of a plain ``open()``.

    Returns:
        The binary file object, positioned at the end of ``data``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    handle = os.fdopen(fd, "wb")
    try:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        handle.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return handle


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole: the old file or the new one, never a torn one.

    As :func:`replace_and_keep_open`: a symlink at ``path`` is replaced, never written
    through.
    """
    replace_and_keep_open(path, data).close()
    return Path(path)


def _umask() -> int:
    current = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(current)
    return current
