"""The two-item task: balanced, deterministic pairs on a canvas; test pairs from the test split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_data import write_idx

from cortexgnn.train.data import DATASETS, load_dataset
from cortexgnn.train.two_items import TASKS, compose, make_pairs


def test_pairs_are_balanced_labelled_by_class_and_deterministic():
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3])
    first, second, same = make_pairs(labels, 101, seed=3)
    assert int(same.sum()) == 50  # half same (the odd pair out is different)
    assert torch.equal(same, (labels[first] == labels[second]).long())
    # an item is paired with itself only when its class has no other image (class 3)
    selves = (first == second) & (same == 1)
    assert bool((labels[first[selves]] == 3).all())
    again = make_pairs(labels, 101, seed=3)
    assert all(torch.equal(a, b) for a, b in zip((first, second, same), again, strict=True))
    other = make_pairs(labels, 101, seed=4)
    assert not torch.equal(first, other[0])
    with pytest.raises(ValueError, match="single class"):
        make_pairs(torch.zeros(5, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="num_pairs must be >= 2"):
        make_pairs(labels, 1)


def test_compose_puts_the_items_in_opposite_corners_and_nothing_else():
    images = torch.arange(1, 2 * 9 + 1, dtype=torch.float32).reshape(2, 9)  # two 3 x 3 items
    canvas = compose(images, torch.tensor([0]), torch.tensor([1]), 7).reshape(7, 7)
    expected = torch.zeros(7, 7)
    expected[:3, :3] = images[0].reshape(3, 3)
    expected[4:, 4:] = images[1].reshape(3, 3)
    assert torch.equal(canvas, expected)
    with pytest.raises(ValueError, match="canvas must be >= 2 x the item side"):
        compose(images, torch.tensor([0]), torch.tensor([1]), 5)


def _corners(split, side, canvas):
    grid = split.x.reshape(-1, canvas, canvas)
    top_left = grid[:, :side, :side].flatten(1)
    bottom_right = grid[:, canvas - side :, canvas - side :].flatten(1)
    return top_left, bottom_right


def _lookup(items):
    return {tuple(row.tolist()): int(label) for row, label in zip(items.x, items.y, strict=True)}


def test_digits_task_offline_test_pairs_only_from_the_test_split():
    assert "two-items-digits" in DATASETS
    train, test = load_dataset("two-items-digits")
    task = TASKS["two-items-digits"]
    assert train.x.shape == (task.num_train, 256) and test.x.shape == (task.num_test, 256)
    assert int(train.y.sum()) == task.num_train // 2 and int(test.y.sum()) == task.num_test // 2
    items_train, items_test = load_dataset("digits")
    test_items, train_items = _lookup(items_test), _lookup(items_train)
    for split, pool in ((test, test_items), (train, train_items)):
        a, b = _corners(split, 8, 16)
        labels = [
            (pool[tuple(u.tolist())], pool[tuple(v.tolist())]) for u, v in zip(a, b, strict=True)
        ]
        assert split.y.tolist() == [int(u == v) for u, v in labels]
    # the middle of the canvas is blank
    middle = test.x.reshape(-1, 16, 16)
    assert middle[:, :8, 8:].abs().sum() == 0 and middle[:, 8:, :8].abs().sum() == 0
    again, _ = load_dataset("two-items-digits")
    assert torch.equal(again.x, train.x) and torch.equal(again.y, train.y)


def test_fashion_task_reads_the_idx_files_and_places_28_pixel_items_on_56(tmp_path, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, count in (("train", 30), ("t10k", 20)):
        arrays[prefix] = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", arrays[prefix])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(count, dtype=np.uint8) % 3)
    small = TASKS["two-items-fashion-mnist"].__class__("fashion-mnist", 56, 40, 12)
    monkeypatch.setitem(TASKS, "two-items-fashion-mnist", small)
    train, test = load_dataset("two-items-fashion-mnist", tmp_path)
    assert train.x.shape == (40, 56 * 56) and test.x.shape == (12, 56 * 56)
    test_images = {tuple((a / 255.0).astype(np.float32).flatten().tolist()) for a in arrays["t10k"]}
    a, b = _corners(test, 28, 56)
    assert all(tuple(u.tolist()) in test_images for u in a)
    assert all(tuple(v.tolist()) in test_images for v in b)
