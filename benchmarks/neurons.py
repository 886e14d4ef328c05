"""Seed-001 neuron network: the article's loop (printing off) against NeuronNetwork.

In one process, on the same random graphs (each neuron linked to ``--out-degree`` random
others, the article's default parameters): seconds per sweep of the loop port and of
NeuronNetwork at ``N = --num-nodes``, interleaved; network-sweeps per second with
``--copies`` batched copies; the time of ``--big-steps`` sweeps at ``--big-nodes`` neurons;
seconds per sweep from 10^3 to 10^6 neurons and the fitted time exponent; bytes per neuron
and per link. Writes ``benchmarks/results/neurons-<device>.json``; ``--update-doc`` renders
the table into docs/neurons.md.

    python benchmarks/neurons.py --threads 2 --update-doc
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

try:
    from benchmarks import harness
except ImportError:  # run as a script from the benchmarks folder
    import harness

from cortexgnn.neurons import NeuronNetwork, random_links

DOC = Path(__file__).resolve().parents[1] / "docs" / "neurons.md"
DOC_START, DOC_END = "<!-- neurons-table:start -->", "<!-- neurons-table:end -->"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def get_parser() -> argparse.ArgumentParser:
    p = harness.new_parser(__doc__)
    p.add_argument("--num-nodes", type=int, default=10_000, help="N of the loop comparison")
    p.add_argument("--out-degree", type=int, default=10)
    p.add_argument("--copies", type=int, default=100, help="B of the batched comparison")
    p.add_argument("--big-nodes", type=int, default=1_000_000)
    p.add_argument("--big-steps", type=int, default=100)
    p.add_argument("--sizes", default="1000,10000,100000,1000000", help="N of the scaling fit")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="float64")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--min-run-time", type=float, default=0.5, help="seconds per timing block")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--update-doc", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--render-only", default=None, help="render this results JSON and stop")
    return p


def build(
    num_nodes: int,
    args: argparse.Namespace,
    device: torch.device,
    copies: int = 0,
    dtype: str | None = None,
) -> NeuronNetwork:
    generator = torch.Generator().manual_seed(args.seed)
    links = random_links(num_nodes, min(args.out_degree, num_nodes - 1), generator=generator)
    batch_shape = (copies,) if copies else ()
    return NeuronNetwork(
        links, num_nodes, batch_shape=batch_shape, dtype=_DTYPES[dtype or args.dtype], device=device
    )


def memory_per_element(net: NeuronNetwork) -> dict:
    """Bytes the simulator holds per neuron (state, parameters) and per link (graph)."""
    state = sum(
        getattr(net, name).untyped_storage().nbytes()
        for name in ("sta", "str", "dendrite", "synapse", "accumulated", "current_state")
    )  # last_state is current_state after a sweep
    links = net.edge_index.nbytes + net.edge_weight.nbytes
    for part in net._parts.values():
        adj = part["adj_t"]
        links += adj.col_indices().nbytes + adj.values().nbytes
        links += part["edge_index"].nbytes + part["edge_weight"].nbytes
        state += adj.crow_indices().nbytes + part["ptr"].nbytes  # per neuron and part
    for cached, _ in (net._delivered or {}).values():  # what each part delivered last sweep
        state += cached.untyped_storage().nbytes()
    num_edges = max(net.edge_index.size(1), 1)
    return {
        "bytes_per_neuron_copy": state / (net.num_nodes * max(math.prod(net.batch_shape), 1)),
        "bytes_per_link": links / num_edges,
    }


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    if args.render_only:
        result = json.loads(Path(args.render_only).read_text())
        print(render(result))
        if args.update_doc:
            update_doc(result)
        return result
    device = harness.pick_device(args.device)
    torch.set_num_threads(args.threads)
    time_kw = dict(device=device, num_threads=args.threads, rounds=args.rounds)
    result: dict = {"args": vars(args), "env": harness.environment(device, args.threads)}

    # 1. one network: the loop port against NeuronNetwork, same graph and state
    net = build(args.num_nodes, args, device)
    loop = build(args.num_nodes, args, torch.device("cpu")).to_reference()  # same seed, graph
    times = harness.time_interleaved(
        {"loop": loop.sweep, "tensor": net.step}, min_run_time=args.min_run_time, **time_kw
    )
    # 2. batched copies: one step of B copies against B loop sweeps (and the loop again)
    batched = build(args.num_nodes, args, device, copies=args.copies)
    batched32 = build(args.num_nodes, args, device, copies=args.copies, dtype="float32")
    more = harness.time_interleaved(
        {"loop": loop.sweep, "tensor_batched": batched.step, "tensor_batched_f32": batched32.step},
        min_run_time=args.min_run_time,
        **time_kw,
    )
    times["tensor_batched"], times["tensor_batched_f32"] = (
        more["tensor_batched"],
        more["tensor_batched_f32"],
    )
    times["loop_again"] = more["loop"]
    loop_s, tensor_s = times["loop"]["median_s"], times["tensor"]["median_s"]
    result["per_sweep"] = times
    result["speedup_per_sweep"] = loop_s / tensor_s
    result["network_sweeps_per_s"] = {"loop": 1 / loop_s}
    for name in ("tensor_batched", "tensor_batched_f32"):
        result["network_sweeps_per_s"][name] = args.copies / times[name]["median_s"]
    result["speedup_batched"] = args.copies * loop_s / times["tensor_batched"]["median_s"]
    result["speedup_batched_f32"] = args.copies * loop_s / times["tensor_batched_f32"]["median_s"]
    result["memory_batched"] = memory_per_element(batched)
    del loop, batched, batched32

    # 3. scaling from 10^3 to 10^6 neurons (per-sweep medians)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    scaling = []
    for n in sizes:
        big = build(n, args, device)
        stats = harness.time_interleaved(
            {"step": big.step}, min_run_time=args.min_run_time, **time_kw
        )["step"]
        scaling.append({"num_nodes": n, "num_edges": big.edge_index.size(1), **stats})
        del big
    result["scaling"] = scaling
    if len(scaling) >= 2:
        xs = torch.tensor([math.log(s["num_nodes"]) for s in scaling], dtype=torch.float64)
        ys = torch.tensor([math.log(s["median_s"]) for s in scaling], dtype=torch.float64)
        xc = xs - xs.mean()
        result["time_exponent"] = float((xc * (ys - ys.mean())).sum() / (xc * xc).sum())

    # 4. the big run: build, then every sweep of it, wall clock
    start = time.perf_counter()
    big = build(args.big_nodes, args, device)
    built = time.perf_counter()
    big.run(args.big_steps, record=())
    harness.synchronize(device)
    done = time.perf_counter()
    result["big_run"] = {
        "num_nodes": args.big_nodes,
        "num_edges": big.edge_index.size(1),
        "steps": args.big_steps,
        "build_s": built - start,
        "run_s": done - built,
        "peak_step_bytes": harness.peak_memory_bytes(big.step, device),
        **memory_per_element(big),
    }
    del big
    if args.save:
        path = harness.write_result(f"neurons-{device.type}", result, args.out_dir)
        print(f"wrote {path}")
    print(render(result))
    if args.update_doc:
        update_doc(result)
    return result


def render(result: dict) -> str:
    """The Markdown table docs/neurons.md shows, from one results JSON."""
    a, env = result["args"], result["env"]
    per = result["per_sweep"]
    big = result["big_run"]

    def ms(stats: dict) -> str:
        return f"{stats['median_s'] * 1e3:.3g} ms (IQR {stats['iqr_s'] * 1e3:.2g})"

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    n, d, b = a["num_nodes"], a["out_degree"], a["copies"]
    exponent = result.get("time_exponent", float("nan"))
    rows = [
        "| question | measured | target | |",
        "|---|---|---|---|",
        f"| loop port, one sweep, N={n:,}, out-degree {d} | {ms(per['loop'])} | | |",
        f"| NeuronNetwork, one sweep, same graph | {ms(per['tensor'])} | | |",
        f"| speed-up per sweep | {result['speedup_per_sweep']:,.0f}x | >= 50x "
        f"| {verdict(result['speedup_per_sweep'] >= 50)} |",
        f"| NeuronNetwork, one step of {b} copies | {ms(per['tensor_batched'])} | | |",
        f"| loop port, one sweep, timed again beside the copies | {ms(per['loop_again'])} | | |",
        f"| network-sweeps/s: loop / {b} batched copies "
        f"| {result['network_sweeps_per_s']['loop']:,.1f} / "
        f"{result['network_sweeps_per_s']['tensor_batched']:,.0f} | | |",
        f"| speed-up in network-sweeps/s | {result['speedup_batched']:,.0f}x | >= 1,000x "
        f"| {verdict(result['speedup_batched'] >= 1000)} |",
        f"| the same, {b} copies in float32 | {ms(per['tensor_batched_f32'])}: "
        f"{result['speedup_batched_f32']:,.0f}x | >= 1,000x "
        f"| {verdict(result['speedup_batched_f32'] >= 1000)} |",
        f"| N={big['num_nodes']:,}, {big['num_edges']:,} links, {big['steps']} sweeps "
        f"| {big['run_s']:.1f} s (+ {big['build_s']:.1f} s to build) | <= 60 s "
        f"| {verdict(big['run_s'] + big['build_s'] <= 60)} |",
        f"| time exponent in N, {result['scaling'][0]['num_nodes']:,} to "
        f"{result['scaling'][-1]['num_nodes']:,} | {exponent:.2f} | <= 1.1 "
        f"| {verdict(exponent <= 1.1)} |",
        f"| memory per neuron (state, {a['dtype']}) | {big['bytes_per_neuron_copy']:.0f} B | | |",
        f"| memory per link (edge_index, weight, CSR) | {big['bytes_per_link']:.0f} B | | |",
    ]
    scaling = ["", "| N | links | seconds per sweep (median, IQR) |", "|---|---|---|"]
    scaling += [
        f"| {s['num_nodes']:,} | {s['num_edges']:,} | {s['median_s']:.3g} ({s['iqr_s']:.2g}) |"
        for s in result["scaling"]
    ]
    footer = (
        f"\n{env['cpu']}, {env['num_threads']} threads, torch {env['torch']}, "
        f"PyG {env['torch_geometric']}, {a['dtype']}, commit {env['git_commit']}, "
        f"{env['date_utc']}; medians over {a['rounds']} interleaved rounds."
    )
    return "\n".join(rows + scaling) + "\n" + footer


def update_doc(result: dict, path: Path = DOC) -> None:
    text = path.read_text()
    head, rest = text.split(DOC_START, 1)
    _, tail = rest.split(DOC_END, 1)
    path.write_text(f"{head}{DOC_START}\n{render(result)}\n{DOC_END}{tail}")


if __name__ == "__main__":
    main()
