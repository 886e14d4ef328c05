"""``cortexgnn.ops.attention``: folded attention on every backend against the loop oracle."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import warnings

import pytest
import torch
from oracles import folded_attention_oracle

from cortexgnn import ColumnAttentionConv
from cortexgnn.graph import small_world_graph
from cortexgnn.ops.attention import AttentionGraph, attention_graph, folded_attention
from cortexgnn.ops.kernel import load_kernel

needs_kernel = pytest.mark.skipif(load_kernel() is None, reason="C++ kernel cannot be built here")
BACKENDS = ["dense", "torch", pytest.param("cpp", marks=needs_kernel)]


def random_graph_case(num_nodes=12, batch=3, heads=2, features=5, isolated=True):
    edge_index = small_world_graph(num_nodes, 4, 0.3, seed=3)
    if isolated:  # drop every edge into node 0 and add a duplicate edge 2 -> 1
        edge_index = edge_index[:, edge_index[1] != 0]
        edge_index = torch.cat([edge_index, torch.tensor([[2], [1]])], dim=1)
    edge_index = edge_index[:, torch.randperm(edge_index.size(1))]  # any order is allowed
    query = torch.randn(num_nodes, batch, heads, features, dtype=torch.float64)
    x = torch.randn(num_nodes, batch, features, dtype=torch.float64)
    weight = torch.rand(edge_index.size(1), dtype=torch.float64)
    return query, x, edge_index, weight


def float32(t):
    """A float tensor in float32; an index tensor unchanged."""
    return t.float() if t.is_floating_point() else t


def attend(query, x, edge_index, weight=None, **kwargs):
    return folded_attention(query, x, attention_graph(edge_index, x.size(0)), weight, **kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("per_head", [False, True])
def test_matches_the_oracle_with_isolated_node_and_parallel_edges(backend, weighted, per_head):
    query, x, edge_index, weight = random_graph_case()
    if per_head:
        x = torch.randn(*query.shape, dtype=query.dtype)  # [N, B, H, F]: one row per head
    if backend == "cpp":  # the kernel is float32-only
        query, x, weight = query.float(), x.float(), weight.float()
    w = weight if weighted else None
    out = attend(query, x, edge_index, w, scale=0.4, backend=backend)
    expected = folded_attention_oracle(query, x, edge_index, w, scale=0.4)
    tol = 1e-5 if backend == "cpp" else 1e-10
    torch.testing.assert_close(out, expected, atol=tol, rtol=tol)
    assert out[0].abs().max() == 0  # node 0 has no in-edge: zero output


@pytest.mark.parametrize("backend", ["dense", pytest.param("cpp", marks=needs_kernel)])
def test_gradients_match_the_pytorch_path(backend):
    query, x, edge_index, weight = (float32(t) for t in random_graph_case())
    grad_out = torch.randn_like(query)
    grads = {}
    for name in ("torch", backend):
        leaves = [t.clone().requires_grad_() for t in (query, x, weight)]
        out = attend(*leaves[:2], edge_index, leaves[2], scale=0.3, backend=name)
        grads[name] = torch.autograd.grad((out * grad_out).sum(), leaves)
    for got, want in zip(grads[backend], grads["torch"], strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("per_head", [False, True])
@needs_kernel
def test_dropout_and_gradients_of_the_kernel_match_the_pytorch_path(per_head):
    query, x, edge_index, weight = (float32(t) for t in random_graph_case())
    if per_head:
        x = torch.randn_like(query)
    grad_out = torch.randn_like(query)
    outs, grads = {}, {}
    for name in ("torch", "cpp"):
        leaves = [t.clone().requires_grad_() for t in (query, x, weight)]
        torch.manual_seed(7)  # one mask for both backends: drawn before dispatch
        out = attend(*leaves[:2], edge_index, leaves[2], scale=0.3, dropout=0.4, backend=name)
        outs[name] = out
        grads[name] = torch.autograd.grad((out * grad_out).sum(), leaves)
    torch.testing.assert_close(outs["cpp"], outs["torch"], atol=1e-5, rtol=1e-4)
    for got, want in zip(grads["cpp"], grads["torch"], strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_dropout_zeroes_and_rescales_coefficients():
    query, x, edge_index, _ = random_graph_case(isolated=False)
    ones = torch.ones_like(x)  # every value 1: the output is the sum of the kept coefficients
    plain = attend(query, ones, edge_index, scale=0.5, backend="torch")
    torch.testing.assert_close(plain, torch.ones_like(plain))  # softmax sums to 1
    draws = torch.stack(
        [
            attend(query, ones, edge_index, scale=0.5, dropout=0.5, backend="torch")
            for _ in range(200)
        ]
    )
    assert not torch.allclose(draws[0], plain)
    assert (draws.mean(0) - 1).abs().max() < 0.2  # inverted dropout is unbiased


def test_dense_path_gradcheck_in_float64():
    query, x, edge_index, weight = random_graph_case(num_nodes=6, batch=2, heads=1, features=3)
    leaves = [t.requires_grad_() for t in (query, x, weight)]
    graph = attention_graph(edge_index, 6)
    assert torch.autograd.gradcheck(
        lambda q, v, w: folded_attention(q, v, graph, w, scale=0.5, backend="dense"), leaves
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("backend", BACKENDS)
def test_second_derivatives_pass_gradgradcheck(backend, dtype):
    if backend == "cpp" and dtype == torch.float64:
        pytest.skip("the kernel is float32-only")
    query, x, edge_index, weight = random_graph_case(num_nodes=6, batch=2, heads=1, features=3)
    leaves = [t.to(dtype).requires_grad_() for t in (query, x, weight)]
    graph = attention_graph(edge_index, 6)
    # float32 finite differences need a larger step and tolerance than float64's defaults
    loose = {} if dtype == torch.float64 else {"eps": 1e-3, "atol": 2e-2, "rtol": 2e-2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gradcheck's "not double precision"
        assert torch.autograd.gradgradcheck(
            lambda q, v, w: folded_attention(q, v, graph, w, scale=0.5, backend=backend),
            leaves,
            **loose,
        )


@needs_kernel
def test_kernel_double_backward_equals_the_pytorch_path():
    query, x, edge_index, weight = (float32(t) for t in random_graph_case())
    hessian_terms = {}
    for name in ("torch", "cpp"):
        leaves = [t.clone().requires_grad_() for t in (query, x, weight)]
        out = attend(*leaves[:2], edge_index, leaves[2], scale=0.3, backend=name)
        grads = torch.autograd.grad(out.pow(2).sum(), leaves, create_graph=True)
        penalty = sum(g.pow(2).sum() for g in grads)
        hessian_terms[name] = torch.autograd.grad(penalty, leaves)
    for got, want in zip(hessian_terms["cpp"], hessian_terms["torch"], strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@needs_kernel
def test_kernel_gradient_without_edge_weight():
    query, x, edge_index, _ = (float32(t) for t in random_graph_case(isolated=False))
    query.requires_grad_(), x.requires_grad_()
    attend(query, x, edge_index, scale=1 / math.sqrt(5), backend="cpp").sum().backward()
    assert query.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


def test_attention_graph_csr_and_transpose():
    edge_index = torch.tensor([[1, 2, 0, 2, 1], [0, 0, 1, 1, 2]])
    graph = AttentionGraph.from_edge_index(edge_index[:, [4, 0, 3, 1, 2]], num_nodes=3)
    assert graph.ptr.tolist() == [0, 2, 4, 5]
    assert graph.col.tolist() == [1, 2, 0, 2, 1]
    assert graph.order.tolist() == [1, 3, 4, 2, 0]  # caller's edge of each CSR edge
    # transposed: edges grouped by source, each pointing back to its CSR position
    assert graph.tptr.tolist() == [0, 1, 3, 5]
    assert graph.col[graph.tedge].tolist() == [0, 1, 1, 2, 2]
    assert graph.tdst.tolist() == graph.dst[graph.tedge].tolist()
    assert graph.count[0].tolist() == [0, 1, 1] and not graph.has_isolated


def test_attention_graph_is_cached_until_the_graph_changes():
    edge_index = small_world_graph(10, 4, 0.0)
    first = attention_graph(edge_index, 10)
    assert attention_graph(edge_index, 10) is first
    assert attention_graph(edge_index, 11) is not first  # another node count
    edge_index[0, 0] = edge_index[0, 0]  # a write that changes nothing: still valid
    assert attention_graph(edge_index, 10) is first
    edge_index[0, 0] = (edge_index[0, 0] + 3) % 10
    rebuilt = attention_graph(edge_index, 10)
    assert rebuilt is not first and rebuilt.col.sum() != first.col.sum()


def test_rejects_bad_arguments():
    query, x, edge_index, _ = random_graph_case()
    graph = attention_graph(edge_index, 12)
    with pytest.raises(ValueError, match="backend must be one of"):
        folded_attention(query, x, graph, scale=1.0, backend="fast")
    with pytest.raises(ValueError, match="query must be"):
        folded_attention(query[:, :, 0], x, graph, scale=1.0)
    with pytest.raises(ValueError, match="query has 2 features but x has 5"):
        folded_attention(query[..., :2], x, graph, scale=1.0)
    with pytest.raises(ValueError, match="float32"):
        folded_attention(query, x, graph, scale=1.0, backend="cpp")
    with pytest.raises(ValueError, match="dense"):
        folded_attention(query, x, graph, scale=1.0, dropout=0.5, backend="dense")
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
        folded_attention(query, x, graph, scale=1.0, dropout=1.0)
    with pytest.raises(ValueError, match=r"AttentionGraph over the 12 nodes.*attention_graph"):
        folded_attention(query, x, edge_index, scale=1.0)  # an edge_index is not enough
    with pytest.raises(ValueError, match="AttentionGraph over the 12 nodes"):
        folded_attention(query, x, attention_graph(edge_index, 13), scale=1.0)


@pytest.mark.slow
def test_kernel_can_be_switched_off_by_environment(tmp_path):
    """``CORTEXGNN_NO_KERNEL=1``: the PyTorch path runs, with the kernel's results."""
    script = (
        "import torch\n"
        "from cortexgnn.ops.kernel import load_kernel\n"
        "from cortexgnn import ColumnAttentionConv\n"
        "from cortexgnn.graph import small_world_graph\n"
        "assert load_kernel() is None\n"
        "torch.manual_seed(0)\n"
        "conv = ColumnAttentionConv(6, 4, heads=2, projection='first', num_nodes=300)\n"
        "out = conv(torch.ones(300, 6), small_world_graph(300, 4, 0.2, seed=0))\n"
        "torch.save(out, 'out.pt')\n"
    )
    env = {**os.environ, "CORTEXGNN_NO_KERNEL": "1"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, cwd=tmp_path)
    torch.manual_seed(0)
    conv = ColumnAttentionConv(6, 4, heads=2, projection="first", num_nodes=300)
    out = conv(torch.ones(300, 6), small_world_graph(300, 4, 0.2, seed=0))
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), out, atol=1e-5, rtol=1e-5)


