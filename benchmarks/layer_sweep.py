"""Question 2: the message-passing layer alone, from 64 to 131,072 columns.

One attention layer (shared query/key ``D x D``, raw values: the article's message) on a
Watts-Strogatz graph, batch ``B`` of feature sets, timed forward (no autograd) and
forward+backward (gradients of ``x`` and the weights), with peak memory, for:

- ``article_loop``: the article's per-column loop (every gate projects every column),
  :func:`cortexgnn.reference.article_attention` with one query/key pair for all columns,
- ``dense_masked``: the same maths vectorised over a masked ``[B, N, N]`` score matrix
  (the ``"dense"`` backend of :func:`cortexgnn.ops.attention.folded_attention`),
- ``propagate_batch``: the same maths the standard PyG way: ``B`` disjoint graph copies in
  a ``Batch``, ``utils.softmax`` and scatter through ``MessagePassing`` (the layer itself
  with ``fused=False``; results before it name a hand-written layer ``pyg_batch``),
- ``pyg_transformer_conv``: ``TransformerConv(D, D)`` on that batch, what a user would
  pick today (it also projects values and adds a skip: more work, not the same maths),
- ``cortexgnn``: :class:`cortexgnn.ColumnAttentionConv` on ``[N, B, D]``,
- ``cortexgnn_folded``: the folded query ``x Q^T K`` plus
  :func:`cortexgnn.ops.attention.folded_attention` called directly.

An implementation that passes ``--budget-s`` per call, or whose estimated memory passes
``--memory-cap-gb``, is recorded as over budget and skipped for larger ``N``. Time
exponents are least-squares slopes of log time on log N over ``--fit-range``.

    THP_MEM_ALLOC_ENABLE=1 python -m benchmarks run layer_sweep
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.nn import TransformerConv

from benchmarks import harness
from cortexgnn import ColumnAttentionConv, edge_index_to_dense, small_world_graph
from cortexgnn.nn.config import ModelConfig
from cortexgnn.ops.attention import attention_graph, folded_attention
from cortexgnn.reference import article_attention

IMPLEMENTATIONS = (
    "article_loop",
    "dense_masked",
    "propagate_batch",
    "pyg_transformer_conv",
    "cortexgnn",
    "cortexgnn_folded",
)


ARTICLE = ModelConfig()  # the article's sizes: every default below comes from it


def get_parser() -> argparse.ArgumentParser:
    p = harness.new_parser(__doc__)
    p.add_argument("--min-log2", type=int, default=6, help="smallest N is 2**min_log2")
    p.add_argument("--max-log2", type=int, default=17, help="largest N is 2**max_log2")
    p.add_argument("--extra-sizes", type=int, nargs="*", default=[10_000], help="more N")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--channels", type=int, default=ARTICLE.col_out)
    p.add_argument("--graph-k", type=int, default=ARTICLE.graph_k)
    p.add_argument("--graph-p", type=float, default=ARTICLE.graph_p)
    p.add_argument("--impls", nargs="*", default=list(IMPLEMENTATIONS[:5]), choices=IMPLEMENTATIONS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--min-run-time", type=float, default=0.2, help="seconds per timing block")
    p.add_argument("--budget-s", type=float, default=12.0, help="max seconds per call")
    p.add_argument("--memory-cap-gb", type=float, default=8.0, help="max estimated memory")
    p.add_argument("--fit-range", type=int, nargs=2, default=[1 << 10, 1 << 17])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--out-dir", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True)
    return p


def article_loop(x: Tensor, wq: Tensor, wk: Tensor, adj: Tensor) -> Tensor:
    """The article's loop (:func:`cortexgnn.reference.article_attention`), one weight pair."""
    n = x.size(0)
    return article_attention(x.transpose(0, 1), [wq] * n, [wk] * n, adj).transpose(0, 1)


