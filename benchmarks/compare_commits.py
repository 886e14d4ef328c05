"""Is a commit slower than another? The same three workloads, timed for both in one run.

The workloads are what users pay for: the article's training step (``CortexNet``, 64
columns, batch 128), one full-batch Cora training epoch of the two-layer attention model
(the layer's ``projection='first'`` setting; needs Planetoid under ``--data-dir``), and one
forward+backward of ``ColumnAttentionConv`` alone at N = 10,000 nodes (batch 16, 128
channels, Watts-Strogatz k = 8).

Each commit is checked out into a temporary ``git worktree``; a worker process per commit
imports the package from that tree (never the installed one), warms up, and times every
workload. Workers run alternately, ``--rounds`` times each (A B A B ...), so both commits
see the same load on a shared machine; the result is the median over rounds of each
worker's median, and the ratio new / old, in wall time and in process CPU time (steadier
on a shared virtual machine, where wall time also counts time stolen by other guests). Results go to
``benchmarks/results/compare_commits.json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("article_step", "cora_epoch", "layer_10k")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="a3fbd8b", help="the older commit")
    p.add_argument("--head", default="HEAD", help="the newer commit")
    p.add_argument("--rounds", type=int, default=5, help="worker runs per commit")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per workload per run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None, help="folder holding Planetoid/Cora/raw")
    p.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=WORKLOADS)
    p.add_argument("--out-dir", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True)
    # internal: the worker side
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def _conv_options(conv_class, **options) -> dict:
    """Spell ``projection='first'`` for either API (older commits had ``project_first``)."""
    if "projection" in inspect.signature(conv_class).parameters:
        return options
    options.pop("projection")
    return {**options, "project_first": True}


def _workloads(args) -> dict:
    """Build every workload in the worker: name -> a function that runs it once."""
    import torch
    import torch.nn.functional as F

    from cortexgnn import ColumnAttentionConv, CortexNet, small_world_graph

    torch.manual_seed(0)
    runs = {}
    if "article_step" in args.workloads:
        model = CortexNet(graph_seed=0, dropout=0.0)
        x, y = torch.rand(128, 784), torch.randint(0, 10, (128,))

        def article_step():
            model.zero_grad(set_to_none=True)
            model.training_step((x, y))

        runs["article_step"] = article_step
    if "layer_10k" in args.workloads:
        n = 10_000
        conv = ColumnAttentionConv(128, 128)
        edge_index = small_world_graph(n, 8, 0.15, seed=0)
        h = torch.randn(n, 16, 128, requires_grad=True)
        grad = torch.randn(n, 16, 128)

        def layer_10k():
            torch.autograd.grad(conv(h, edge_index), (h, *conv.parameters()), grad)

        runs["layer_10k"] = layer_10k
    if "cora_epoch" in args.workloads and args.data_dir:
        from benchmarks.datasets import load_cora  # imports no cortexgnn: safe in a worker

        data = load_cora(Path(args.data_dir), Path(tempfile.mkdtemp(prefix="cortexgnn-cora-")))
        common = _conv_options(
            ColumnAttentionConv, projection="first", bias=True, add_self_loops=True, dropout=0.6
        )
        conv1 = ColumnAttentionConv(data.num_features, 8, heads=8, **common)
        conv2 = ColumnAttentionConv(64, 7, heads=1, concat=False, **common)
        params = [*conv1.parameters(), *conv2.parameters()]
        optimizer = torch.optim.Adam(params, lr=0.005, weight_decay=5e-4)

        def cora_epoch():
            optimizer.zero_grad()
            h = F.dropout(data.x, 0.6, True)
            h = F.dropout(F.elu(conv1(h, data.edge_index)), 0.6, True)
            out = conv2(h, data.edge_index)
            F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
            optimizer.step()

        runs["cora_epoch"] = cora_epoch
    return runs


def worker(args) -> None:
    """Time every workload of the package in ``args.worker``; print one JSON line."""
    sys.path.insert(0, args.worker)  # before anything imports cortexgnn
    import torch

    import cortexgnn

    if not Path(cortexgnn.__file__).resolve().is_relative_to(Path(args.worker).resolve()):
        raise RuntimeError(f"imported {cortexgnn.__file__}, not the tree {args.worker}")
    torch.set_num_threads(args.threads)
    out = {}
    for name, run in _workloads(args).items():
        for _ in range(2):  # warm-up: kernel load, graph caches, allocator
            run()
        wall, cpu = [], []
        for _ in range(args.repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            run()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
        out[name] = statistics.median(wall)
        out[f"{name}:cpu"] = statistics.median(cpu)
    print(json.dumps(out))


def _checkout(commit: str, into: Path) -> str:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), commit],
        check=True,
        capture_output=True,
    )
    sha = subprocess.run(
        ["git", "-C", str(into), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    )
    return sha.stdout.strip()


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    # Imported here, not at the top: a worker must import cortexgnn from its own tree first.
    from benchmarks import harness
    from benchmarks.datasets import DataNotFound, cora_raw_dir, has_cora

    if "cora_epoch" in args.workloads:
        raw = cora_raw_dir(args.data_dir or ".")
        if not args.data_dir or not has_cora(args.data_dir):
            raise DataNotFound(
                f"the cora_epoch workload needs Cora in {raw}: pass --data-dir to a folder "
                "holding Planetoid/Cora/raw (`python -m benchmarks run cora --download` "
                "fetches it), or leave cora_epoch out of --workloads"
            )
    passthrough = ["--repeats", str(args.repeats), "--threads", str(args.threads)]
    passthrough += ["--workloads", *args.workloads]
    passthrough += ["--data-dir", args.data_dir] if args.data_dir else []
    samples: dict[str, dict[str, list[float]]] = {"base": {}, "head": {}}
    with tempfile.TemporaryDirectory(prefix="cortexgnn-compare-") as tmp:
        trees = {side: Path(tmp) / side for side in samples}
        commits = {side: _checkout(getattr(args, side), tree) for side, tree in trees.items()}
        try:
            for _ in range(args.rounds):
                for side, tree in trees.items():  # alternate: both commits share the load
                    cmd = [sys.executable, "-m", "benchmarks.compare_commits", "--worker",
                           str(tree), *passthrough]  # fmt: skip
                    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                    if done.returncode != 0:
                        raise RuntimeError(f"worker for {side} failed:\n{done.stderr[-3000:]}")
                    times = json.loads(done.stdout.strip().splitlines()[-1])
                    for name, seconds in times.items():
                        samples[side].setdefault(name, []).append(seconds)
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    capture_output=True,
                )
    rows = []
    for name in args.workloads:
        if name not in samples["base"]:
            continue
        row = {"workload": name}
        for kind, key in (("", name), ("cpu_", f"{name}:cpu")):
            base = statistics.median(samples["base"][key])
            head = statistics.median(samples["head"][key])
            row.update({
                f"base_{kind}ms": 1e3 * base, f"head_{kind}ms": 1e3 * head,
                f"{kind}ratio": head / base,
                f"base_{kind}rounds_ms": [1e3 * t for t in samples["base"][key]],
                f"head_{kind}rounds_ms": [1e3 * t for t in samples["head"][key]],
            })  # fmt: skip
        rows.append(row)
    result = {
        "benchmark": "compare_commits",
        "config": {k: v for k, v in vars(args).items() if k != "worker"},
        "commits": commits,
        "environment": harness.environment(harness.pick_device("cpu"), args.threads),
        "rows": rows,
    }
    if args.save:
        harness.write_result("compare_commits", result, args.out_dir)
    return result


if __name__ == "__main__":
    out = main()
    for row in out.get("rows", []):
        print(
            f"{row['workload']:>13}: {out['commits']['base']} {row['base_ms']:8.1f} ms   "
            f"{out['commits']['head']} {row['head_ms']:8.1f} ms   ratio {row['ratio']:.3f}   "
            f"(CPU time ratio {row['cpu_ratio']:.3f})"
        )
