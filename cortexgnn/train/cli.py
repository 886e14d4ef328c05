"""The ``cortexgnn`` command line: a thin argparse layer over :mod:`cortexgnn.train`.

Each sub-command has an ``add_<command>_parser(subparsers)`` that declares its own flags and
a ``run_<command>(args)`` that calls the library and prints the result. This module imports
no torch, numpy or training code at import time (``cortexgnn --help`` stays fast): the
handlers import what they run. Every error a user can cause (a bad flag, a missing file, a
full disk) ends as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import sys
import warnings
from dataclasses import fields
from pathlib import Path

from .. import __version__
from ..nn.config import ModelConfig
from .config import DATASET_FIELDS, MODELS, SESSION_FIELDS, TrainConfig
from .data import DATASETS

__all__ = [
    "MODEL_HELP",
    "add_bench_parser",
    "add_doctor_parser",
    "add_eval_parser",
    "add_train_parser",
    "get_parser",
    "main",
    "run_bench",
    "run_doctor",
    "run_eval",
    "run_train",
]

_DEFAULTS = TrainConfig()
BOOL = argparse.BooleanOptionalAction

#: Help of every ``ModelConfig`` field the command line sets (``in_dim`` and ``top_out``
#: come from the dataset). The flag is the field's name hyphenated, its default the field's.
MODEL_HELP = {
    "num_columns": "number of cortical columns N (graph nodes)",
    "col_out": "column output size D",
    "graph_k": "Watts-Strogatz ring degree (= num-columns: complete graph)",
    "graph_p": "Watts-Strogatz rewiring probability",
    "message_iters": "message-passing iterations (0: the columns alone)",
    "plasticity_lr": "Hebbian rate on the edge weights",
    "use_attention": "attention messages (else sigmoid(edge weight)-weighted sums)",
    "e_i_ratio": "inhibition strength in each column",
    "dropout": "dropout probability",
    "graph_seed": "seed of the small-world graph; None: --seed",
    "attention_uses_edge_weight": "fix: the Hebbian edge weights gate attention",
    "freeze_homeostasis_in_eval": "fix: evaluation leaves the homeostasis statistics alone",
    "homeostasis_min_divisor": "fix: homeostasis divides by max(activity, M); None: the "
    "article's activity + 1e-6",
    "use_homeostasis": "homeostatic scaling (off: an ablation)",
    "use_hebbian": "Hebbian plasticity of the edge weights (off: an ablation)",
    "check_finite_input": "refuse NaN/Inf input (one reduction per batch)",
}


def _optional(kind: type):
    """An argparse type: ``kind``, or ``None`` spelt ``none``."""

    def parse(text: str):
        if text.lower() == "none":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid {kind.__name__} value: {text!r} (or none)"
            ) from None

    parse.__name__ = kind.__name__
    return parse


# (group, flag, argparse options, help) of the TrainConfig fields outside the model; each
# flag's destination is the field and its default the field's default.
_TRAIN_FLAGS = [
    ("data", "--dataset", {"choices": DATASETS}, "digits ships with scikit-learn (offline)"),
    ("data", "--data-dir", {}, "root holding MNIST/raw or FashionMNIST/raw; None means "
     "$CORTEXGNN_DATA_DIR, else ./data"),
    ("data", "--download", {"action": BOOL}, "let torchvision download MNIST/Fashion-MNIST"),
    ("model", "--model", {"choices": MODELS}, "batched sparse CortexNet, the article's loop, "
     "or a baseline sized from the model flags (mlp-small, mlp-matched, single-column)"),
    ("protocol", "--epochs", {"type": int}, "training epochs"),
    ("protocol", "--batch-size", {"type": int}, "batch size (training and evaluation)"),
    ("protocol", "--lr", {"type": float}, "AdamW learning rate"),
    ("protocol", "--weight-decay", {"type": float}, "AdamW weight decay"),
    ("protocol", "--t-max-epochs", {"type": float}, "cosine schedule period T_max, in epochs"),
    ("protocol", "--eval-every", {"type": int},
     "evaluate every N optimizer steps (counted across epochs): on the test set, or on the "
     "validation split with --val-size"),
    ("protocol", "--val-size", {"type": _optional(int)},
     "hold out this many training images (a fixed split; a study uses 5000): evaluations and "
     "the best step on them, the test set once at the end with the best step's weights; "
     "none: the article's protocol (every evaluation on the test set)"),
    ("protocol", "--max-steps", {"type": int}, "stop with a checkpoint after this many steps"),
    ("protocol", "--seed", {"type": int}, "seeds weights, dropout, shuffling (and the graph "
     "unless --graph-seed)"),
    ("run", "--device", {}, "auto, cpu, cuda, cuda:N or mps"),
    ("run", "--threads", {"type": _optional(int)},
     "torch CPU threads; none: torch's choice (one per core). 1 measured fastest on a busy "
     "2-core machine (digits defaults: 0.23 s/step vs 1.1 s/step with 2); on an idle "
     "many-core machine compare the speed line of a few --max-steps with more"),
    ("run", "--compile", {"action": BOOL}, "torch.compile the column + message-passing stage "
     "(its dropout masks differ from eager mode's)"),
    ("run", "--out-dir", {}, "run folder (checkpoint.pth, metrics.jsonl, curves.png, "
     "summary.json); None: a new runs/<timestamp>, with runs/latest pointing at it, or with "
     "--resume the checkpoint's folder"),
    ("run", "--overwrite", {"action": BOOL}, "replace a run already in --out-dir"),
    ("run", "--resume", {"metavar": "CHECKPOINT"}, "continue the run saved in CHECKPOINT"),
    ("run", "--progress", {"action": BOOL}, "tqdm progress bar"),
    ("run", "--plot", {"action": BOOL}, "write curves.png at the end (needs matplotlib)"),
    ("run", "--log-every", {"type": int}, "steps between training-loss records"),
    ("run", "--final-eval", {"action": BOOL}, "evaluate once more at the end of the run"),
]  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: the problem and where to look."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _model_flags() -> list[tuple[str, dict, str]]:
    """``(dest, argparse options, help)`` of every ModelConfig field the command line sets."""
    kinds = {"int": int, "float": float}
    flags = []
    for f in fields(ModelConfig):
        if f.name in DATASET_FIELDS:
            continue
        annotation = str(f.type)
        if annotation.startswith("bool"):
            options = {"action": BOOL}
        else:
            kind = kinds[annotation.split(" ")[0]]
            options = {"type": _optional(kind) if "None" in annotation else kind}
        flags.append((f.name, options, MODEL_HELP.get(f.name, f"ModelConfig.{f.name}")))
    return flags


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
    for dest, options, text in _model_flags():
        default = getattr(_DEFAULTS.model_config, dest)
        flag = "--" + dest.replace("_", "-")
        groups["model"].add_argument(flag, dest=dest, default=default, help=text, **options)
    p.set_defaults(handler=run_train)
    return p


def _config_from_args(args: argparse.Namespace, given: set[str]) -> TrainConfig:
    """A ``TrainConfig``; when resuming, untyped run settings come from the checkpoint.

    ``--out-dir`` is never inherited: a resumed run writes where its checkpoint is.
    """
    top = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "model_config"}
    model = {dest: getattr(args, dest) for dest, _, _ in _model_flags()}
    if args.resume:
        from ..checkpoint import read_checkpoint
        from .config import CheckpointMismatchError

        stored = read_checkpoint(args.resume).get("config")
        if stored is not None:
            try:
                saved = TrainConfig.from_dict(stored)
            except (TypeError, ValueError) as err:
                raise CheckpointMismatchError(
                    f"{args.resume} holds an unreadable run config: {err}"
                ) from err
            inherit = lambda name: name not in given and name not in SESSION_FIELDS  # noqa: E731
            for name in top:
                if inherit(name) and name != "out_dir":
                    top[name] = getattr(saved, name)
            for name in model:
                if inherit(name):
                    model[name] = getattr(saved.model_config, name)
    try:
        return TrainConfig(**top, model_config=ModelConfig().replace(**model))
    except TypeError as err:  # a value of the wrong kind (from a stored config)
        raise ValueError(str(err)) from err


def run_train(args: argparse.Namespace) -> int:
    """Train, then print a one-screen summary (rank 0 only under torchrun)."""
    from .loop import train

    config = _config_from_args(args, args.given)
    s = train(config)
    if s.get("rank", 0) != 0:
        return 0
    acc = "n/a" if s["final_test_acc"] is None else f"{100 * s['final_test_acc']:.2f} %"
    best = "n/a" if s["best_test_acc"] is None else f"{100 * s['best_test_acc']:.2f} %"
    env = s["environment"]
    processes = f", {s['world_size']} processes" if s.get("world_size", 1) > 1 else ""
    lines = [
        f"cortexgnn train: {s['model']} on {s['dataset']}, {s['num_parameters']:,} parameters,"
        f" {env['threads']} thread{'s' if env['threads'] != 1 else ''}{processes}, commit "
        f"{env['git_commit']}",
        f"  steps          {s['steps']} ({s['epochs_completed']} epochs of "
        f"{s['steps_per_epoch']} steps{'' if s['finished'] else ', stopped early'})",
        f"  test accuracy  final {acc}, best {best} (step {s['best_step']})"
        if s.get("selection") != "validation"
        else f"  validation     best {100 * (s['best_val_acc'] or 0):.2f} % (step "
        f"{s['best_step']}); test accuracy {acc} (once, with step {s['best_step']}'s weights)",
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
        description="Evaluate a checkpoint on its test set; the model is rebuilt with the "
        "settings stored in the file, fix flags included.",
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
    p.add_argument("--download", action=BOOL, default=False, help="as for train")
    p.add_argument("--batch-size", type=int, default=128, help="evaluation batch size")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.set_defaults(handler=run_eval)
    return p


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate and print one line."""
    from .evaluate import evaluate_checkpoint

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