def dense_masked(conv: ColumnAttentionConv, x: Tensor, edge_index: Tensor) -> Tensor:
    """The layer's folded query, then the ``"dense"`` backend of ``folded_attention``."""
    query = (x @ conv.fold()[0].t()).unsqueeze(2)  # [N, B, 1, D]: tau K^T Q x_i
    graph = attention_graph(edge_index, x.size(0))
    return folded_attention(query, x, graph, scale=1.0, backend="dense").squeeze(2)  # [N, B, D]


def estimated_bytes(impl: str, n: int, e: int, b: int, d: int) -> int:
    """Rough forward+backward working set, to skip sizes that cannot fit."""
    node = n * b * d * 4
    if impl == "dense_masked":
        return 4 * b * n * n * 4 + 6 * node
    if impl == "article_loop":
        return n * n * 4 + 8 * node
    if impl in ("propagate_batch", "pyg_transformer_conv"):
        return 6 * e * b * d * 4 + 8 * node
    return 6 * node + 3 * e * b * 4  # measured ~5 node tensors at 2**16


def build(impl: str, n: int, args, device) -> tuple:
    """Return ``(run, params)``: ``run()`` gives the output; ``params`` need gradients."""
    d, b = args.channels, args.batch_size
    gen = torch.Generator().manual_seed(n)
    torch.manual_seed(n)  # the same weights for every implementation at this size
    edge_index = small_world_graph(n, min(args.graph_k, n - 1), args.graph_p, seed=n).to(device)
    x = torch.randn(n, b, d, generator=gen).to(device).requires_grad_()  # [N, B, D]
    conv = ColumnAttentionConv(d, d).to(device)
    wq, wk = conv.query_weight, conv.key_weight
    if impl == "article_loop":
        adj = edge_index_to_dense(edge_index, n)  # [N, N]
        return (lambda: article_loop(x, wq, wk, adj)), [x, wq, wk]
    if impl == "dense_masked":
        return (lambda: dense_masked(conv, x, edge_index)), [x, wq, wk]
    if impl == "cortexgnn":
        return (lambda: conv(x, edge_index)), [x, wq, wk]
    if impl == "cortexgnn_folded":  # the layer with its K^T Q fold handed in, as CortexNet does
        return (lambda: conv(x, edge_index, fold=conv.fold())), [x, wq, wk]
    xb = x.detach().transpose(0, 1)  # [B, N, D]
    batch = Batch.from_data_list([Data(x=xb[i], edge_index=edge_index) for i in range(b)])
    bx = batch.x.clone().requires_grad_()  # [B*N, D]
    if impl == "propagate_batch":  # the same layer through PyG's propagate, on B copies
        layer = ColumnAttentionConv(d, d, fused=False).to(device)
        layer.load_state_dict(conv.state_dict())
        return (lambda: layer(bx, batch.edge_index)), [bx, layer.query_weight, layer.key_weight]
    layer = TransformerConv(d, d).to(device)
    return (lambda: layer(bx, batch.edge_index)), [bx, *layer.parameters()]


def _forward_backward(run, params):
    grad_out = []  # one fixed output gradient, made on the first call

    def step():
        out = run()
        if not grad_out:
            grad_out.append(torch.randn_like(out))
        return torch.autograd.grad(out, params, grad_out[0])

    return step


