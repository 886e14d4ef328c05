"""The ``cortexgnn`` command line: a thin argparse layer over :mod:`cortexgnn.train`.

Each sub-command has an ``add_<command>_parser(subparsers)`` that declares its own flags and
a ``run_<command>(args)`` that calls the library and prints the result.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from .. import __version__
from ..checkpoint import read_checkpoint
from .config import MODELS, SESSION_FIELDS, TrainConfig
from .data import DATASETS
from .evaluate import evaluate_checkpoint
from .loop import train

__all__ = [
    "add_bench_parser",
    "add_eval_parser",
    "add_train_parser",
    "get_parser",
    "main",
    "run_bench",
    "run_eval",
    "run_train",
]

_DEFAULTS = TrainConfig()


BOOL = argparse.BooleanOptionalAction
# (group, flag, argparse options, help); each flag's destination is a TrainConfig field and
# its default is that field's default.
_TRAIN_FLAGS = [
    ("data", "--dataset", {"choices": DATASETS}, "digits ships with scikit-learn (offline)"),
    ("data", "--data-dir", {}, "root holding MNIST/raw or FashionMNIST/raw; None means "
     "$CORTEXGNN_DATA_DIR, else ./data"),
    ("data", "--download", {"action": BOOL}, "let torchvision download MNIST/Fashion-MNIST"),
    ("model", "--model", {"choices": MODELS}, "batched sparse CortexNet or the article's loop"),
    ("model", "--columns", {"type": int}, "number of cortical columns (graph nodes)"),
    ("model", "--col-out", {"type": int}, "column output size D"),
    ("model", "--graph-k", {"type": int}, "Watts-Strogatz ring degree"),
    ("model", "--graph-p", {"type": float}, "Watts-Strogatz rewiring probability"),
    ("model", "--message-iters", {"type": int}, "message-passing iterations"),
    ("model", "--plasticity-lr", {"type": float}, "Hebbian rate on the edge weights"),
    ("model", "--attention", {"action": BOOL}, "attention messages (else weighted sums)"),
    ("model", "--e-i-ratio", {"type": float}, "inhibition strength in each column"),
    ("model", "--dropout", {"type": float}, "dropout probability"),
    ("model", "--attention-uses-edge-weight", {"action": BOOL},
     "fix: the Hebbian edge weights gate attention"),
    ("model", "--freeze-homeostasis-in-eval", {"action": BOOL},
     "fix: evaluation leaves the homeostasis statistics alone"),
    ("protocol", "--epochs", {"type": int}, "training epochs"),
    ("protocol", "--batch-size", {"type": int}, "batch size (training and evaluation)"),
    ("protocol", "--lr", {"type": float}, "AdamW learning rate"),
    ("protocol", "--weight-decay", {"type": float}, "AdamW weight decay"),
    ("protocol", "--t-max-epochs", {"type": float}, "cosine schedule period T_max, in epochs"),
    ("protocol", "--eval-every", {"type": int},
     "evaluate on the full test set after every N-th batch of an epoch"),
    ("protocol", "--max-steps", {"type": int}, "stop with a checkpoint after this many steps"),
    ("protocol", "--seed", {"type": int}, "seeds weights, dropout, shuffling and the graph"),
    ("run", "--device", {}, "auto, cpu, cuda or cuda:N"),
    ("run", "--threads", {"type": int},
     "torch CPU threads; None keeps torch's choice (1 is often faster on a busy machine)"),
    ("run", "--compile", {"action": BOOL}, "torch.compile the column + message-passing stage "
     "(its dropout masks differ from eager mode's)"),
    ("run", "--out-dir", {}, "run directory: checkpoint.pth, metrics.jsonl, curves.png, "
     "summary.json"),
    ("run", "--resume", {"metavar": "CHECKPOINT"}, "continue the run saved in CHECKPOINT"),
    ("run", "--progress", {"action": BOOL}, "tqdm progress bar"),
    ("run", "--plot", {"action": BOOL}, "write curves.png at the end (needs matplotlib)"),
    ("run", "--log-every", {"type": int}, "steps between training-loss records"),
    ("run", "--final-eval", {"action": BOOL}, "evaluate once more at the end of the run"),
]  # fmt: skip


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """The ``train`` sub-command: the article's protocol, every setting a flag."""
    p = subparsers.add_parser(
        "train",
        help="train a model (default: the article's protocol on the offline digits set)",
        description="Train CortexNet (or the dense reference) with the article's protocol: "
        "AdamW, cosine schedule, periodic evaluation on the full test set, a checkpoint "
        "every epoch. With --resume, settings you do not type come from the checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    groups = {name: p.add_argument_group(name) for name in ("data", "model", "protocol", "run")}
    for group, flag, options, text in _TRAIN_FLAGS:
        dest = flag[2:].replace("-", "_")
        default = getattr(_DEFAULTS, dest)
        groups[group].add_argument(flag, dest=dest, default=default, help=text, **options)
    p.set_defaults(handler=run_train)
    return p


def _config_from_args(args: argparse.Namespace, given: set[str]) -> TrainConfig:
    """A ``TrainConfig``; when resuming, untyped run settings come from the checkpoint."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    if args.resume:
        saved = read_checkpoint(args.resume).get("config", {})
        for name in saved.keys() & values.keys():
            if name not in given and name not in SESSION_FIELDS:
                values[name] = saved[name]
        if "out_dir" not in given and "out_dir" in saved:
            values["out_dir"] = saved["out_dir"]
    return TrainConfig(**values)


def run_train(args: argparse.Namespace) -> int:
    """Train, then print a one-screen summary."""
    config = _config_from_args(args, args.given)
    s = train(config)
    acc = "n/a" if s["final_test_acc"] is None else f"{100 * s['final_test_acc']:.2f} %"
    best = "n/a" if s["best_test_acc"] is None else f"{100 * s['best_test_acc']:.2f} %"
    env = s["environment"]
    lines = [
        f"cortexgnn train: {s['model']} on {s['dataset']}, {s['num_parameters']:,} parameters,"
        f" {env['threads']} threads, commit {env['git_commit']}",
        f"  steps          {s['steps']} ({s['epochs_completed']} epochs of "
        f"{s['steps_per_epoch']} steps{'' if s['finished'] else ', stopped early'})",
        f"  test accuracy  final {acc}, best {best} (step {s['best_step']})",
        f"  wall time      {s['train_time_s'] + s['eval_time_s']:.1f} s "
        f"(train {s['train_time_s']:.1f} s, eval {s['eval_time_s']:.1f} s)",
        f"  speed          {s['time_per_step_s'] or 0:.4f} s/step, {s['steps_per_s'] or 0:.2f} "
        f"steps/s (CPU time {s['cpu_time_per_step_s'] or 0:.4f} s/step)",
        f"  peak memory    {s['peak_memory_mb']:.0f} MiB",
        f"  files          {s['out_dir']}/ (checkpoint.pth, metrics.jsonl, summary.json"
        f"{', curves.png' if s.get('plot') else ''})",
    ]
    print("\n".join(lines))
    return 0


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """The ``eval`` sub-command: test accuracy of a checkpoint (also an article brain.pth)."""
    p = subparsers.add_parser(
        "eval",
        help="test accuracy of a checkpoint (a training checkpoint or an article brain.pth)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint.pth or brain.pth")
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="default: the checkpoint's, else mnist for 784 inputs",
    )
    p.add_argument("--data-dir", default=None, help="as for train")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(handler=run_eval)
    return p


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate and print one line."""
    r = evaluate_checkpoint(
        args.checkpoint,
        dataset=args.dataset,
        data_dir=args.data_dir,
        download=args.download,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(
        f"{r['checkpoint']}: test accuracy {100 * r['test_acc']:.2f} % "
        f"(loss {r['test_loss']:.4f}) on {r['num_test']} {r['dataset']} test images"
    )
    return 0


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """The ``bench`` sub-command: run ``benchmarks/run_all.py`` (needs a source checkout)."""
    p = subparsers.add_parser(
        "bench",
        help="run the benchmarks and render docs/benchmarks.md (--quick: about a minute)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action=argparse.BooleanOptionalAction, default=False,
                   help="small sizes; results and report under --out-dir only")  # fmt: skip
    p.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="article_step, layer_sweep, model_sweep and/or bandwidth (default all)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", default=None, help="default benchmarks/results[/quick]")
    p.set_defaults(handler=run_bench)
    return p


def run_bench(args: argparse.Namespace) -> int:
    """Import ``benchmarks.run_all`` from the checkout beside this package and run it."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "run_all.py").is_file():
        raise FileNotFoundError(f"no benchmarks/ folder beside the package in {root}: "
                                "`cortexgnn bench` needs a source checkout")  # fmt: skip
    sys.path.insert(0, str(root))
    from benchmarks import run_all

    argv = ["--device", args.device, "--threads", str(args.threads)]
    argv += ["--quick"] if args.quick else []
    argv += ["--only", *args.only] if args.only else []
    argv += ["--out-dir", args.out_dir] if args.out_dir else []
    summary = run_all.main(argv)
    print(run_all.report.headline_markdown(summary["report"]["headline"]))
    print(f"report: {summary['report']['doc']}")
    return 0


def get_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="cortexgnn", description="Cortical-column graph networks: train and evaluate."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(subparsers)
    add_eval_parser(subparsers)
    add_bench_parser(subparsers)
    return parser


def _typed_train_flags(argv: list[str]) -> set[str]:
    """The ``train`` settings the user typed in ``argv`` (the arguments after ``train``).

    A second ``train`` parser whose defaults are all ``SUPPRESS`` leaves every untyped
    destination out of the namespace.
    """
    parser = add_train_parser(argparse.ArgumentParser().add_subparsers())
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    parser.set_defaults(handler=None)
    return set(vars(parser.parse_args(argv))) - {"handler"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cortexgnn`` and ``python -m cortexgnn``; returns the exit status."""
    parser = get_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.command == "train":
        args.given = _typed_train_flags(argv[argv.index("train") + 1 :])
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError) as err:  # missing data, bad checkpoint, bad flags
        print(f"cortexgnn {args.command}: error: {err}", file=sys.stderr)
        return 2
