"""``cortexgnn neurons simulate``: run a seed-001 neuron network from the command line.

A thin layer over :mod:`cortexgnn.neurons`: the graph comes from a saved network, an edge
list file (``sender receiver`` per line, read as the article's ``link`` calls), the
article's two-neuron example, or a random graph; the stimulus is added to chosen neurons'
dendrites every sweep; outputs are an event log, pictures, a GIF and the final network.
Offline: nothing is downloaded. matplotlib and tqdm are imported only when used.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads inside the handlers: --help stays fast
    import torch


def add_neurons_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``neurons`` (with its ``simulate`` sub-command) on ``subparsers``."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    neurons = subparsers.add_parser(
        "neurons", help="the seed-001 neuron network simulator", formatter_class=formatter
    )
    neurons.set_defaults(handler=run_neurons_simulate)
    commands = neurons.add_subparsers(dest="neurons_command", required=True)
    p = commands.add_parser(
        "simulate",
        help="run sweeps and write a log, plots, an animation",
        formatter_class=formatter,
    )
    p.set_defaults(handler=run_neurons_simulate)
    graph = p.add_argument_group("graph (one of --graph, --article or a generated random graph)")
    graph.add_argument("--graph", default=None, help="saved network (.pt) or edge list file")
    graph.add_argument("--article", action="store_true", help="the article's two-neuron example")
    graph.add_argument("--num-nodes", type=int, default=50, help="random graph: neurons")
    graph.add_argument("--out-degree", type=int, default=3, help="random graph: links each")
    graph.add_argument("--seed", type=int, default=0)
    run = p.add_argument_group("run")
    run.add_argument("--steps", type=int, default=30)
    run.add_argument(
        "--stimulus",
        action="append",
        default=[],
        metavar="NODE:EXC,INH",
        help="add EXC, INH to NODE's dendrite every sweep (repeatable)",
    )
    run.add_argument("--copies", type=int, default=0, help="independent copies (0: one network)")
    run.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    run.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    run.add_argument("--synchronous-delivery", action=argparse.BooleanOptionalAction,
                     default=False, help="fix: order-free delivery")  # fmt: skip
    run.add_argument("--copy-synapse", action=argparse.BooleanOptionalAction, default=False,
                     help="fix: receivers get the unscaled synapse")  # fmt: skip
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    out = p.add_argument_group("outputs (copy 0)")
    out.add_argument("--log", default=None, help="write the event log (article's order) here")
    out.add_argument("--readout", default=None, help="neurons whose releases are reported: 0,3")
    out.add_argument(
        "--plots", default=None, help="folder for neurons_raster.png and neurons_traces.png"
    )
    out.add_argument("--trace-nodes", default="0,1", help="neurons drawn in neurons_traces.png")
    out.add_argument("--animation", default=None, help="write a GIF of the network here")
    out.add_argument("--save", default=None, help="save the final network here (.pt)")
    return p


def _node_list(text: str, num_nodes: int, flag: str) -> list[int]:
    try:
        nodes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{flag} takes neuron indices like 0,3,7; got {text!r}") from None
    bad = [k for k in nodes if not 0 <= k < num_nodes]
    if bad:
        raise ValueError(f"{flag} names neurons {bad} outside 0..{num_nodes - 1}")
    return nodes


def _stimulus(specs: list[str], num_nodes: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    import torch

    if not specs:
        return None
    nodes, pairs = [], []
    for spec in specs:
        try:
            node, values = spec.split(":")
            exc, inh = (float(v) for v in values.split(","))
        except ValueError:
            raise ValueError(f"--stimulus takes NODE:EXC,INH like 0:1.5,0; got {spec!r}") from None
        nodes.append(_node_list(node, num_nodes, "--stimulus")[0])
        pairs.append((exc, inh))
    return torch.tensor(nodes), torch.tensor(pairs, dtype=torch.float64)


def _read_edge_list(path: Path) -> torch.Tensor:
    import torch

    links = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
            raise ValueError(
                f"{path}:{number}: an edge list line is 'sender receiver' (two integers), "
                f"got {line!r}; or pass a network saved with --save"
            )
        links.append((int(parts[0]), int(parts[1])))
    if not links:
        raise ValueError(f"{path} holds no links")
    return torch.tensor(links).t()


def build_network(args: argparse.Namespace):
    """The network the arguments describe (a saved file keeps its own flags and copies)."""
    import torch

    from cortexgnn.neurons import NeuronNetwork, load_network, random_links
    from cortexgnn.neurons.reference import Network, Neuron

    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    device = _device(args.device)
    batch_shape = (args.copies,) if args.copies > 0 else ()
    flags = dict(synchronous_delivery=args.synchronous_delivery, copy_synapse=args.copy_synapse)
    if args.graph is not None:
        path = Path(args.graph)
        if not path.is_file():
            raise FileNotFoundError(f"--graph {path}: no such file")
        if path.suffix in (".pt", ".pth"):
            return load_network(path, device=device)
        links = _read_edge_list(path)
        num_nodes = int(links.max()) + 1
        return NeuronNetwork(links, num_nodes, batch_shape=batch_shape, dtype=dtype,
                             device=device, **flags)  # fmt: skip
    if args.article:
        loop = Network()
        first, second = Neuron("ПЕРВЫЙ"), Neuron("ВТОРОЙ")
        loop.add(first)
        loop.add(second)
        loop.link(first, second)
        return NeuronNetwork.from_reference(loop, dtype=dtype, device=device, **flags)
    if args.num_nodes < 2:
        raise ValueError(f"--num-nodes must be at least 2, got {args.num_nodes}")
    generator = torch.Generator().manual_seed(args.seed)
    links = random_links(args.num_nodes, args.out_degree, generator=generator)
    return NeuronNetwork(links, args.num_nodes, batch_shape=batch_shape, dtype=dtype,
                         device=device, **flags)  # fmt: skip


def _device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA device is available; use cpu")
    return torch.device(name)


def run_neurons_simulate(args: argparse.Namespace) -> int:
    """Run the simulation the arguments describe; returns the exit status."""
    import torch

    from cortexgnn.neurons import Action, event_log, save_network

    if getattr(args, "neurons_command", "simulate") is None:
        raise ValueError("choose a neurons command: cortexgnn neurons simulate --help")
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    net = build_network(args)
    stimulus = _stimulus(args.stimulus, net.num_nodes)
    readout = _node_list(args.readout, net.num_nodes, "--readout") if args.readout else []
    trace_nodes = _node_list(args.trace_nodes, net.num_nodes, "--trace-nodes")
    record = ["actions", "releases"]
    if args.plots or args.animation:
        record += ["sent", "current_state"]
    bar = None
    if args.progress:
        from tqdm import tqdm

        bar = tqdm(total=args.steps, unit="sweep", desc="neurons")
    out = net.run(
        args.steps,
        stimulus=stimulus[1].to(net.device, net.dtype) if stimulus else None,
        stimulus_nodes=stimulus[0] if stimulus else None,
        record=record,
        progress=(lambda done: bar.update(1)) if bar is not None else None,
    )
    if bar is not None:
        bar.close()
    first = (0,) * len(net.batch_shape)

    def copy0(tensor: torch.Tensor) -> torch.Tensor:  # [T, N, *, ...] -> [T, N, ...]
        return tensor[(slice(None), slice(None), *first)].cpu()

    actions = copy0(out["actions"])
    counts = torch.bincount(actions.flatten().long(), minlength=len(Action))
    print(
        f"{net!r}: {args.steps} sweeps; actions of copy 0: "
        + ", ".join(f"{a.word} {int(c)}" for a, c in zip(Action, counts, strict=True))
    )
    released = copy0(out["releases"]).abs().sum(-1) > 0  # [T, N]
    for k in readout:
        sweeps = (released[:, k].nonzero().flatten() + 1).tolist()
        print(f"neuron {net.names[k]} released at sweeps {sweeps}")
    if args.log:
        lines = [
            f"{t + 1}\t{name}\t{action}"
            for t, sweep in enumerate(event_log(actions, net.edge_index.cpu(), net.names))
            for name, action in sweep
        ]
        Path(args.log).write_text("\n".join(lines) + "\n")
    if args.plots:
        from cortexgnn.train.neuron_plots import raster, traces

        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        raster(actions, folder / "neurons_raster.png", net.names)
        states = copy0(out["current_state"])[:, trace_nodes]
        thresholds = [float(net.threshold[(k, *first)]) for k in trace_nodes]
        traces(states, trace_nodes, folder / "neurons_traces.png", net.names, thresholds)
    if args.animation:
        from cortexgnn.train.neuron_plots import animate

        animate(net.edge_index.cpu(), net.num_nodes, actions, copy0(out["sent"]),
                args.animation, net.names)  # fmt: skip
    if args.save:
        save_network(net, args.save)
    return 0
