r"""The CSR attention kernel (C++/OpenMP, ``csrc/csr_attention.cpp``), compiled on first use.

The kernel computes, for every destination node ``i`` (rows of a CSR sorted by target),
batch entry ``b`` and head ``h``

.. math::
    s_e = \tau\, \tilde q_{i} \cdot x_{j},\quad
    \alpha_e = \frac{e^{s_e}}{\sum_{e' \in \mathrm{in}(i)} e^{s_{e'}}},\quad
    o_i = \sum_{e \in \mathrm{in}(i)} w_e\, m_e\, \alpha_e\, x_j

node by node: the scores of its in-edges, their softmax, then the weighted sum of the
sources, whose rows are still in cache, accumulated in one scratch row (no ``[E, B, F]``
temporary). Wide heads go head by head (the row stays in registers); many narrow heads
(``project_first`` with 8 channels, say) go edge by edge, all heads of a source at once.
The value row :math:`x_j` is shared by the heads (``x [N, B, 1, F]``) or one per head
(``x [N, B, H, F]``, keys equal to values, as with ``project_first``); :math:`w_e` are
optional edge weights and :math:`m_e` an optional attention-dropout multiplier per
coefficient (``[E, B, H]``). It keeps :math:`\alpha` (``[E, B, H]``: ``k H / F`` of the
node tensor, 1/16 at the article's sizes) for the backward, which is two passes: one over
destinations (gradients of queries and edge weights, per-edge :math:`w m \alpha` and
:math:`\partial L / \partial s` kept as ``[E, B, H]`` scratch) and one over sources
through the transposed CSR (gradient of ``x``, a gather: no atomics). Inputs must be
contiguous float32 on the CPU.

The build cache. A compiled library is code this process will run, so the cache is
treated like ``~/.ssh``:

- It lives per user: ``$CORTEXGNN_KERNEL_DIR`` if set, else
  ``$XDG_CACHE_HOME/cortexgnn/kernels``, else ``~/.cache/cortexgnn/kernels``. Folders it
  creates are made with mode 0700; the cache folder, and every folder created on the way
  to it, must be a real folder (not a symbolic link) owned by this user and not writable
  by group or others, or the kernel is refused (the PyTorch paths run, with a warning
  saying why). Every folder that already existed above it must be a real folder (no
  symbolic link on the way), owned by root or this user, and not writable by others
  unless sticky (``/tmp``): otherwise another user could swap the cache folder.
- The module name carries a hash of everything the binary depends on: the ``.cpp`` bytes,
  the compiler flags and ``$CXX``, the torch version, the Python version and extension ABI,
  and the CPU (the flags say ``-march=native``): ``cortexgnn_csr_attention_<sha16>``.
  Checkouts, virtual environments and machines that would build the same binary share it;
  any that would not never touch each other's. The source is copied into the build folder
  and compiled from there, so the name always describes the bytes that were compiled.
- Each module builds in its own folder ``<cache>/<module>/``; after a build the SHA-256 of
  the library is written beside it (``<module>.so.sha256``, ``sha256sum`` format). Before a
  cached library is imported it is hashed again; a missing record, a mismatch (truncated,
  edited, replaced) or a file owned by another user discards the folder and rebuilds. The
  import loads a private copy of exactly the bytes that were hashed (read once through a
  descriptor), never the path again, so nothing swapped in after the check is loaded.
- ``fcntl.flock`` on ``<cache>/<module>.lock`` serialises processes (and threads): the
  first use builds once, the others wait and then load the verified result.

:func:`load_kernel` is what the attention backends call (cached; ``None`` means "use the
PyTorch paths", announced once by a :class:`KernelFallbackWarning` that names the reason);
:func:`build_kernel` builds now or raises with the reason (the ``build-kernel``
command); :func:`kernel_status` reports without building. ``CORTEXGNN_NO_KERNEL=1`` in the
environment switches the kernel off quietly: an explicit opt-out, so no warning.

Callers: :mod:`cortexgnn.ops.attention` (``load_kernel``) and the command line's
``build-kernel``/``doctor`` (``build_kernel``, ``kernel_status``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import os
import platform
import shutil
import stat
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, and the kernel's build flags are GCC/Clang's anyway
    fcntl = None

__all__ = ["KernelFallbackWarning", "build_kernel", "kernel_status", "load_kernel"]

_SOURCE = Path(__file__).resolve().parent / "csrc" / "csr_attention.cpp"
_CFLAGS = ("-O3", "-march=native", "-fopenmp", "-ffp-contract=fast")
_LDFLAGS = ("-fopenmp",)
_LIB_EXT = ".pyd" if sys.platform == "win32" else ".so"  # torch.utils.cpp_extension.LIB_EXT
_BUILD_TIME = "about 30-60 s on a CPU"
_OPT_OUT = "switched off by CORTEXGNN_NO_KERNEL=1"

# What this process knows: the loaded module, or why there is none (kernel_status reads it).
_STATE: dict = {"module": None, "reason": None}


class KernelFallbackWarning(RuntimeWarning):
    """The C++ kernel is unavailable here; the (slower) PyTorch paths run instead."""


@functools.lru_cache(maxsize=1)
def load_kernel():
    """The kernel's extension module: loaded from the cache, or compiled there on first use.

    The first use on a machine compiles (one line on stderr says so, about 30-60 s); later
    processes verify the cached library's SHA-256 and import it (milliseconds). The result is
    cached for the process.

    Returns:
        The extension module with ``forward`` and ``backward``, or ``None`` when the kernel
        is switched off (``CORTEXGNN_NO_KERNEL=1``, quietly) or unavailable (no compiler,
        no ninja, an unsafe cache folder, a failed build...: a
        :class:`KernelFallbackWarning` names the reason); callers then use the PyTorch paths.
    """
    if os.environ.get("CORTEXGNN_NO_KERNEL") == "1":  # read once: the result is cached
        _STATE.update(module=None, reason=_OPT_OUT)
        return None
    try:
        module = _load_or_build(force=False)
    except Exception as err:  # noqa: BLE001 - any failure means "use the PyTorch paths"
        reason = str(err) or type(err).__name__
        _STATE.update(module=None, reason=reason)
        if len(reason) > 600:  # a compiler log: the head says what failed, build-kernel the rest
            reason = reason[:600] + " ... (`cortexgnn build-kernel` shows the whole error)"
        warnings.warn(
            f"the C++ attention kernel is unavailable, the slower PyTorch paths run instead: "
            f"{reason}",
            KernelFallbackWarning,
            stacklevel=2,
        )
        return None
    _STATE.update(module=module, reason=None)
    return module


def build_kernel(*, force: bool = False):
    """Make sure the kernel is built and verified in the cache, and return its module.

    Unlike :func:`load_kernel` this ignores ``CORTEXGNN_NO_KERNEL`` (it is an explicit
    request to build) and raises instead of falling back. A success also resets
    :func:`load_kernel`'s cache, so this process uses the kernel from then on.

    Args:
        force: discard a cached build, even a verified one, and compile again.

    Raises:
        RuntimeError: the kernel cannot be built here; the message says why (unsafe cache
            folder, no compiler, no ninja, the compiler's error...).
    """
    try:
        module = _load_or_build(force=force)
    except RuntimeError:
        raise
    except Exception as err:  # an import error, an OSError from the cache folder...
        raise RuntimeError(f"the C++ attention kernel cannot be built: {err}") from err
    load_kernel.cache_clear()
    _STATE.update(module=module, reason=None)
    return module


def kernel_status() -> dict:
    """Where the kernel stands, without compiling anything or creating any folder.

    Returns:
        A dict: ``"available"`` (``True`` when :func:`load_kernel` returns the kernel
        without compiling: it is loaded, or a verified build is in the cache), ``"reason"``
        (one line: why, or what to do), ``"cache_dir"``, ``"module"`` (the hashed module
        name), ``"library"`` (the path of its compiled library), ``"loaded"`` (imported by
        this process), ``"built"`` (a verified build is in the cache), ``"can_build"``
        (compiler and ninja found and the cache folder safe), ``"compiler"`` and ``"ninja"``
        (their paths, or ``None``).
    """
    compiler, ninja = _find_tools()
    status = {
        "available": False,
        "reason": "",
        "cache_dir": "",
        "module": "",
        "library": "",
        "loaded": _STATE["module"] is not None,
        "built": False,
        "can_build": False,
        "compiler": compiler,
        "ninja": ninja,
    }
    try:
        directory = _cache_dir()
        name = _module_name()
    except Exception as err:  # noqa: BLE001 - no home folder, unreadable source...
        status["reason"] = str(err)
        return status
    build_dir = directory / name
    status.update(
        cache_dir=str(directory), module=name, library=str(build_dir / f"{name}{_LIB_EXT}")
    )
    unsafe = None
    if os.path.lexists(directory):
        try:
            _secure_directory(directory, create=False)
            if os.path.lexists(build_dir):
                _secure_directory(build_dir, create=False)
        except RuntimeError as err:
            unsafe = str(err)
    status["built"] = unsafe is None and _check_library(build_dir, name)[0] is not None
    missing_tool = _missing_tool(compiler, ninja)
    status["can_build"] = unsafe is None and missing_tool is None
    if os.environ.get("CORTEXGNN_NO_KERNEL") == "1":
        status["reason"] = _OPT_OUT
    elif status["loaded"]:
        status.update(available=True, reason="loaded in this process")
    elif unsafe is not None:
        status["reason"] = unsafe
    elif status["built"]:
        status.update(available=True, reason="built and verified: loads without compiling")
    elif _STATE["reason"] is not None:
        status["reason"] = _STATE["reason"]
    elif missing_tool is not None:
        status["reason"] = missing_tool
    elif _build_in_progress(directory / f"{name}.lock"):
        status["reason"] = "another process is compiling it now"
    else:
        status["reason"] = (
            f"not built yet: the first use (or `cortexgnn build-kernel`) compiles it, {_BUILD_TIME}"
        )
    return status


def _module_name(source: bytes | None = None) -> str:
    """``cortexgnn_csr_attention_<sha16>``: the hash of everything the binary depends on.

    Args:
        source: the ``.cpp`` bytes to describe (default: read the package's file now).
    """
    fingerprint = _fingerprint(_SOURCE.read_bytes() if source is None else source)
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    return f"cortexgnn_csr_attention_{digest[:16]}"


def _fingerprint(source: bytes) -> dict:
    """The build's inputs: two builds from equal fingerprints give interchangeable binaries."""
    import torch

    return {
        "source_sha256": hashlib.sha256(source).hexdigest(),
        "torch": torch.__version__,
        "cflags": _CFLAGS,
        "ldflags": _LDFLAGS,
        "cxx": os.environ.get("CXX", "c++"),  # what torch.utils.cpp_extension compiles with
        "python": sys.version,
        "abi": [sys.implementation.cache_tag, sysconfig.get_config_var("EXT_SUFFIX")],
        "machine": platform.machine(),
        "cpu": _cpu_model(),  # -march=native: a build is only good for this kind of CPU
    }


def _cpu_model() -> str:
    """The CPU's model and instruction-set flags (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            first_cpu = handle.read().split("\n\n", 1)[0]
    except OSError:
        return platform.processor()
    keep = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    return "\n".join(line for line in first_cpu.splitlines() if line.startswith(keep))


def _cache_dir() -> Path:
    """``$CORTEXGNN_KERNEL_DIR``, else the XDG cache folder's ``cortexgnn/kernels``."""
    override = os.environ.get("CORTEXGNN_KERNEL_DIR")
    if override:
        return Path(os.path.abspath(os.path.expanduser(override)))
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative value is invalid and ignored
        base = Path(xdg)
    else:
        try:
            base = Path.home() / ".cache"
        except RuntimeError as err:
            raise RuntimeError(
                f"no home folder for the kernel cache ({err}): set CORTEXGNN_KERNEL_DIR"
            ) from err
    return Path(os.path.abspath(base / "cortexgnn" / "kernels"))


def _load_or_build(*, force: bool):
    """Under the cache lock: import the verified cached library, or build it (and record it)."""
    if fcntl is None or os.name != "posix":
        raise RuntimeError("the kernel cache needs a POSIX system (fcntl.flock, file owners)")
    directory = _secure_directory(_cache_dir(), create=True)
    name = _module_name()
    build_dir = directory / name
    with _locked(directory / f"{name}.lock"):
        if os.path.lexists(build_dir):
            _secure_directory(build_dir, create=False)
        problem = "a rebuild was requested"
        if not force:
            library, problem = _check_library(build_dir, name)
            if library is not None:
                with _verified_copy(library) as private:
                    return _import_library(private, name)
        return _build(build_dir, name, problem)


def _build(build_dir: Path, name: str, problem: str | None):
    """Compile into a fresh ``build_dir``, then record the library's SHA-256 beside it."""
    missing = _missing_tool(*_find_tools())
    if missing is not None:
        raise RuntimeError(missing)
    if os.path.lexists(build_dir):
        shutil.rmtree(build_dir)  # stale objects, a bad library: nothing of it is reused
    _secure_directory(build_dir, create=True)
    code = _SOURCE.read_bytes()
    if _module_name(code) != name:  # compile exactly the bytes the name describes
        raise RuntimeError(f"{_SOURCE} changed while the kernel was being built: try again")
    source = build_dir / _SOURCE.name
    _write_private(source, code)
    discarded = f"; the cached build was discarded: {problem}" if problem else ""
    sys.stderr.write(
        f"cortexgnn: compiling the C++ attention kernel {name} in {build_dir} "
        f"({_BUILD_TIME}, once per source, flags and torch version){discarded}\n"
    )
    sys.stderr.flush()
    try:
        module = _compile(source, build_dir, name)
    except Exception as err:
        raise RuntimeError(f"building the C++ attention kernel {name} failed: {err}") from err
    library = build_dir / f"{name}{_LIB_EXT}"
    fd = _open_private(library)
    try:
        os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & ~0o022)  # whatever the umask was
        digest = _sha256_fd(fd)
    finally:
        os.close(fd)
    _write_private(_record_path(library), f"{digest}  {library.name}\n".encode())
    return module


def _compile(source: Path, build_dir: Path, name: str):
    """``torch.utils.cpp_extension.load``: ninja builds ``<build_dir>/<name>.so`` and imports it."""
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)  # its import warns that CUDA is absent: irrelevant here
    try:
        with warnings.catch_warnings():  # torch's loader warns about torch.jit deprecation
            warnings.simplefilter("ignore", FutureWarning)
            from torch.utils.cpp_extension import load

            return load(
                name=name,
                sources=[str(source)],
                extra_cflags=list(_CFLAGS),
                extra_ldflags=list(_LDFLAGS),
                build_directory=str(build_dir),
                verbose=False,
            )
    finally:
        cpp_logger.setLevel(level)


