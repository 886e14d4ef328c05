"""The benchmarks' datasets: found under ``--data-dir``, or downloaded by their library.

This module imports nothing from ``cortexgnn``: ``compare_commits`` workers load Cora with
it while importing the package from another commit's tree.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CORA_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


class DataNotFound(RuntimeError):
    """A dataset is missing; the message says where it was looked for and how to get it."""


def default_data_dir() -> Path:
    """``$CORTEXGNN_DATA_DIR``, else ``data`` (the ``cortexgnn train`` default)."""
    return Path(os.environ.get("CORTEXGNN_DATA_DIR", "data"))


def cora_raw_dir(data_dir: str | os.PathLike) -> Path:
    """Where Cora's raw Planetoid files live under ``data_dir``."""
    return Path(data_dir) / "Planetoid" / "Cora" / "raw"


def has_cora(data_dir: str | os.PathLike) -> bool:
    """Whether every raw Cora file is under ``data_dir``."""
    raw = cora_raw_dir(data_dir)
    return all((raw / f"ind.cora.{name}").is_file() for name in CORA_FILES)


def load_cora(data_dir: str | os.PathLike, cache_dir: str | os.PathLike, *, download=False):
    """Cora (standard Planetoid split) with row-normalised features.

    Raw files already under ``<data_dir>/Planetoid/Cora/raw`` are linked into
    ``cache_dir`` and never written to. Without them, ``download=True`` lets PyG's
    ``Planetoid`` fetch them into ``<data_dir>/Planetoid/Cora`` (what it created is
    removed again if the download fails).

    Raises:
        DataNotFound: the files are missing (and not downloaded), or the download failed.
    """
    import torch_geometric.transforms as T
    from torch_geometric.datasets import Planetoid

    data_dir = Path(data_dir)
    raw = cora_raw_dir(data_dir)
    transform = T.NormalizeFeatures()
    if has_cora(data_dir):
        root = Path(cache_dir) / "Planetoid"
        (root / "Cora").mkdir(parents=True, exist_ok=True)
        link = root / "Cora" / "raw"
        if not link.exists():
            link.symlink_to(raw.resolve(), target_is_directory=True)
        return Planetoid(str(root), "Cora", transform=transform)[0]
    if not download:
        raise DataNotFound(
            f"Cora not found in {raw}: pass --download to fetch it with PyG's Planetoid, or "
            "--data-dir to a folder holding Planetoid/Cora/raw"
        )
    created = [p for p in (data_dir, data_dir / "Planetoid", raw.parent, raw) if not p.exists()]
    try:
        return Planetoid(str(data_dir / "Planetoid"), "Cora", transform=transform)[0]
    except Exception as err:  # urllib, socket and HTTP errors alike: the network failed
        # undo what the failed download created: only folders that did not exist before
        if created:
            shutil.rmtree(created[0], ignore_errors=True)
        raise DataNotFound(
            f"could not download Cora into {raw} ({type(err).__name__}: {err}); offline, pass "
            "--data-dir to a folder holding Planetoid/Cora/raw"
        ) from None
