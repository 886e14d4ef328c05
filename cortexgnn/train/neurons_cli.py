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

from .._limits import DEFAULT_MAX_ELEMENTS

if TYPE_CHECKING:  # torch loads inside the handlers: --help stays fast
    import torch

WINDOW = 10_000  # sweeps of recordings kept in memory
CHUNK = 1_000  # sweeps run and recorded at a time


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
    run.add_argument(
        "--steps",
        type=int,
        default=30,
        help="sweeps to run; the log and the action counts stream over all of them, while "
        "the readout, plots and animation keep only the last --window sweeps in memory",
    )
    run.add_argument(
        "--window",
        type=int,
        default=WINDOW,
        help="sweeps kept in memory for the readout, plots and animation (the last ones)",
    )
    run.add_argument(
        "--max-elements",
        type=int,
        default=DEFAULT_MAX_ELEMENTS,
        help="refuse a network (from a file or --num-nodes/--copies) needing more elements",
    )
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
    if any(not 0 <= k < 2**62 for pair in links for k in pair):
        bad = next(k for pair in links for k in pair if not 0 <= k < 2**62)
        raise ValueError(f"{path}: neuron index {bad} is out of range (0 and up)")
    return torch.tensor(links).t()


def build_network(args: argparse.Namespace):
    """The network the arguments describe (a saved file keeps its own flags and copies)."""
    import torch

    from cortexgnn.neurons import NeuronNetwork, load_network, random_links
    from cortexgnn.neurons.io import check_network_size
    from cortexgnn.neurons.reference import Network, Neuron

    if args.copies < 0:
        raise ValueError(f"--copies must be >= 0 (0: one network), got {args.copies}")
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    device = _device(args.device)
    batch_shape = (args.copies,) if args.copies > 0 else ()
    flags = dict(synchronous_delivery=args.synchronous_delivery, copy_synapse=args.copy_synapse)
    if args.graph is not None:
        path = Path(args.graph)
        if not path.is_file():
            raise FileNotFoundError(f"--graph {path}: no such file")
        if path.suffix in (".pt", ".pth"):
            return load_network(path, device=device, max_elements=args.max_elements)
        links = _read_edge_list(path)
        num_nodes = int(links.max()) + 1
        check_network_size(num_nodes, batch_shape, links.size(1), args.max_elements,
                           what=f"--graph {path}", fix=_RAISE)  # fmt: skip
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
    if args.out_degree < 0:
        raise ValueError(f"--out-degree must be >= 0, got {args.out_degree}")
    check_network_size(args.num_nodes, batch_shape, args.num_nodes * args.out_degree,
                       args.max_elements, what="--num-nodes/--copies", fix=_RAISE)  # fmt: skip
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed must fit in 64 bits (0 <= seed < 2^63), got {args.seed}")
    generator = torch.Generator().manual_seed(args.seed)
    links = random_links(args.num_nodes, args.out_degree, generator=generator)
    return NeuronNetwork(links, args.num_nodes, batch_shape=batch_shape, dtype=dtype,
                         device=device, **flags)  # fmt: skip


_RAISE = "pass --max-elements"


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
    if args.window < 1:
        raise ValueError(f"--window must be at least 1, got {args.window}")
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
    first = (0,) * len(net.batch_shape)

    def copy0(tensor: torch.Tensor) -> torch.Tensor:  # [T, N, *, ...] -> [T, N, ...]
        return tensor[(slice(None), slice(None), *first)].cpu()

    # Run in chunks: counts and the log stream over every sweep; the recordings of copy 0
    # are kept for the last `window` sweeps only, so memory does not grow with --steps.
    counts = torch.zeros(len(Action), dtype=torch.long)
    window: dict[str, list[torch.Tensor]] = {name: [] for name in record}
    kept = 0
    log = open(args.log, "w", encoding="utf-8") if args.log else None  # noqa: SIM115
    try:
        for start in range(0, args.steps, CHUNK):
            chunk = min(CHUNK, args.steps - start)
            out = net.run(
                chunk,
                stimulus=stimulus[1].to(net.device, net.dtype) if stimulus else None,
                stimulus_nodes=stimulus[0] if stimulus else None,
                record=record,
                progress=(lambda done: bar.update(1)) if bar is not None else None,
            )
            actions = copy0(out["actions"])  # [chunk, N]
            counts += torch.bincount(actions.flatten().long(), minlength=len(Action))
            if log is not None:
                names = net.names
                for t, sweep in enumerate(event_log(actions, net.edge_index.cpu(), names)):
                    log.writelines(f"{start + t + 1}\t{n}\t{a}\n" for n, a in sweep)
            for name in record:
                window[name].append(copy0(out[name]))
            kept += chunk
            while kept - window["actions"][0].size(0) >= args.window:  # drop whole chunks
                kept -= window["actions"][0].size(0)
                for name in record:
                    window[name].pop(0)
    finally:
        if log is not None:
            log.close()
        if bar is not None:
            bar.close()
    recent = {name: torch.cat(chunks)[-args.window :] for name, chunks in window.items()}
    offset = args.steps - recent["actions"].size(0)  # sweeps before the window
    print(
        f"{net!r}: {args.steps} sweeps; actions of copy 0: "
        + ", ".join(f"{a.word} {int(c)}" for a, c in zip(Action, counts, strict=True))
    )
    released = recent["releases"].abs().sum(-1) > 0  # [T, N]
    span = f" (the last {args.window} kept)" if offset else ""
    for k in readout:
        sweeps = (released[:, k].nonzero().flatten() + offset + 1).tolist()
        print(f"neuron {net.names[k]} released at sweeps {sweeps}{span}")
    actions = recent["actions"]
    if args.plots:
        from cortexgnn.train.neuron_plots import raster, traces

        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        raster(actions, folder / "neurons_raster.png", net.names)
        states = recent["current_state"][:, trace_nodes]
        thresholds = [float(net.threshold[(k, *first)]) for k in trace_nodes]
        traces(states, trace_nodes, folder / "neurons_traces.png", net.names, thresholds)
    if args.animation:
        from cortexgnn.train.neuron_plots import animate

        animate(net.edge_index.cpu(), net.num_nodes, actions, recent["sent"],
                args.animation, net.names)  # fmt: skip
    if args.save:
        save_network(net, args.save)
    return 0