def _import_library(library: Path, name: str):
    """Import a verified extension library (what ``cpp_extension.load`` does after ninja)."""
    import torch  # noqa: F401 - the extension resolves libtorch's symbols: load them first

    spec = importlib.util.spec_from_file_location(name, library)
    if spec is None or spec.loader is None:
        raise ImportError(f"{library} is not an importable extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _verified_copy(library: Path) -> Iterator[Path]:
    """A private copy of ``library`` holding exactly the bytes that match its SHA-256 record.

    The bytes are read once through a descriptor, hashed, compared with the record and
    written to a fresh folder (mode 0700) inside the build folder; the import loads that
    copy, so a file swapped in at the library's path after the check is never loaded. The
    copy is removed after the import (the loader keeps its own mapping).

    Raises:
        RuntimeError: the bytes do not match the record (changed since it was checked).
    """
    fd = _open_private(library)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    fd = _open_private(_record_path(library))
    try:
        recorded = os.read(fd, 4096).decode("ascii", errors="replace").split()
    finally:
        os.close(fd)
    if not recorded or hashlib.sha256(data).hexdigest() != recorded[0]:
        raise RuntimeError(f"{library} changed after it was verified: not loaded")
    folder = Path(tempfile.mkdtemp(prefix=".load-", dir=library.parent))  # mode 0700
    try:
        copy = folder / library.name
        _write_private(copy, data)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_library(build_dir: Path, name: str) -> tuple[Path | None, str | None]:
    """The cached library if it is ours and matches its recorded SHA-256, else why not.

    Returns:
        ``(path, None)`` for a verified library, ``(None, None)`` when nothing is built,
        ``(None, problem)`` when a library is there but must not be loaded.
    """
    library = build_dir / f"{name}{_LIB_EXT}"
    if not os.path.lexists(library):
        return None, None
    try:
        fd = _open_private(library)
        try:
            actual = _sha256_fd(fd)
        finally:
            os.close(fd)
        record = _record_path(library)
        if not os.path.lexists(record):
            return None, f"{library.name} has no SHA-256 record (an interrupted build?)"
        fd = _open_private(record)
        try:
            recorded = os.read(fd, 4096).decode("ascii", errors="replace").split()
        finally:
            os.close(fd)
    except (OSError, RuntimeError) as err:
        return None, str(err)
    if not recorded or recorded[0] != actual:
        return None, (
            f"{library.name} does not match the SHA-256 recorded when it was built "
            f"(truncated, edited or replaced)"
        )
    return library, None


def _record_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _open_private(path: Path) -> int:
    """Open a regular file for reading, refusing a symlink or a file another user could edit."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        problem = _ownership_problem(st, "file")
        if problem is not None:
            raise RuntimeError(f"{path} {problem}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_private(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) through a temporary file and a rename: never half-written."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _secure_directory(path: Path, *, create: bool) -> Path:
    """``path`` as a folder only this user can write to, creating missing parts (mode 0700).

    Every folder created on the way is checked with ``lstat`` right after ``mkdir`` (someone
    may have made it first), and the final folder with ``lstat`` then ``O_NOFOLLOW`` open:
    a symbolic link, another owner or group/other write permission is refused.

    Raises:
        RuntimeError: the folder is unsafe (the message says how) or cannot be created.
    """
    path = Path(os.path.abspath(path))
    _check_parents(path)
    missing = []
    part = path
    while not os.path.lexists(part) and part != part.parent:
        missing.append(part)
        part = part.parent
    if missing and not create:
        raise RuntimeError(f"kernel cache folder {path} does not exist")
    try:
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):  # made meanwhile: the check decides
                os.mkdir(folder, 0o700)
            _check_directory(os.lstat(folder), folder)
        _check_directory(os.lstat(path), path)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _check_directory(os.fstat(fd), path)
        finally:
            os.close(fd)
    except OSError as err:
        raise RuntimeError(f"kernel cache folder {path} is unusable: {err}") from err
    return path


def _check_parents(path: Path) -> None:
    """Refuse a cache path whose existing parents another user could change.

    Every existing folder above ``path``, from ``/`` down, must be a real folder (no
    symbolic link on the way), owned by root or by this user, and not writable by others
    unless it has the sticky bit (``/tmp``): otherwise someone else could rename the cache
    folder away and put their own in its place.

    Raises:
        RuntimeError: naming the parent and the fix.
    """
    for parent in reversed(path.parents):
        try:
            st = os.lstat(parent)
        except FileNotFoundError:
            return  # from here on the folders are created by this process, mode 0700
        mode = st.st_mode
        problem = None
        if stat.S_ISLNK(mode):
            problem = "is a symbolic link"
        elif not stat.S_ISDIR(mode):
            problem = "is not a folder"
        elif st.st_uid not in (0, os.geteuid()):
            problem = f"is owned by uid {st.st_uid}, not by root or this user"
        elif mode & 0o002 and not mode & stat.S_ISVTX:
            problem = (
                f"is writable by others without the sticky bit (mode {stat.S_IMODE(mode):04o})"
            )
        if problem is not None:
            raise RuntimeError(
                f"unsafe kernel cache folder {path}: its parent {parent} {problem}, so another "
                f"user could replace the cache (set CORTEXGNN_KERNEL_DIR to a folder under "
                f"your home, reached without symbolic links)"
            )


def _check_directory(st: os.stat_result, path: Path) -> None:
    problem = _ownership_problem(st, "folder")
    if problem is not None:
        raise RuntimeError(
            f"unsafe kernel cache folder {path}: it {problem} (set CORTEXGNN_KERNEL_DIR to a "
            f"folder of your own, mode 0700)"
        )


def _ownership_problem(st: os.stat_result, kind: str) -> str | None:
    """What makes a cache folder or file untrustworthy, or ``None``."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if not (stat.S_ISDIR(mode) if kind == "folder" else stat.S_ISREG(mode)):
        return f"is not a {'folder' if kind == 'folder' else 'regular file'}"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if mode & 0o022:
        return f"is writable by group or others (mode {stat.S_IMODE(mode):04o})"
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (released by the kernel if the holder dies)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        problem = _ownership_problem(os.fstat(fd), "file")
        if problem is not None:
            raise RuntimeError(f"kernel cache lock {path} {problem}")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _build_in_progress(lock: Path) -> bool:
    """Whether another process holds the build lock (checked without waiting or creating)."""
    if fcntl is None or not os.path.isfile(lock) or os.path.islink(lock):
        return False
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also releases a lock we got
    return False


def _find_tools() -> tuple[str | None, str | None]:
    """Paths of the C++ compiler torch would use (``$CXX`` or ``c++``) and of ninja."""
    return shutil.which(os.environ.get("CXX", "c++")), shutil.which("ninja")


def _missing_tool(compiler: str | None, ninja: str | None) -> str | None:
    if compiler is None:
        return (
            f"no C++ compiler: {os.environ.get('CXX', 'c++')!r} is not on PATH (install g++ "
            f"or clang++, or set CXX)"
        )
    if ninja is None:
        return "ninja is not on PATH (pip install ninja)"
    return None
