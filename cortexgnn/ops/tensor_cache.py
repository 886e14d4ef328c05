"""Memoise what is derived from a graph tensor (a CSR, a self-looped copy), keyed on content.

A model calls its layer with the same ``edge_index`` on every iteration and every step, so
sorting it into a CSR once, not once per call, saves that work on every forward. An entry
is found by the tensor's storage address, shape and device, and served only while the
tensor still holds the values it was built from: every lookup compares the tensor with a
snapshot taken at build time (one ``[2, E]`` comparison, ``O(E)`` and far cheaper than the
attention that follows). So an edit of any kind (in place, through ``.data``, through a
NumPy view) or a new tensor at a recycled address is never served a stale result, and no
version counter is read (inference tensors have none).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import torch
from torch import Tensor

__all__ = ["TensorCache"]

Value = TypeVar("Value")


class TensorCache(Generic[Value]):
    """``get(tensor, key, build)``: ``build()`` once per tensor content and ``key``.

    Args:
        max_entries: entries kept, least recently used dropped first.
    """

    def __init__(self, max_entries: int = 8) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[Tensor, Value]] = OrderedDict()

    def get(self, tensor: Tensor, key: Hashable, build: Callable[[], Value]) -> Value:
        """The cached value for ``(tensor, key)``, built by ``build()`` on a miss."""
        if type(tensor) is not Tensor:
            raise TypeError(
                f"TensorCache keys on plain tensors, got {type(tensor).__name__}: unwrap it "
                f"first (cortexgnn.graph.as_plain_tensor for an EdgeIndex)"
            )
        tensor = tensor.detach()
        slot = (tensor.data_ptr(), tuple(tensor.shape), tensor.dtype, tensor.device, key)
        hit = self._entries.get(slot)
        if hit is not None and torch.equal(hit[0], tensor):
            self._entries.move_to_end(slot)
            return hit[1]
        # Built outside inference mode, so that what is cached under torch.inference_mode()
        # is an ordinary tensor that autograd may later save for a backward pass.
        with torch.inference_mode(False):
            value = build()
            snapshot = tensor.clone()
        self._entries[slot] = (snapshot, value)
        self._entries.move_to_end(slot)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)
