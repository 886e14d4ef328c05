"""``cortexgnn.ops.triton_attention`` against the loop oracles, on CUDA or in Triton's interpreter.

Without a GPU every kernel runs on CPU tensors under ``TRITON_INTERPRET=1``, which
``conftest.py`` sets before anything imports triton (triton jits its own helpers, such as
``tl.sum``, at import time, so switching later is too late). The interpreter executes the
kernels' own code program by program, at milliseconds each, so the graphs are tiny and the
edge tile is shrunk to 4 so that the hub's row takes several tiles of the online softmax.
The slow tests trace the op with ``torch.compile`` and compile the kernels to an H100
binary in a fresh process (compiling needs no GPU).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from oracles import conv_oracle, folded_attention_oracle

from cortexgnn import ColumnAttentionConv
from cortexgnn.ops import triton_attention as kernels
from cortexgnn.ops.attention import attention_graph, folded_attention

pytestmark = pytest.mark.skipif(
    not kernels.triton_available(), reason="triton is not installed (it ships with CUDA wheels)"
)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# Relative tolerances against a float64 oracle: float32 sums, then the storage precision.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


@pytest.fixture(autouse=True)
def _small_tiles_in_the_interpreter(monkeypatch):
    if DEVICE == "cpu":
        import triton.language as tl
        from triton.runtime.interpreter import InterpretedFunction

        if not isinstance(tl.sum, InterpretedFunction):
            pytest.skip("no GPU, and triton was imported before TRITON_INTERPRET=1 was set")
    monkeypatch.setattr(kernels, "BLOCK_E", 4)  # the hub's 9 in-edges take 3 tiles


def hub_graph() -> torch.Tensor:
    """Seven nodes: node 0 has no in-edge, hub 1 has 9 (2 -> 1 three times), others 1-2."""
    source = [2, 3, 4, 5, 6, 2, 2, 0, 3, 1, 3, 1, 6, 5, 4]
    target = [1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5, 6]
    edge_index = torch.tensor([source, target])
    return edge_index[:, torch.randperm(edge_index.size(1))]  # [2, 15], any order


def oracle_with_grads(leaves, edge_index, grad_out, scale, weighted):
    """Output and gradients of the loop oracle in float64 for the given leaves."""
    leaves = [t.detach().double().requires_grad_() for t in leaves]
    weight = leaves[2] if weighted else None
    out = folded_attention_oracle(leaves[0], leaves[1], edge_index, weight, scale=scale)
    return out, torch.autograd.grad((out * grad_out.double()).sum(), leaves[: 2 + weighted])


def assert_close(got, want, dtype):
    scale = want.abs().max().item() + 1.0  # relative to the tensor's size, not per entry
    torch.testing.assert_close(got.double(), want, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize(
    ("dtype", "weighted"),
    [
        (torch.float32, True),
        (torch.bfloat16, False),
        (torch.float16, True),
        pytest.param(torch.float32, False, marks=pytest.mark.slow),
        pytest.param(torch.bfloat16, True, marks=pytest.mark.slow),
        pytest.param(torch.float16, False, marks=pytest.mark.slow),
    ],
)
def test_forward_and_gradients_match_the_oracle(dtype, weighted):
    edge_index = hub_graph()
    num_nodes, batch, heads, features = 7, 2, 2, 5  # F = 5: masked feature lanes
    query = torch.randn(num_nodes, batch, heads, features, device=DEVICE)
    x = torch.randn(num_nodes, batch, features, device=DEVICE)  # one row for both heads
    weight = torch.rand(edge_index.size(1), device=DEVICE)
    leaves = [t.to(dtype).requires_grad_() for t in (query, x, weight)]
    graph = attention_graph(edge_index.to(DEVICE), num_nodes)
    out = folded_attention(
        leaves[0], leaves[1], graph, leaves[2] if weighted else None, scale=0.7, backend="triton"
    )
    assert out.dtype == dtype and out.shape == query.shape
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad((out * grad_out).sum(), leaves[: 2 + weighted])
    want, want_grads = oracle_with_grads(leaves, edge_index, grad_out, 0.7, weighted)
    assert_close(out, want.to(DEVICE), dtype)
    for got, expected in zip(grads, want_grads, strict=True):
        assert got.dtype == dtype
        assert_close(got, expected.to(DEVICE), dtype)
    assert out[0].abs().max() == 0  # node 0 has no in-edge: zero output...
    assert grads[0][0].abs().max() == 0  # ...and no query gradient


@pytest.mark.parametrize("num_src", [9, 4], ids=["more-sources", "more-targets"])
def test_bipartite_forward_and_gradients_match_the_oracle(num_src):
    """Sources and targets apart: ``x`` has ``N_src`` rows, ``query`` and output ``N_dst``."""
    num_dst, batch, heads, features = 6, 2, 2, 3
    source = torch.randint(0, num_src - 1, (12,))  # the last source feeds no edge
    target = torch.randint(1, num_dst, (12,))  # target 0 has no in-edge
    edge_index = torch.stack([source, target])
    leaves = [
        torch.randn(num_dst, batch, heads, features, device=DEVICE).requires_grad_(),
        torch.randn(num_src, batch, features, device=DEVICE).requires_grad_(),
        torch.rand(12, device=DEVICE).requires_grad_(),
    ]
    graph = attention_graph(edge_index.to(DEVICE), (num_src, num_dst))
    out = folded_attention(*leaves[:2], graph, leaves[2], scale=0.7, backend="triton")
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad((out * grad_out).sum(), leaves)
    want, want_grads = oracle_with_grads(leaves, edge_index, grad_out, 0.7, weighted=True)
    for got, expected in zip((out, *grads), (want, *want_grads), strict=True):
        assert got.shape == expected.shape
        assert_close(got, expected.to(DEVICE), torch.float32)
    assert grads[1][-1].abs().max() == 0  # no edge from the last source: zero gradient


@pytest.mark.slow
def test_a_row_of_thousands_of_edges_with_large_scores(monkeypatch):
    monkeypatch.setattr(kernels, "BLOCK_E", 32)  # the real tile: 94 tiles for one row
    source = torch.randint(0, 3, (3000,))
    edge_index = torch.stack([source, torch.zeros_like(source)])  # 3000 edges into node 0
    leaves = [
        torch.randn(3, 1, 1, 6, device=DEVICE).requires_grad_(),
        torch.randn(3, 1, 6, device=DEVICE).requires_grad_(),
        torch.rand(3000, device=DEVICE).requires_grad_(),
    ]
    graph = attention_graph(edge_index.to(DEVICE), 3)
    out = folded_attention(*leaves[:2], graph, leaves[2], scale=20.0, backend="triton")
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad((out * grad_out).sum(), leaves)
    want, want_grads = oracle_with_grads(leaves, edge_index, grad_out, 20.0, weighted=True)
    assert torch.isfinite(out).all()
    for got, expected in zip((out, *grads), (want, *want_grads), strict=True):
        assert_close(got, expected.to(DEVICE), torch.float32)


def test_one_batch_rows_per_head_and_dropout_match_the_pytorch_path():
    edge_index = hub_graph()
    query = torch.randn(7, 1, 3, 6, device=DEVICE)  # B = 1, H = 3
    x = torch.randn(7, 1, 3, 6, device=DEVICE)  # a value row per head
    weight = torch.rand(edge_index.size(1), device=DEVICE)
    graph = attention_graph(edge_index.to(DEVICE), 7)
    grad_out = torch.randn_like(query)
    results = {}
    for backend in ("torch", "triton"):
        leaves = [t.clone().requires_grad_() for t in (query, x, weight)]
        torch.manual_seed(5)  # one dropout mask for both: drawn before dispatch
        out = folded_attention(
            *leaves[:2], graph, leaves[2], scale=0.5, dropout=0.3, backend=backend
        )
        results[backend] = (out, *torch.autograd.grad((out * grad_out).sum(), leaves))
    for got, want in zip(results["triton"], results["torch"], strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_attention_weights_are_the_softmax_over_in_edges():
    edge_index = hub_graph()
    query, x = torch.randn(7, 2, 2, 5, device=DEVICE), torch.randn(7, 2, 2, 5, device=DEVICE)
    graph = attention_graph(edge_index.to(DEVICE), 7)
    out, alpha = kernels.triton_attention(query, x, graph, None, None, 0.8, need_weights=True)
    source, target = graph.col, graph.dst  # CSR order, as alpha is
    score = (query[target] * x[source]).sum(-1) * 0.8  # [E, B, H]
    for i in range(7):  # a softmax per target over its in-edges, duplicates apart
        rows = target == i
        torch.testing.assert_close(alpha[rows], score[rows].softmax(0), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out, folded_attention(query, x, graph, scale=0.8, backend="torch"))


def test_the_layer_opts_in_matches_its_oracle_and_refuses_second_derivatives():
    conv = ColumnAttentionConv(5, 4, heads=2, num_nodes=7, fused_backend="triton").to(DEVICE)
    assert "fused_backend='triton'" in repr(conv)
    edge_index = hub_graph().to(DEVICE)
    x = torch.randn(7, 2, 5, device=DEVICE, requires_grad=True)
    weight = torch.rand(edge_index.size(1), device=DEVICE)
    out = conv(x, edge_index, weight)
    want, _ = conv_oracle(conv, x.detach(), edge_index, weight)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-4)
    grads = torch.autograd.grad(out.square().sum(), [x, conv.query_weight], create_graph=True)
    conv.fused = False  # PyG's propagate: the same gradients, and second derivatives
    reference = torch.autograd.grad(
        conv(x, edge_index, weight).square().sum(), [x, conv.query_weight]
    )
    for got, expected in zip(grads, reference, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(RuntimeError, match="fused=False"):  # only the Triton op says so
        torch.autograd.grad(grads[0].sum(), x)


def test_refuses_dtypes_and_devices_it_cannot_run(monkeypatch):
    graph = attention_graph(hub_graph().to(DEVICE), 7)
    query = torch.randn(7, 1, 1, 4, dtype=torch.float64, device=DEVICE)
    with pytest.raises(ValueError, match="computes in one of"):
        folded_attention(query, query[:, :, 0], graph, scale=1.0, backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # CPU tensors without the interpreter
    cpu_graph, query = attention_graph(hub_graph(), 7), query.float().cpu()
    with pytest.raises(ValueError, match="runs on CUDA tensors"):
        folded_attention(query, query[:, :, 0], cpu_graph, scale=1.0, backend="triton")


def test_mixed_dtypes_compute_in_the_promoted_one():
    edge_index = hub_graph()
    query = torch.randn(7, 1, 1, 4, device=DEVICE).bfloat16()  # as autocast makes it
    x = torch.randn(7, 1, 4, device=DEVICE)
    graph = attention_graph(edge_index.to(DEVICE), 7)
    out = folded_attention(query, x, graph, scale=0.5, backend="triton")
    assert out.dtype == torch.float32
    want = folded_attention_oracle(query.double(), x.double(), edge_index, scale=0.5)
    assert_close(out, want.to(DEVICE), torch.float32)


@pytest.mark.slow
def test_fake_implementation_and_autograd_pass_torch_opcheck():
    graph = attention_graph(hub_graph().to(DEVICE), 7)
    query, x = torch.randn(7, 2, 1, 3, device=DEVICE), torch.randn(7, 2, 1, 3, device=DEVICE)
    weight = torch.rand(graph.col.numel(), device=DEVICE)
    args = (
        query.requires_grad_(), x.requires_grad_(),
        graph.ptr, graph.col, graph.tptr, graph.tedge, graph.tdst,
        weight.requires_grad_(), None, 0.5, True,
    )  # fmt: skip
    # schema, fake tensors against the real op, autograd registration, and AOT dispatch
    # with dynamic shapes (forward and backward through the fake implementations)
    torch.library.opcheck(kernels._csr_attention, args)


@pytest.mark.slow
def test_torch_compile_keeps_the_layer_and_the_op_in_one_graph():
    from torch._dynamo.testing import CompileCounterWithBackend

    conv = ColumnAttentionConv(5, 4, heads=2, num_nodes=7, fused_backend="triton").to(DEVICE)
    edge_index = hub_graph().to(DEVICE)
    x = torch.randn(7, 2, 5, device=DEVICE)
    weight = torch.rand(edge_index.size(1), device=DEVICE)
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(conv, fullgraph=True, backend=counter)  # a break would raise
    results = {}
    for name, layer in (("eager", conv), ("compiled", compiled)):
        leaves = [x.clone().requires_grad_(), weight.clone().requires_grad_()]
        out = layer(leaves[0], edge_index, leaves[1])
        grads = torch.autograd.grad(out.square().sum(), [*leaves, conv.query_weight])
        results[name] = (out, *grads)
    for got, want in zip(results["compiled"], results["eager"], strict=True):
        torch.testing.assert_close(got, want)
    assert counter.frame_count == 1
    targets = {str(node.target) for graph in counter.graphs for node in graph.graph.nodes}
    assert "cortexgnn.triton_csr_attention.default" in targets


COMPILE_FOR_H100 = """
import sys
from triton import compiler
from triton.backends.compiler import GPUTarget
from cortexgnn.ops.triton_attention import _kernels

