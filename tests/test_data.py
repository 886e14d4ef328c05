"""Datasets: shapes, value ranges, the digits split, the torchvision IDX path, clear errors."""

from __future__ import annotations

import os
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from cortexgnn.train.data import DATASETS, DatasetNotFoundError, default_data_dir, load_dataset


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes (magic 0x08, then the number of dimensions)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_tiny_mnist(root: Path, num_train: int = 40, num_test: int = 20, size: int = 28):
    """Tiny random MNIST files in ``root/MNIST/raw``, the layout torchvision reads.

    Returns the four arrays ``(train_images, train_labels, test_images, test_labels)``.
    """
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = []
    for prefix, count in (("train", num_train), ("t10k", num_test)):
        images = rng.integers(0, 256, size=(count, size, size), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8) % 10
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays += [images, labels]
    return tuple(arrays)


def test_digits_shapes_range_and_labels():
    train, test = load_dataset("digits")
    assert train.x.shape == (1437, 64) and test.x.shape == (360, 64)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.long
    assert train.x.min() == 0 and train.x.max() == 1
    assert set(train.y.tolist()) == set(range(10)) == set(test.y.tolist())


def test_digits_split_is_fixed_and_a_partition():
    from sklearn.datasets import load_digits

    train, test = load_dataset("digits")
    again, _ = load_dataset("digits")
    assert torch.equal(train.x, again.x) and torch.equal(train.y, again.y)
    rows = torch.cat([train.x, test.x]) * 16  # back to the 0..16 pixel values
    labels = torch.cat([train.y, test.y])
    ours = Counter(zip(map(tuple, rows.round().int().tolist()), labels.tolist(), strict=True))
    bunch = load_digits()
    original = Counter(
        zip(map(tuple, bunch.data.astype(int).tolist()), bunch.target.tolist(), strict=True)
    )
    assert ours == original


def test_mnist_through_torchvision_idx_files(tmp_path):
    train_images, train_labels, test_images, test_labels = write_tiny_mnist(tmp_path)
    train, test = load_dataset("mnist", tmp_path)
    assert train.x.shape == (40, 784) and test.x.shape == (20, 784)
    # ToTensor() + flatten: uint8 / 255, row-major
    expected = torch.from_numpy(train_images.reshape(40, -1)).float() / 255
    torch.testing.assert_close(train.x, expected)
    assert train.y.tolist() == train_labels.tolist()
    assert test.y.tolist() == test_labels.tolist()
    torch.testing.assert_close(test.x[3], torch.from_numpy(test_images[3]).flatten() / 255)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_missing_dataset_names_path_and_remedy(tmp_path, name, folder):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / folder / "raw") in message
    assert "--download" in message and "\n" not in message


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    assert "digits" in DATASETS


def test_default_data_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CORTEXGNN_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("CORTEXGNN_DATA_DIR")
    assert default_data_dir() == Path("data")


def test_fashion_mnist_offline_copy(fashion_mnist_dir):
    train, test = load_dataset("fashion-mnist", fashion_mnist_dir)
    assert train.x.shape == (60000, 784) and test.x.shape == (10000, 784)
    assert 0 <= float(train.x.min()) and float(train.x.max()) <= 1
    assert torch.bincount(test.y).tolist() == [1000] * 10


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")  # fmt: skip


def test_dataset_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of digits, mnist, fashion-mnist"):
        load_dataset("fashion", "unused")


@pytest.mark.parametrize("present", [(), IDX_FILES[2:], IDX_FILES])
def test_dataset_missing_partial_or_corrupt_directory(tmp_path, present):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in present:  # files that exist but hold no valid IDX data
        (raw / name).write_bytes(b"\x00\x00\x08\x03 not an idx file")
    with pytest.raises(DatasetNotFoundError, match=r"FashionMNIST/raw.*--download"):
        load_dataset("fashion-mnist", tmp_path)


def test_a_failed_download_removes_what_it_created(tmp_path, monkeypatch):
    from torchvision import datasets

    def offline(self):
        os.makedirs(self.raw_folder, exist_ok=True)  # as a real download starts
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(datasets.MNIST, "download", offline)
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError, match="the download failed"):
        load_dataset("mnist", data_dir, download=True)
    assert not data_dir.exists()
    kept = tmp_path / "kept"
    kept.mkdir()  # a folder the user made stays; only what the download made goes
    with pytest.raises(DatasetNotFoundError):
        load_dataset("mnist", kept, download=True)
    assert kept.is_dir() and not (kept / "MNIST").exists()