def add_doctor_parser(subparsers) -> argparse.ArgumentParser:
    """The ``doctor`` sub-command: what this installation has and finds."""
    p = subparsers.add_parser(
        "doctor",
        help="versions, attention kernel, threads, CUDA, compiler and data folders found",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data-dir", default=None, help="also look for datasets here")
    p.add_argument(
        "--build-kernel",
        action=BOOL,
        default=False,
        help="compile the attention kernel now (once per source version, 30-60 s)",
    )
    p.set_defaults(handler=run_doctor)
    return p


def run_doctor(args: argparse.Namespace) -> int:
    """Print the :func:`~cortexgnn.train.doctor.diagnose` report, one fact a line."""
    from .doctor import diagnose

    if args.build_kernel:
        from ..ops.kernel import build_kernel

        try:
            build_kernel()
        except RuntimeError as err:
            print(f"cortexgnn doctor: error: the attention kernel did not build: {err}",
                  file=sys.stderr)  # fmt: skip
            return 2
    for name, value in diagnose(args.data_dir).items():
        print(f"{name:<16} {value}")
    return 0


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """The ``bench`` sub-command: run ``benchmarks/run_all.py`` (needs a source checkout)."""
    p = subparsers.add_parser(
        "bench",
        help="run the benchmarks and render docs/benchmarks.md (--quick: about a minute)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action=BOOL, default=False,
                   help="small sizes; results and report under --out-dir only")  # fmt: skip
    p.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="article_step, layer_sweep, model_sweep and/or bandwidth (default all)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
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


def _add_neurons_parser(subparsers) -> None:
    """Register ``cortexgnn neurons`` when :mod:`cortexgnn.train.neurons_cli` is installed."""
    import importlib.util

    if importlib.util.find_spec(f"{__package__}.neurons_cli") is None:
        return
    from . import neurons_cli

    if hasattr(neurons_cli, "add_neurons_parser"):
        neurons_cli.add_neurons_parser(subparsers)


def get_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command."""
    parser = _Parser(
        prog="cortexgnn", description="Cortical-column graph networks: train and evaluate."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(subparsers)
    add_eval_parser(subparsers)
    add_doctor_parser(subparsers)
    add_bench_parser(subparsers)
    _add_neurons_parser(subparsers)
    return parser


def _typed_train_flags(argv: list[str]) -> set[str]:
    """The ``train`` settings the user typed in ``argv`` (the arguments after ``train``).

    A second ``train`` parser whose defaults are all ``SUPPRESS`` leaves every untyped
    destination out of the namespace.
    """
    parser = add_train_parser(_Parser(prog="cortexgnn").add_subparsers())
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    parser.set_defaults(handler=None)
    return set(vars(parser.parse_args(argv))) - {"handler"}


# errno -> what to do about it, for the files of a run
_OS_FIXES = {
    errno.ENOSPC: "free disk space or choose another --out-dir; the last checkpoint is intact",
    errno.EDQUOT: "free disk space or choose another --out-dir; the last checkpoint is intact",
    errno.EACCES: "choose a folder you can write to (--out-dir)",
    errno.EPERM: "choose a folder you can write to (--out-dir)",
    errno.EROFS: "the file system is read-only: choose another --out-dir",
    errno.ENOTDIR: "a file is in the way: remove it or choose another --out-dir",
    errno.EEXIST: "a file is in the way: remove it or choose another --out-dir",
    errno.EISDIR: "a folder is in the way: remove it or choose another path",
    errno.ELOOP: "a symlink is in the way: remove it",
}


def _os_error_line(err: OSError) -> str:
    """One line for an ``OSError``: what failed, on which path, and what to do."""
    what = err.strerror or str(err)
    where = f": {err.filename}" if err.filename else ""
    fix = _OS_FIXES.get(err.errno)
    return f"{what}{where}" + (f" ({fix})" if fix else "")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cortexgnn`` and ``python -m cortexgnn``; returns the exit status."""
    parser = get_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.command == "train":
        args.given = _typed_train_flags(argv[argv.index("train") + 1 :])
    prefix = f"cortexgnn {args.command}"
    original_format = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"{prefix}: warning: {message}\n"
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError) as err:  # missing data, bad checkpoint, bad flags
        print(f"{prefix}: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # the run folder cannot be written: permissions, full disk
        print(f"{prefix}: error: {_one_line(_os_error_line(err))}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = original_format
        sys.stdout.flush()
