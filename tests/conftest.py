"""Shared test setup: every test is seeded and single-threaded (fast on a busy 2-core box)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
# Without a GPU the Triton kernels are tested in Triton's CPU interpreter, which must be on
# before triton is first imported (triton.language jits its own helpers at import time).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


def offline_data_dir() -> Path:
    """The offline datasets: ``$CORTEXGNN_DATA_DIR``, else ``data/`` in the checkout, else a
    ``shared/data`` folder beside the checkout (where this project's machines keep them)."""
    if "CORTEXGNN_DATA_DIR" in os.environ:
        return Path(os.environ["CORTEXGNN_DATA_DIR"])
    local = REPO_ROOT / "data"
    return local if local.is_dir() else REPO_ROOT.parent / "shared" / "data"


#: what a test that needs a dataset says when it is missing: where it looked, how to get it
HOW_TO_GET = {
    "Planetoid/Cora/raw": "`python -m benchmarks run cora --download --data-dir DIR` fetches "
    "it with PyG's Planetoid",
    "FashionMNIST/raw": "`cortexgnn train --dataset fashion-mnist --download --data-dir DIR` "
    "fetches it with torchvision",
}


def need_dataset(folder: str) -> Path:
    """The data folder holding ``folder``, or skip the test saying where it looked and how
    to get the dataset (then set ``CORTEXGNN_DATA_DIR=DIR``)."""
    root = offline_data_dir()
    if not (root / folder).is_dir():
        pytest.skip(f"needs {folder} under {root} (set CORTEXGNN_DATA_DIR to a folder holding "
                    f"it): {HOW_TO_GET[folder]}")  # fmt: skip
    return root


def _checkout_entries() -> set[str]:
    """What the checkout's top folder holds, but for caches and hidden tool folders."""
    return {
        p.name
        for p in REPO_ROOT.iterdir()
        if not p.name.startswith(".") and p.name != "__pycache__" and p.suffix != ".egg-info"
    }


@pytest.fixture(autouse=True, scope="session")
def _tests_write_nothing_into_the_checkout():
    """Tests write into temporary folders only: a file they leave in the checkout fails."""
    before = _checkout_entries()
    yield
    left = _checkout_entries() - before
    assert not left, f"the tests wrote {sorted(left)} into {REPO_ROOT}: use tmp_path"


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def cora_dir() -> Path:
    return need_dataset("Planetoid/Cora/raw")


@pytest.fixture
def fashion_mnist_dir() -> Path:
    return need_dataset("FashionMNIST/raw")
