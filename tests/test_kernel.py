"""The kernel loader's cache: private, content-addressed, verified, locked, and loud on fallback.

Most tests replace the compiler with a stub that writes a fake library and the importer with
one that records what it was asked to import: they are about which file may be loaded, not
about the C++. The slow test does real builds (about a minute each).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
import threading
import time
import warnings

import pytest

from cortexgnn.ops import kernel

OTHER_UID = 12345


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder, the stub compiler and importer, and a clean loader state."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("CORTEXGNN_KERNEL_DIR", str(directory))
    monkeypatch.delenv("CORTEXGNN_NO_KERNEL", raising=False)
    monkeypatch.setattr(kernel, "_find_tools", lambda: ("/usr/bin/c++", "/usr/bin/ninja"))
    log = {"compiled": 0, "imported": []}

    def compile_stub(source, build_dir, name):
        log["compiled"] += 1
        (build_dir / f"{name}.so").write_bytes(b"library built from " + source.read_bytes())
        return ("built", name)

    def import_stub(library, name):
        log["imported"].append(library.read_bytes())
        return ("imported", name)

    monkeypatch.setattr(kernel, "_compile", compile_stub)
    monkeypatch.setattr(kernel, "_import_library", import_stub)
    monkeypatch.setitem(kernel._STATE, "module", None)
    monkeypatch.setitem(kernel._STATE, "reason", None)
    kernel.load_kernel.cache_clear()
    yield directory, log
    kernel.load_kernel.cache_clear()


def library_path(directory):
    name = kernel._module_name()
    return directory / name / f"{name}.so"


def chown_or_skip(path, uid=OTHER_UID):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    os.chown(path, uid, -1)


def fallback_reason():
    """``load_kernel()`` must fall back with exactly one warning; returns its message."""
    with pytest.warns(kernel.KernelFallbackWarning) as record:
        assert kernel.load_kernel() is None
    assert len(record) == 1
    return str(record[0].message)


def test_first_use_builds_into_private_folders_and_records_the_hash(cache, tmp_path, capsys):
    directory, log = cache
    assert kernel.load_kernel() == ("built", kernel._module_name())
    assert log["compiled"] == 1
    for folder in (directory, library_path(directory).parent):
        assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
    library = library_path(directory)
    record = library.with_name(library.name + ".sha256").read_text()
    assert record == f"{hashlib.sha256(library.read_bytes()).hexdigest()}  {library.name}\n"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and kernel._module_name() in err and "30-60 s" in err
    kernel.load_kernel()  # cached for the process: nothing more happens
    assert log["compiled"] == 1 and log["imported"] == []


def test_created_parent_folders_are_private(cache, tmp_path, monkeypatch):
    deep = tmp_path / "a" / "b" / "kernels"
    monkeypatch.setenv("CORTEXGNN_KERNEL_DIR", str(deep))
    kernel.build_kernel()
    for folder in (tmp_path / "a", tmp_path / "a" / "b", deep):
        assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700


def test_default_folder_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("CORTEXGNN_KERNEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kernel._cache_dir() == tmp_path / "xdg" / "cortexgnn" / "kernels"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert kernel._cache_dir() == tmp_path / "home" / ".cache" / "cortexgnn" / "kernels"


def test_verified_library_is_imported_without_compiling(cache):
    directory, log = cache
    kernel.build_kernel()
    kernel.load_kernel.cache_clear()  # a new process, as far as the loader is concerned
    assert kernel.load_kernel() == ("imported", kernel._module_name())
    assert log["compiled"] == 1
    assert log["imported"] == [library_path(directory).read_bytes()]


@pytest.mark.parametrize("damage", ["truncate", "edit", "drop_record"])
def test_damaged_library_is_discarded_and_rebuilt(cache, capsys, damage):
    directory, log = cache
    kernel.build_kernel()
    library = library_path(directory)
    good = library.read_bytes()
    if damage == "truncate":
        library.write_bytes(good[:7])
    elif damage == "edit":
        library.write_bytes(good.replace(b"library", b"LIBRARY"))
    else:
        library.with_name(library.name + ".sha256").unlink()
    capsys.readouterr()
    kernel.load_kernel.cache_clear()
    assert kernel.load_kernel() == ("built", kernel._module_name())
    assert log["compiled"] == 2 and log["imported"] == []  # the damaged file was never imported
    assert library.read_bytes() == good
    expected = "no SHA-256 record" if damage == "drop_record" else "does not match the SHA-256"
    assert expected in capsys.readouterr().err


def test_library_owned_by_another_user_is_not_loaded(cache):
    directory, log = cache
    kernel.build_kernel()
    library = library_path(directory)
    library.write_bytes(b"planted")  # with a record that matches it
    library.with_name(library.name + ".sha256").write_text(
        f"{hashlib.sha256(b'planted').hexdigest()}  {library.name}\n"
    )
    chown_or_skip(library)
    kernel.load_kernel.cache_clear()
    assert kernel.load_kernel() == ("built", kernel._module_name())
    assert b"planted" not in log["imported"] and library.read_bytes() != b"planted"
    assert os.lstat(library).st_uid == os.geteuid()


def test_folder_owned_by_another_user_is_refused(cache):
    directory, log = cache
    kernel.build_kernel()  # a valid build and record: only the owner is wrong
    chown_or_skip(directory)
    kernel.load_kernel.cache_clear()
    message = fallback_reason()
    assert f"owned by uid {OTHER_UID}" in message and str(directory) in message
    assert log["imported"] == [] and log["compiled"] == 1
    status = kernel.kernel_status()
    assert not status["available"] and f"uid {OTHER_UID}" in status["reason"]


def test_group_writable_folder_is_refused(cache):
    directory, log = cache
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o770)
    assert "writable by group or others (mode 0770)" in fallback_reason()
    assert log["compiled"] == 0
    with pytest.raises(RuntimeError, match="writable by group"):
        kernel.build_kernel()


def test_symlinked_folder_is_refused(cache, tmp_path, monkeypatch):
    _, log = cache
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("CORTEXGNN_KERNEL_DIR", str(tmp_path / "link"))
    assert "is a symbolic link" in fallback_reason()
    assert log["compiled"] == 0 and list(real.iterdir()) == []


def test_symlinked_build_folder_is_refused(cache, tmp_path):
    directory, log = cache
    directory.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (directory / kernel._module_name()).symlink_to(elsewhere)
    assert "is a symbolic link" in fallback_reason()
    assert log["compiled"] == 0


def test_module_name_hashes_source_torch_and_flags(monkeypatch):
    name = kernel._module_name()
    assert re.fullmatch(r"cortexgnn_csr_attention_[0-9a-f]{16}", name)
    assert kernel._module_name(kernel._SOURCE.read_bytes()) == name
    assert kernel._module_name(b"// another kernel") != name
    monkeypatch.setenv("CXX", "clang++")
    assert kernel._module_name() != name
    monkeypatch.delenv("CXX")
    monkeypatch.setattr(kernel, "_CFLAGS", ("-O2",))
    assert kernel._module_name() != name
    monkeypatch.undo()
    import torch

    monkeypatch.setattr(torch, "__version__", "0.0.1")
    assert kernel._module_name() != name


def test_lock_lets_one_of_two_concurrent_builders_compile(cache, monkeypatch):
    _, log = cache
    inside, most_inside = [0], [0]
    compile_stub = kernel._compile

    def slow_compile(source, build_dir, name):
        inside[0] += 1
        most_inside[0] = max(most_inside[0], inside[0])
        time.sleep(0.3)  # long enough for the other thread to reach the lock
        inside[0] -= 1
        return compile_stub(source, build_dir, name)

    monkeypatch.setattr(kernel, "_compile", slow_compile)
    results, errors = [], []

    def use():
        try:
            results.append(kernel._load_or_build(force=False))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert most_inside[0] == 1 and log["compiled"] == 1
    assert sorted(r[0] for r in results) == ["built", "imported"]  # the second loads the first's


@pytest.mark.parametrize(
    ("tools", "reason"),
    [((None, "/usr/bin/ninja"), "no C++ compiler"), (("/usr/bin/c++", None), "ninja")],
)
def test_fallback_warns_once_and_names_the_reason(cache, monkeypatch, tools, reason):
    monkeypatch.setattr(kernel, "_find_tools", lambda: tools)
    assert reason in fallback_reason()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernel.load_kernel() is None  # cached: no second warning
    status = kernel.kernel_status()
    assert not status["available"] and not status["can_build"] and reason in status["reason"]
    with pytest.raises(RuntimeError, match=re.escape(reason)):
        kernel.build_kernel()


def test_build_error_is_reported(cache, monkeypatch):
    def broken(source, build_dir, name):
        raise RuntimeError("error: expected ';' before '}' token")

    monkeypatch.setattr(kernel, "_compile", broken)
    message = fallback_reason()
    assert "failed" in message and "expected ';'" in message
    with pytest.raises(RuntimeError, match="expected ';'"):
        kernel.build_kernel()


def test_no_kernel_environment_switches_it_off_quietly(cache, monkeypatch):
    _, log = cache
    monkeypatch.setenv("CORTEXGNN_NO_KERNEL", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernel.load_kernel() is None
    assert log["compiled"] == 0
    status = kernel.kernel_status()
    assert not status["available"] and "CORTEXGNN_NO_KERNEL=1" in status["reason"]


def test_status_reports_without_building_or_creating(cache):
    directory, log = cache
    status = kernel.kernel_status()
    assert not directory.exists() and log["compiled"] == 0
    assert not status["available"] and status["can_build"] and not status["built"]
    assert "not built yet" in status["reason"] and status["cache_dir"] == str(directory)
    assert status["module"] == kernel._module_name()
    kernel.build_kernel()
    kernel.load_kernel.cache_clear()
    kernel._STATE["module"] = None  # another process: built, verified, not loaded
    status = kernel.kernel_status()
    assert status["available"] and status["built"] and not status["loaded"]
    assert status["library"] == str(library_path(directory))
    library_path(directory).write_bytes(b"truncat")
    assert not kernel.kernel_status()["built"]
    assert log["compiled"] == 1  # status never compiles


def test_build_kernel_force_rebuilds_and_resets_load_kernel(cache):
    _, log = cache
    kernel.build_kernel()
    kernel.build_kernel()
    assert log["compiled"] == 1
    kernel.build_kernel(force=True)
    assert log["compiled"] == 2
    assert kernel.load_kernel() == ("imported", kernel._module_name())


@pytest.mark.slow
def test_real_build_loads_runs_and_recovers_from_a_truncated_library(tmp_path):
    """Processes in turn: the first compiles, a truncation makes the next rebuild, then loads."""
    script = (
        "import torch\n"
        "from cortexgnn.ops.kernel import load_kernel\n"
        "k = load_kernel()\n"
        "q = torch.randn(1, 1, 1, 4); x = torch.randn(1, 1, 1, 4)\n"
        "ptr = torch.tensor([0, 1]); col = torch.tensor([0]); e = q.new_empty(0)\n"
        "out, alpha = k.forward(q, x, ptr, col, e, e, 1.0)\n"  # one edge: alpha = 1, out = x
        "assert torch.allclose(out, x) and torch.allclose(alpha, torch.ones(1, 1, 1))\n"
        "print(k.__name__)\n"
    )
    env = {**os.environ, "CORTEXGNN_KERNEL_DIR": str(tmp_path / "cache")}
    env.pop("CORTEXGNN_NO_KERNEL", None)

    def run():
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0 and "KernelFallbackWarning" not in done.stderr, done.stderr
        return done.stdout.strip(), done.stderr

    name, err = run()
    assert "compiling the C++ attention kernel" in err
    library = tmp_path / "cache" / name / f"{name}.so"
    library.write_bytes(library.read_bytes()[:4096])  # what used to kill later processes: SIGBUS
    second, err = run()
    assert second == name and "does not match the SHA-256" in err
    third, err = run()
    assert third == name and "compiling" not in err


@pytest.mark.parametrize(
    "mode, refused", [(0o777, "writable by others without the sticky bit"), (0o1777, None)]
)
def test_a_parent_others_can_write_is_refused_unless_sticky(cache, tmp_path, monkeypatch, mode,
                                                            refused):  # fmt: skip
    _, log = cache
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    monkeypatch.setenv("CORTEXGNN_KERNEL_DIR", str(shared / "me" / "kernels"))
    if refused:
        message = fallback_reason()
        assert refused in message and f"its parent {shared}" in message
        assert log["compiled"] == 0 and list(shared.iterdir()) == []
    else:  # like /tmp: others may create names there, but not rename ours
        assert kernel.load_kernel() == ("built", kernel._module_name())


def test_a_symlinked_or_foreign_parent_is_refused(cache, tmp_path, monkeypatch):
    _, log = cache
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("CORTEXGNN_KERNEL_DIR", str(tmp_path / "link" / "kernels"))
    message = fallback_reason()
    assert f"its parent {tmp_path / 'link'} is a symbolic link" in message
    assert log["compiled"] == 0 and list(real.iterdir()) == []
    monkeypatch.setenv("CORTEXGNN_KERNEL_DIR", str(real / "kernels"))
    chown_or_skip(real)
    kernel.load_kernel.cache_clear()
    assert f"owned by uid {OTHER_UID}" in fallback_reason()


def test_the_import_loads_a_private_copy_of_exactly_the_verified_bytes(cache, monkeypatch):
    directory, log = cache
    kernel.build_kernel()
    library = library_path(directory)
    verified = library.read_bytes()
    seen = []
    monkeypatch.setattr(kernel, "_import_library", lambda path, name: seen.append(path) or name)
    kernel.load_kernel.cache_clear()
    assert kernel.load_kernel() == kernel._module_name()
    (copy,) = seen
    assert copy != library and copy.parent.parent == library.parent and not copy.exists()

    check = kernel._check_library

    def check_then_swap(build_dir, name):  # another writer between the check and the load
        result = check(build_dir, name)
        library.write_bytes(b"swapped in after the check")
        return result

    monkeypatch.setattr(kernel, "_check_library", check_then_swap)
    kernel.load_kernel.cache_clear()
    assert "changed after it was verified" in fallback_reason()
    assert len(seen) == 1 and verified != library.read_bytes()