def fit_exponent(points: list[tuple[int, float]], lo: int, hi: int) -> float | None:
    """Least-squares slope of ``log t`` on ``log N`` over ``lo <= N <= hi``."""
    pts = [(math.log(n), math.log(t)) for n, t in points if lo <= n <= hi]
    if len(pts) < 3:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    num = sum((px - mx) * (py - my) for px, py in pts)
    return num / sum((px - mx) ** 2 for px, _ in pts)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    device = harness.pick_device(args.device)
    torch.set_num_threads(args.threads)
    sizes = sorted({1 << p for p in range(args.min_log2, args.max_log2 + 1)} | set(
        s for s in args.extra_sizes if (1 << args.min_log2) <= s <= (1 << args.max_log2)
    ))  # fmt: skip
    active = list(args.impls)
    rows, agreement = [], {}
    started = time.perf_counter()
    for n in sizes:
        edges = n * min(args.graph_k, n - 1)
        candidates = {}
        for impl in list(active):
            need = estimated_bytes(impl, n, edges, args.batch_size, args.channels)
            if need > args.memory_cap_gb * 2**30:
                rows.append({"impl": impl, "N": n, "status": "over memory cap"})
                active.remove(impl)
                continue
            run, params = build(impl, n, args, device)
            step = _forward_backward(run, params)
            step()  # warm-up: the first touch of fresh memory is slow on a VM
            harness.synchronize(device)
            t0 = time.perf_counter()
            step()  # budget probe
            harness.synchronize(device)
            if time.perf_counter() - t0 > args.budget_s:
                rows.append({"impl": impl, "N": n, "status": "over budget"})
                active.remove(impl)
                continue
            candidates[impl] = (run, params)
        if n == sizes[0] and len(candidates) > 1:
            with torch.no_grad():
                outs = {k: v[0]() for k, v in candidates.items() if k != "pyg_transformer_conv"}
            base = outs.get("article_loop")
            for impl, out in outs.items():
                if base is not None and out.shape == base.shape:
                    agreement[impl] = float((out - base).abs().max())
                elif base is not None:  # batch layout [B*N, D]
                    flat = base.transpose(0, 1).reshape(-1, base.size(-1))
                    agreement[impl] = float((out - flat).abs().max())

        def no_grad(run):
            def call():
                with torch.no_grad():
                    return run()

            return call

        fwd = harness.time_interleaved(
            {k: no_grad(r) for k, (r, _) in candidates.items()},
            device=device, num_threads=args.threads, rounds=args.rounds,
            min_run_time=args.min_run_time, warmup=0,
        )  # fmt: skip
        both = harness.time_interleaved(
            {k: _forward_backward(r, p) for k, (r, p) in candidates.items()},
            device=device, num_threads=args.threads, rounds=args.rounds,
            min_run_time=args.min_run_time, warmup=0,
        )  # fmt: skip
        for impl, (run, params) in candidates.items():
            row = {"impl": impl, "N": n, "E": edges, "status": "ok"}
            row["forward"], row["forward_backward"] = fwd[impl], both[impl]
            row["peak_bytes_forward"] = harness.peak_memory_bytes(no_grad(run), device)
            row["peak_bytes_forward_backward"] = harness.peak_memory_bytes(
                _forward_backward(run, params), device
            )
            rows.append(row)
            if both[impl]["median_s"] > args.budget_s:
                active.remove(impl)
        del candidates
    fits = {}
    for impl in args.impls:
        ok = [r for r in rows if r["impl"] == impl and r["status"] == "ok"]
        fits[impl] = {
            kind: fit_exponent([(r["N"], r[kind]["median_s"]) for r in ok], *args.fit_range)
            for kind in ("forward", "forward_backward")
        }
        # Over the whole measured range too: the loop never reaches 2**10.
        fits[impl]["forward_backward_all_sizes"] = fit_exponent(
            [(r["N"], r["forward_backward"]["median_s"]) for r in ok], 0, 1 << 62
        )
    result = {
        "benchmark": "layer_sweep",
        "config": vars(args),
        "environment": harness.environment(device, args.threads),
        "rows": rows,
        "fits": fits,
        "agreement_max_abs_vs_article_loop": agreement,
        "wall_s": time.perf_counter() - started,
    }
    if args.save:
        harness.write_result(f"layer_sweep-{device.type}", result, args.out_dir)
    return result


if __name__ == "__main__":
    out = main()
    for r in out["rows"]:
        if r["status"] == "ok":
            print(
                f"{r['impl']:22s} N={r['N']:7d} fwd {r['forward']['median_s'] * 1e3:9.1f} ms"
                f"  fwd+bwd {r['forward_backward']['median_s'] * 1e3:9.1f} ms"
                f"  peak {(r['peak_bytes_forward_backward'] or 0) / 2**20:8.1f} MiB"
            )
        else:
            print(f"{r['impl']:22s} N={r['N']:7d} {r['status']}")
    print("exponents", out["fits"])
    print("agreement", out["agreement_max_abs_vs_article_loop"])
