"""The two-item task: are the two images in opposite corners of a canvas of the same class?

A task that needs many hops. Each sample is a square canvas, blank but for two items of an
image dataset: one in the top-left corner, one in the bottom-right. The label is 1 when the
two items share a class, else 0. A model whose answer is read from one place on the canvas
(one column of a grid of patch columns, say) has to bring both items there.

- ``two-items-fashion-mnist``: 28 x 28 Fashion-MNIST items on a 56 x 56 canvas (3,136
  features); 60,000 training pairs from the training images, 10,000 test pairs from the
  test images.
- ``two-items-digits``: scikit-learn's 8 x 8 digits on a 16 x 16 canvas (256 features),
  offline; 4,000 training pairs and 1,000 test pairs.

The pairs are deterministic: a fixed seed (:data:`PAIRS_SEED`, never the training seed)
draws them, exactly half of each split are same-class pairs (the odd one out of an odd
count is a different-class pair), and test pairs are drawn only from the test split, so no
test item was ever seen in training. :func:`cortexgnn.train.data.load_dataset` loads them by
these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["PAIRS_SEED", "TASKS", "TwoItemTask", "compose", "make_pairs"]

#: seed of the pairs: the same pairs for every run, whatever its training seed
PAIRS_SEED = 0


@dataclass(frozen=True)
class TwoItemTask:
    """One two-item dataset: the item dataset, the canvas side and the number of pairs."""

    items: str
    canvas: int
    num_train: int
    num_test: int


#: ``--dataset`` name -> its task
TASKS = {
    "two-items-digits": TwoItemTask("digits", canvas=16, num_train=4000, num_test=1000),
    "two-items-fashion-mnist": TwoItemTask(
        "fashion-mnist", canvas=56, num_train=60_000, num_test=10_000
    ),
}


def make_pairs(labels: Tensor, num_pairs: int, seed: int = PAIRS_SEED) -> tuple[Tensor, ...]:
    """``(first, second, same)``: item indices of ``num_pairs`` pairs and their labels.

    ``num_pairs // 2`` pairs share a class, the rest do not, in a seeded random order. The
    second item of a same-class pair is another image of the first one's class (a
    different index when the class has more than one image).

    Raises:
        ValueError: ``num_pairs < 2``, or fewer than two classes to draw different pairs.
    """
    import torch

    if num_pairs < 2:
        raise ValueError(f"num_pairs must be >= 2 (one of each kind), got {num_pairs}")
    classes = labels.unique()  # [K]
    if classes.numel() < 2:
        raise ValueError("the items have a single class: no different-class pair exists")
    generator = torch.Generator().manual_seed(seed)
    num_same = num_pairs // 2
    same = torch.zeros(num_pairs, dtype=torch.long)  # [P]
    same[:num_same] = 1
    same = same[torch.randperm(num_pairs, generator=generator)]
    first = torch.randint(len(labels), (num_pairs,), generator=generator)  # [P]
    second = torch.empty_like(first)  # [P]
    members = {int(c): (labels == c).nonzero().flatten() for c in classes}
    others = {int(c): (labels != c).nonzero().flatten() for c in classes}
    picks = torch.rand(num_pairs, generator=generator)  # [P] uniform in [0, 1)
    for k in range(num_pairs):
        label = int(labels[first[k]])
        if same[k]:
            pool = members[label]
            if pool.numel() > 1:  # another image of the class, never the item itself
                pool = pool[pool != first[k]]
        else:
            pool = others[label]
        second[k] = pool[int(picks[k] * pool.numel())]
    return first, second, same


def compose(images: Tensor, first: Tensor, second: Tensor, canvas: int) -> Tensor:
    """Canvases ``[P, canvas * canvas]``: two items in opposite corners, zeros elsewhere.

    Args:
        images: ``[num_items, side * side]`` flattened square items.
        first: ``[P]`` indices of the items placed in the top-left corner.
        second: ``[P]`` indices of the items placed in the bottom-right corner.
        canvas: the canvas side; at least twice the item side, so the items never touch.
    """
    import torch

    side = math.isqrt(images.size(1))
    if side * side != images.size(1):
        raise ValueError(f"items must be square images, got {images.size(1)} features")
    if canvas < 2 * side:
        raise ValueError(f"canvas must be >= 2 x the item side ({2 * side}), got {canvas}")
    items = images.unflatten(1, (side, side))  # [num_items, side, side]
    out = torch.zeros(len(first), canvas, canvas, dtype=images.dtype)  # [P, canvas, canvas]
    out[:, :side, :side] = items[first]
    out[:, canvas - side :, canvas - side :] = items[second]
    return out.flatten(1)  # [P, canvas * canvas]
