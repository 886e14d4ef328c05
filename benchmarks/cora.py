"""Cora node classification: a two-layer ColumnAttentionConv model beside the same model on GATConv.

Question: does ``ColumnAttentionConv`` used as an ordinary PyG layer reach GATConv's test
accuracy on Cora (standard Planetoid split) at no more training time per epoch?

Both models are the PyG GAT example's architecture (input dropout, an 8-head layer of 8
channels, ELU, dropout, a 1-head output layer; Adam, lr 0.005, weight decay 5e-4, 200
epochs) with only the convolution swapped: ``GATConv``, ``ColumnAttentionConv`` and the
same ``ColumnAttentionConv`` with ``fused=False`` (PyG's message passing instead of the
fused C++ kernel: what runs where no compiler is available). For every seed all models
are built and trained in lockstep, one epoch each in alternating order, so all see the
same load on a shared machine; the training step (forward, backward, optimiser step) is
timed per epoch and summarised by medians. Test accuracy is taken at the epoch of best
validation accuracy. Each model's two attention layers alone (forward and backward in
training mode, without the input dropout and the optimiser that all models share) are
then timed in interleaved rounds, to show the part of the epoch that the layer decides.

Run: ``python -m benchmarks run cora`` (about 70 s per seed on one CPU thread); Cora comes
from ``--data-dir`` (offline) or, with ``--download``, from PyG's ``Planetoid`` download.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv

from benchmarks import harness
from benchmarks.cora_report import plot, render, update_doc
from benchmarks.datasets import default_data_dir, load_cora
from cortexgnn import ColumnAttentionConv

try:
    from tqdm.auto import tqdm
except ImportError:  # tqdm comes with the train extra; without it, no progress bar
    tqdm = None

MODELS = ("column", "column_pyg", "gat")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        default=str(default_data_dir()),
        help="holds Planetoid/Cora/raw (default $CORTEXGNN_DATA_DIR or data)",
    )
    parser.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="fetch a missing Cora into --data-dir with PyG's Planetoid",
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per model")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=8, help="channels per head, layer 1")
    parser.add_argument("--heads", type=int, default=8, help="heads of layer 1")
    parser.add_argument("--dropout", type=float, default=0.6, help="feature and attention")
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--out-dir", default=None, help="results folder (default benchmarks/results)"
    )
    parser.add_argument("--save", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--update-doc", nargs="*", default=[], help="Markdown files with Cora table markers"
    )
    parser.add_argument("--plot", default=None, help="write the figure here (docs/img/cora.png)")
    parser.add_argument("--from-json", default=None, help="render a saved result, run nothing")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm bar"
    )
    return parser


class TwoLayerAttention(nn.Module):
    """Input dropout -> conv -> ELU -> dropout -> conv, the PyG GAT example's shape."""

    def __init__(self, kind: str, in_channels: int, num_classes: int, args) -> None:
        super().__init__()
        self.dropout = args.dropout
        hidden, heads, p = args.hidden, args.heads, args.dropout
        if kind == "gat":
            self.conv1 = GATConv(in_channels, hidden, heads=heads, dropout=p)
            self.conv2 = GATConv(hidden * heads, num_classes, heads=1, concat=False, dropout=p)
        else:
            common = dict(projection="first", bias=True, add_self_loops=True, dropout=p)
            common["fused"] = kind == "column"  # column_pyg: the same layer, PyG's propagate
            self.conv1 = ColumnAttentionConv(in_channels, hidden, heads=heads, **common)
            self.conv2 = ColumnAttentionConv(
                hidden * heads, num_classes, heads=1, concat=False, **common
            )

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, self.dropout, self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


def train_step(model, optimizer, data) -> float:
    """One full-batch step; returns its wall time in seconds."""
    start = time.perf_counter()
    model.train()
    optimizer.zero_grad()
    out = model(data.x, data.edge_index)
    F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
    optimizer.step()
    return time.perf_counter() - start


@torch.no_grad()
def accuracies(model, data) -> tuple[float, float]:
    model.eval()
    pred = model(data.x, data.edge_index).argmax(-1)
    return tuple(
        float((pred[mask] == data.y[mask]).float().mean())
        for mask in (data.val_mask, data.test_mask)
    )


