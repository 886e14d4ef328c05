import gc

import torch

from cortexgnn.nn.conv_inputs import with_self_loops
from cortexgnn.ops.tensor_cache import TensorCache


def test_builds_once_per_tensor_key_and_version():
    cache, calls = TensorCache(), []

    def build():
        calls.append(1)
        return len(calls)

    tensor = torch.zeros(3)
    assert cache.get(tensor, "a", build) == 1
    assert cache.get(tensor, "a", build) == 1  # hit
    assert cache.get(tensor, "b", build) == 2  # another key
    assert cache.get(torch.zeros(3), "a", build) == 3  # an equal but other tensor
    tensor.add_(1)  # in-place edit: a new version
    assert cache.get(tensor, "a", build) == 4


def test_entries_die_with_their_tensor():
    cache = TensorCache()
    tensor = torch.zeros(2)
    cache.get(tensor, None, lambda: "value")
    assert len(cache) == 1
    del tensor
    gc.collect()
    assert len(cache) == 0


def test_self_loops_are_cached_without_weights_only():
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 1, 1]])
    looped, weight = with_self_loops(edge_index, None, 3)
    assert weight is None
    assert with_self_loops(edge_index, None, 3)[0] is looped
    assert looped.tolist() == [[0, 1, 2, 0, 1, 2], [1, 0, 1, 0, 1, 2]]  # the 1 -> 1 loop replaced
    weighted, w = with_self_loops(edge_index, torch.tensor([0.5, 2.0, 3.0, 4.0]), 3)
    assert torch.equal(weighted, looped) and w.tolist() == [0.5, 2.0, 4.0, 1.0, 1.0, 1.0]
    edge_index[0, 0] = 2  # an edited graph is looped anew
    assert with_self_loops(edge_index, None, 3)[0][0, 0] == 2
