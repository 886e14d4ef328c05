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


def shared_data_dir() -> Path:
    """The offline datasets: ``$CORTEXGNN_DATA_DIR`` or ``../shared/data`` beside the repo."""
    return Path(os.environ.get("CORTEXGNN_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def data_dir() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"offline datasets not found at {path}")
    return path