def run_seed(seed: int, data, args, bar=None) -> dict[str, dict]:
    """Train every model for one seed in lockstep; per model: test accuracy and epoch times.

    ``bar`` (a tqdm bar, optional) advances by one per epoch of all models.
    """
    num_classes = int(data.y.max()) + 1
    state = {}
    for kind in args.models:
        torch.manual_seed(seed)
        model = TwoLayerAttention(kind, data.num_features, num_classes, args)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        state[kind] = dict(model=model, optimizer=optimizer, times=[], best_val=-1.0, test=0.0)
    for epoch in range(args.epochs):
        order = args.models if epoch % 2 == 0 else args.models[::-1]
        for kind in order:
            s = state[kind]
            torch.manual_seed(seed * 100_003 + epoch)  # same dropout stream per model and epoch
            s["times"].append(train_step(s["model"], s["optimizer"], data))
            val, test = accuracies(s["model"], data)
            if val > s["best_val"]:
                s["best_val"], s["test"] = val, test
        if bar is not None:
            bar.update()
    return {
        kind: dict(test_acc=s["test"], val_acc=s["best_val"], epoch_times=s["times"])
        for kind, s in state.items()
    }


def time_attention_layers(data, args) -> dict[str, dict]:
    """Median ms of each model's two attention layers, forward + backward, training mode.

    Left out: the input dropout over the ``[N, 1433]`` features, the loss and the Adam
    step, which cost the same whatever the layer.
    """
    num_classes = int(data.y.max()) + 1
    fns = {}
    for kind in args.models:
        torch.manual_seed(0)
        model = TwoLayerAttention(kind, data.num_features, num_classes, args).train()

        def layers(model=model) -> None:
            hidden = F.elu(model.conv1(data.x, data.edge_index))
            out = model.conv2(hidden, data.edge_index)
            F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()

        fns[kind] = layers
    timed = harness.time_interleaved(fns, device=torch.device("cpu"), num_threads=args.threads)
    return {
        kind: dict(median_ms=1e3 * t["median_s"], iqr_ms=1e3 * t["iqr_s"])
        for kind, t in timed.items()
    }


def summarise(runs: list[dict], warmup: int) -> dict:
    accs = [run["test_acc"] for run in runs]
    per_run = [statistics.median(run["epoch_times"][warmup:]) for run in runs]
    pooled = sorted(t for run in runs for t in run["epoch_times"][warmup:])
    q1, _, q3 = statistics.quantiles(pooled, n=4) if len(pooled) > 1 else (pooled[0],) * 3
    return dict(
        test_acc=accs,
        test_acc_mean=statistics.fmean(accs),
        test_acc_std=statistics.stdev(accs) if len(accs) > 1 else 0.0,
        epoch_ms_median=1e3 * statistics.median(pooled),
        epoch_ms_iqr=[1e3 * q1, 1e3 * q3],
        epoch_ms_median_per_seed=[1e3 * t for t in per_run],
    )


def publish(result: dict, args) -> None:
    """Write the table into every ``--update-doc`` file and the figure to ``--plot``."""
    for doc in args.update_doc:
        update_doc(Path(doc), result)
    if args.plot:
        plot(result, Path(args.plot))


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        publish(result, args)
        print(render(result))
        return result
    torch.set_num_threads(args.threads)
    env = harness.environment(torch.device("cpu"), args.threads)
    with tempfile.TemporaryDirectory(prefix="cortexgnn-cora-") as cache:
        data = load_cora(args.data_dir, cache, download=args.download)
    per_model: dict[str, list[dict]] = {kind: [] for kind in args.models}
    bar = None
    if tqdm is not None and args.progress:
        bar = tqdm(total=args.seeds * args.epochs, unit="epoch", desc="Cora", mininterval=1.0)
    for seed in range(args.seeds):
        for kind, run in run_seed(seed, data, args, bar).items():
            per_model[kind].append(run)
    if bar is not None:
        bar.close()
    warmup = min(5, args.epochs - 1)
    num_classes = int(data.y.max()) + 1
    result = dict(
        question="Cora test accuracy and training time per epoch: ColumnAttentionConv vs GATConv",
        args=vars(args),
        environment=env,
        timing="median over epochs (first 5 dropped) of forward+backward+Adam step, all "
        "models trained in lockstep with alternating order",
        models={},
    )
    result["attention_layers"] = time_attention_layers(data, args)
    for kind, runs in per_model.items():
        summary = summarise(runs, warmup)
        model = TwoLayerAttention(kind, data.num_features, num_classes, args)
        summary["params"] = sum(p.numel() for p in model.parameters())
        result["models"][kind] = summary
        print(
            f"{kind:>6}: test acc {100 * summary['test_acc_mean']:.2f} +- "
            f"{100 * summary['test_acc_std']:.2f} % over {len(runs)} seeds, "
            f"{summary['epoch_ms_median']:.1f} ms/epoch median "
            f"(IQR {summary['epoch_ms_iqr'][0]:.1f}-{summary['epoch_ms_iqr'][1]:.1f}), "
            f"{summary['params']} parameters"
        )
    if args.save:
        harness.write_result("cora", result, args.out_dir)
    publish(result, args)
    return result


if __name__ == "__main__":
    main()
