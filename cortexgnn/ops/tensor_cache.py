"""Memoise what is derived from a tensor (a CSR, a self-looped copy) by its identity.

A model calls its layers with the same ``edge_index`` buffer on every step, so sorting it
into a CSR or adding self loops once per tensor, not once per call, saves that work on
every forward. An entry is keyed on the tensor object and its in-place version counter,
and dies with the tensor (a weak reference), so a new or edited graph is never served
a stale result.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from torch import Tensor

__all__ = ["TensorCache"]

Value = TypeVar("Value")


class TensorCache(Generic[Value]):
    """``get(tensor, key, build)``: ``build()`` once per live tensor, version and ``key``."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, Hashable], tuple[weakref.ref, int, Value]] = {}

    def get(self, tensor: Tensor, key: Hashable, build: Callable[[], Value]) -> Value:
        """The cached value for ``(tensor, key)``, built by ``build()`` on a miss."""
        slot = (id(tensor), key)
        hit = self._entries.get(slot)
        if hit is not None and hit[0]() is tensor and hit[1] == tensor._version:
            return hit[2]
        value = build()
        entries = self._entries  # the callback must not keep the cache object alive
        ref = weakref.ref(tensor, lambda _: entries.pop(slot, None))
        self._entries[slot] = (ref, tensor._version, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)