tensor, index, acc = f"*{sys.argv[1]}", "*i64", "*fp32"
forward, by_target, by_source = _kernels()
signatures = {
    forward: [tensor] * 2 + [index] * 2 + [tensor] * 3 + [acc] * 2,
    by_target: [tensor] * 4 + [acc] + [index] * 2 + [tensor] * 3 + [acc] * 3,
    by_source: [tensor] * 2 + [index] * 3 + [acc] * 2 + [tensor],
}
for kernel, pointers in signatures.items():
    signature = dict(zip(kernel.arg_names, pointers))
    signature |= {"scale": "fp32", "B": "i32", "H": "i32", "HX": "i32", "F": "i32"}
    flags = kernel.arg_names[len(signature):-2]
    constants = {flag: True for flag in flags} | {"BLOCK": 32, "BLOCK_F": 128}
    signature |= {name: "constexpr" for name in constants}
    assert list(signature) == kernel.arg_names, (list(signature), kernel.arg_names)
    source = compiler.ASTSource(kernel, signature=signature, constexprs=constants)
    binary = compiler.compile(source, target=GPUTarget("cuda", 90, 32))
    assert ".target sm_90" in binary.asm["ptx"] and binary.asm["cubin"]
    print(kernel.__name__, sorted(flags), len(binary.asm["cubin"]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_kernels_compile_for_an_h100(dtype):
    """Triton's own compiler (not the interpreter) accepts all three kernels for sm_90."""
    backends = pytest.importorskip("triton.backends")
    if "nvidia" not in backends.backends:
        pytest.skip("triton's NVIDIA backend is not installed")
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-c", COMPILE_FOR_H100, dtype], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(done.stdout.splitlines()) == 3
