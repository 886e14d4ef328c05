"""Datasets for training: whole splits as in-memory ``[num_samples, in_dim]`` tensors.

Three image-classification sets, all flattened to vectors in ``[0, 1]`` as the article's
``ToTensor()`` + ``flatten`` does (no normalisation):

- ``digits``: the 8x8 handwritten digits shipped inside scikit-learn (1,797 images, 64
  features, pixel values 0..16 divided by 16). No download, so it is the offline default; the
  split is a fixed seeded permutation: 1,437 training and 360 test images.
- ``mnist`` and ``fashion-mnist``: 28x28 images (784 features, ``uint8 / 255``) read by
  torchvision from ``<data_dir>/MNIST/raw`` or ``<data_dir>/FashionMNIST/raw``.
- ``two-items-digits`` and ``two-items-fashion-mnist``: two items on a larger canvas,
  labelled same class or not (:mod:`cortexgnn.train.two_items`).

Keeping whole splits as tensors (a few hundred MB at most) lets the training loop draw a batch
with one index operation instead of a Python ``DataLoader`` collating 128 samples.

torch is imported when a dataset is loaded, not with this module: the command line reads
:data:`DATASETS` without paying for it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .two_items import TASKS as _TWO_ITEM_TASKS

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "STUDY_VAL_SIZE",
    "Split",
    "VALIDATION_SEED",
    "default_data_dir",
    "load_dataset",
    "validation_split",
]

DATASETS = ("digits", "mnist", "fashion-mnist", *_TWO_ITEM_TASKS)
DATA_DIR_ENV = "CORTEXGNN_DATA_DIR"
DIGITS_TEST_SIZE = 360  # ~20 % of the 1,797 images
DIGITS_SPLIT_SEED = 0  # the split never depends on the training seed
#: the validation split's seed: fixed, so every run of a study holds out the same images
VALIDATION_SEED = 0
#: training images a study holds out for validation (Fashion-MNIST: 55,000 remain)
STUDY_VAL_SIZE = 5000


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk; the message names the path looked at and how to get it."""


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Attributes:
        x: ``[num_samples, in_dim]`` float32 features in ``[0, 1]``.
        y: ``[num_samples]`` int64 class labels in ``0..num_classes-1``.
    """

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return self.y.numel()


def default_data_dir() -> Path:
    """``$CORTEXGNN_DATA_DIR`` if set, else ``./data``."""
    return Path(os.environ.get(DATA_DIR_ENV, "data"))


def _load_digits() -> tuple[Split, Split]:
    import torch

    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DatasetNotFoundError(
            "the 'digits' dataset ships with scikit-learn, which is not installed: "
            "pip install 'cortexgnn[train]' (or scikit-learn)"
        ) from err
    bunch = load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0  # [1797, 64]
    y = torch.as_tensor(bunch.target, dtype=torch.long)  # [1797]
    generator = torch.Generator().manual_seed(DIGITS_SPLIT_SEED)
    order = torch.randperm(y.numel(), generator=generator)
    test, train = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    return Split(x[train], y[train]), Split(x[test], y[test])


def _load_torchvision(name: str, data_dir: Path, download: bool) -> tuple[Split, Split]:
    import torch
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]
    raw = data_dir / cls.__name__ / "raw"
    # the folders a download would create: removed again if it fails, nothing left behind
    created = [p for p in (data_dir, data_dir / cls.__name__, raw) if not p.exists()]
    splits = []
    for train in (True, False):
        try:
            images = cls(str(data_dir), train=train, download=download)
        except (RuntimeError, OSError) as err:  # "Dataset not found ...", a failed download
            if download and created:
                shutil.rmtree(created[0], ignore_errors=True)
            how = (
                "the download failed (offline?)"
                if download
                else "pass --download to fetch it with torchvision"
            )
            raise DatasetNotFoundError(
                f"{name} not found in {raw} (it needs the uncompressed IDX files "
                "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                f"t10k-labels-idx1-ubyte): {how}, or put them there (gunzip the .gz files) "
                f"and point --data-dir at {data_dir}"
            ) from err
        x = images.data.flatten(1).to(torch.float32) / 255.0  # [num_samples, 784]
        splits.append(Split(x, images.targets.to(torch.long)))
    return splits[0], splits[1]


def _load_two_items(name: str, data_dir, download: bool) -> tuple[Split, Split]:
    """A two-item task: training pairs from the items' training split, test pairs from test."""
    from .two_items import PAIRS_SEED, compose, make_pairs

    task = _TWO_ITEM_TASKS[name]
    splits = load_dataset(task.items, data_dir, download=download)
    out = []
    # a different seed per split, so the test pairs are not the training pairs' positions
    for offset, (items, count) in enumerate(
        zip(splits, (task.num_train, task.num_test), strict=True)
    ):
        first, second, same = make_pairs(items.y, count, PAIRS_SEED + offset)
        out.append(Split(compose(items.x, first, second, task.canvas), same))
    return out[0], out[1]


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, *, download: bool = False
) -> tuple[Split, Split]:
    """The training and test splits of dataset ``name``.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: root holding ``MNIST/raw`` or ``FashionMNIST/raw`` (ignored for
            ``digits`` and ``two-items-digits``); ``None`` means :func:`default_data_dir`.
        download: let torchvision download a missing MNIST/Fashion-MNIST.

    Returns:
        ``(train, test)`` splits.

    Raises:
        ValueError: unknown ``name``.
        DatasetNotFoundError: the files are missing.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "digits":
        return _load_digits()
    if name in _TWO_ITEM_TASKS:
        return _load_two_items(name, data_dir, download)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return _load_torchvision(name, root, download)


def validation_split(train: Split, size: int, seed: int = VALIDATION_SEED) -> tuple[Split, Split]:
    """``(train, validation)``: ``size`` training images held out for every choice of a study.

    The held-out images are a seeded permutation's first ``size`` indices, so the split
    depends on ``seed`` alone (never on the training seed); the remaining images keep their
    original order. The test split is untouched: a study evaluates it once, at the end.

    Raises:
        ValueError: ``size`` is not in ``1 .. len(train) - 1``.
    """
    import torch

    if not 1 <= size < len(train):
        raise ValueError(
            f"val_size must lie in 1..{len(train) - 1} (the training split has "
            f"{len(train)} images), got {size}"
        )
    generator = torch.Generator().manual_seed(seed)
    held_out = torch.randperm(len(train), generator=generator)[:size]  # [size]
    keep = torch.ones(len(train), dtype=torch.bool)  # [num_train]
    keep[held_out] = False
    held_out = held_out.sort().values
    return Split(train.x[keep], train.y[keep]), Split(train.x[held_out], train.y[held_out])