# --- bipartite: N_src sources, N_dst targets ---------------------------------------------


def bipartite_case(num_src, num_dst, batch=3, heads=2, features=5):
    """Edges from ``num_src`` sources into ``num_dst`` targets, any order.

    Target 0 has no in-edge, the last source no out-edge (a zero row of ``grad_x``), and
    the edge 1 -> 2 is doubled.
    """
    generator = torch.Generator().manual_seed(num_src * 100 + num_dst)
    source = torch.randint(0, num_src - 1, (4 * num_dst,), generator=generator)
    target = torch.randint(1, num_dst, (4 * num_dst,), generator=generator)
    edge_index = torch.cat([torch.stack([source, target]), torch.tensor([[1, 1], [2, 2]])], 1)
    edge_index = edge_index[:, torch.randperm(edge_index.size(1))]
    query = torch.randn(num_dst, batch, heads, features)
    x = torch.randn(num_src, batch, features)
    weight = torch.rand(edge_index.size(1))
    return query, x, edge_index, weight


def attend_bipartite(query, x, edge_index, weight=None, **kwargs):
    graph = attention_graph(edge_index, (x.size(0), query.size(0)))
    return folded_attention(query, x, graph, weight, **kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("per_head", [False, True])
@pytest.mark.parametrize("sizes", [(11, 6), (5, 9)], ids=["more-sources", "more-targets"])
def test_bipartite_matches_the_oracle(backend, per_head, sizes):
    query, x, edge_index, weight = bipartite_case(*sizes)
    if per_head:
        x = torch.randn(x.size(0), *query.shape[1:])  # [N_src, B, H, F]
    out = attend_bipartite(query, x, edge_index, weight, scale=0.4, backend=backend)
    expected = folded_attention_oracle(query.double(), x.double(), edge_index, weight.double(), 0.4)
    assert out.shape == query.shape
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
    assert out[0].abs().max() == 0  # target 0 has no in-edge


@pytest.mark.parametrize("sizes", [(11, 6), (5, 9)], ids=["more-sources", "more-targets"])
@needs_kernel
def test_bipartite_kernel_gradients_dropout_and_double_backward_equal_the_pytorch_path(sizes):
    query, x, edge_index, weight = bipartite_case(*sizes)
    grad_out = torch.randn_like(query)
    outs, grads, hessian_terms = {}, {}, {}
    for name in ("torch", "cpp"):
        leaves = [t.clone().requires_grad_() for t in (query, x, weight)]
        torch.manual_seed(7)  # one dropout mask for both backends
        out = attend_bipartite(*leaves[:2], edge_index, leaves[2], scale=0.3, dropout=0.4,
                               backend=name)  # fmt: skip
        outs[name] = out
        grads[name] = torch.autograd.grad((out * grad_out).sum(), leaves, create_graph=True)
        penalty = sum(g.pow(2).sum() for g in grads[name])  # the create_graph path
        hessian_terms[name] = torch.autograd.grad(penalty, leaves)
    torch.testing.assert_close(outs["cpp"], outs["torch"], atol=1e-5, rtol=1e-4)
    assert grads["cpp"][1][-1].abs().max() == 0  # the last source feeds no edge
    for name in ("cpp", "torch"):  # a plain backward too: the kernel's own
        leaves = [t.clone().requires_grad_() for t in (query, x, weight)]
        torch.manual_seed(7)
        out = attend_bipartite(*leaves[:2], edge_index, leaves[2], scale=0.3, dropout=0.4,
                               backend=name)  # fmt: skip
        plain = torch.autograd.grad((out * grad_out).sum(), leaves)
        for got, want in zip(plain, grads["torch"], strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    for got, want in zip(hessian_terms["cpp"], hessian_terms["torch"], strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", ["dense", "torch"])
def test_bipartite_gradgradcheck_in_float64(backend):
    query, x, edge_index, weight = bipartite_case(5, 3, batch=2, heads=1, features=3)
    leaves = [t.double().requires_grad_() for t in (query, x, weight)]
    graph = attention_graph(edge_index, (5, 3))
    assert torch.autograd.gradgradcheck(
        lambda q, v, w: folded_attention(q, v, graph, w, scale=0.5, backend=backend), leaves
    )


def test_bipartite_attention_graph_csr_transpose_and_checks():
    # 4 sources -> 3 targets; source 3 has no out-edge, target 2 no in-edge
    edge_index = torch.tensor([[2, 0, 1, 2, 0], [1, 0, 0, 1, 1]])
    graph = attention_graph(edge_index, (4, 3))
    assert (graph.num_src_nodes, graph.num_nodes) == (4, 3)
    assert graph.ptr.tolist() == [0, 2, 5, 5]
    assert graph.col.tolist() == [0, 1, 0, 2, 2]
    assert graph.tptr.tolist() == [0, 2, 3, 5, 5]  # one row per source
    assert graph.col[graph.tedge].tolist() == [0, 0, 1, 2, 2]
    assert graph.tdst.tolist() == graph.dst[graph.tedge].tolist()
    assert graph.count.shape == (3, 4) and graph.count[1].tolist() == [1, 0, 2, 0]
    assert graph.has_isolated
    # one node set is the case N_src = N_dst: the same CSR either way
    square = small_world_graph(10, 4, 0.3, seed=1)
    one, pair = attention_graph(square, 10), attention_graph(square, (10, 10))
    assert one.num_src_nodes == 10
    for name in ("ptr", "col", "dst", "order", "tptr", "tedge", "tdst", "count"):
        assert torch.equal(getattr(one, name), getattr(pair, name)), name
    with pytest.raises(ValueError, match="edge_index refers to target nodes 0..1"):
        attention_graph(edge_index, (4, 1))
    with pytest.raises(ValueError, match="edge_index refers to source nodes 0..2"):
        attention_graph(edge_index, (2, 3))
    with pytest.raises(ValueError, match=r"pair \(N_src, N_dst\)"):
        attention_graph(edge_index, (4, 3, 1))
    with pytest.raises(ValueError, match="tptr must have 5 entries"):
        dataclasses.replace(graph, tptr=graph.ptr)  # a hand-built graph is checked too
    query, x = torch.randn(3, 1, 1, 2), torch.randn(4, 1, 2)
    with pytest.raises(ValueError, match=r"4 source nodes of x and 2 target nodes.*\(num_src"):
        folded_attention(query[:2], x, graph, scale=1.0)
    with pytest.raises(ValueError, match="query must be"):
        folded_attention(query, x.expand(4, 2, 2), graph, scale=1.0)  # batch 1 vs 2
