"""``TensorCache``: keyed on storage and shape, served only while the content is unchanged."""

from __future__ import annotations

import pytest
import torch
from torch_geometric import EdgeIndex

from cortexgnn.nn.conv import _with_self_loops
from cortexgnn.ops.tensor_cache import TensorCache


def counting_build():
    calls = []

    def build():
        calls.append(1)
        return len(calls)

    return build


def test_builds_once_per_tensor_and_key():
    cache, build = TensorCache(), counting_build()
    tensor = torch.zeros(3)
    assert cache.get(tensor, "a", build) == 1
    assert cache.get(tensor, "a", build) == 1  # hit
    assert cache.get(tensor, "b", build) == 2  # another key
    assert cache.get(torch.zeros(3), "a", build) == 3  # equal content, other storage
    assert cache.get(tensor[:2], "a", build) == 4  # same storage, other shape


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.add_(1),
        lambda t: t.data.__setitem__(0, 5.0),  # no version bump through .data
        lambda t: t.numpy().__setitem__(1, 7.0),  # nor through a NumPy view
    ],
    ids=["in_place", "data", "numpy"],
)
def test_an_edited_tensor_is_never_served_stale(edit):
    cache, build = TensorCache(), counting_build()
    tensor = torch.zeros(3)
    assert cache.get(tensor, None, build) == 1
    edit(tensor)
    assert cache.get(tensor, None, build) == 2
    assert cache.get(tensor, None, build) == 2  # the new content is cached in turn


def test_least_recently_used_entry_is_dropped():
    cache, build = TensorCache(max_entries=2), counting_build()
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    cache.get(a, None, build), cache.get(b, None, build)
    cache.get(a, None, build)  # a is now the most recent
    cache.get(c, None, build)  # drops b
    assert len(cache) == 2
    assert cache.get(a, None, build) == 1 and cache.get(b, None, build) == 4


def test_plain_tensors_only():
    edge_index = EdgeIndex(torch.tensor([[0, 1], [1, 0]]), sparse_size=(2, 2))
    with pytest.raises(TypeError, match="plain tensors, got EdgeIndex.*as_plain_tensor"):
        TensorCache().get(edge_index, None, lambda: None)


def test_a_value_built_under_inference_mode_is_an_ordinary_tensor():
    cache = TensorCache()
    with torch.inference_mode():
        tensor = torch.arange(3)
        value = cache.get(tensor, None, lambda: tensor * 2)
    assert not value.is_inference()
    weight = torch.ones(3, requires_grad=True)
    (weight * value).sum().backward()  # autograd may save it
    assert weight.grad.tolist() == [0.0, 2.0, 4.0]


def test_self_loops_are_cached_without_weights_only():
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 1, 1]])
    looped, weight = _with_self_loops(edge_index, None, 3)
    assert weight is None
    assert _with_self_loops(edge_index, None, 3)[0] is looped
    assert looped.tolist() == [[0, 1, 2, 0, 1, 2], [1, 0, 1, 0, 1, 2]]  # 1 -> 1 replaced
    weighted, w = _with_self_loops(edge_index, torch.tensor([0.5, 2.0, 3.0, 4.0]), 3)
    assert torch.equal(weighted, looped) and w.tolist() == [0.5, 2.0, 4.0, 1.0, 1.0, 1.0]
    edge_index.numpy()[0, 0] = 2  # an edited graph is looped anew
    assert _with_self_loops(edge_index, None, 3)[0][0, 0] == 2
