"""Every experiment of the benchmark tool, one ``register`` line each.

An experiment is a module with ``main(argv: list[str] | None = None) -> dict`` that answers
one question and writes its result under ``benchmarks/results/``. ``python -m benchmarks
run NAME`` runs one (its own flags follow the name), ``python -m benchmarks run all`` runs
them in this order and renders the report, ``python -m benchmarks list`` lists them.

``quick`` is the experiment's smoke size (what ``run all --quick`` passes); ``{out_dir}`` in
it is replaced by the results folder of the run. The runner adds ``--device``,
``--threads``, ``--out-dir`` and ``--data-dir`` wherever the experiment's parser takes them.
``needs`` names a dataset folder under ``--data-dir`` without which the experiment cannot
run, ``device`` the only device kind it measures: ``run all`` then reports it as skipped,
saying what is missing, and goes on.

To add an experiment: write ``benchmarks/<name>.py`` with ``main(argv=None) -> dict`` and
add one line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Experiment:
    """One registered experiment: where its ``main`` lives and how to run it small."""

    name: str
    module: str
    question: str
    quick: tuple[str, ...] = ()
    needs: str | None = None
    device: str | None = None

    def load(self) -> ModuleType:
        """Import the experiment's module (experiments import heavy things: only on use)."""
        return importlib.import_module(self.module)


EXPERIMENTS: dict[str, Experiment] = {}


def register(name: str, module: str, question: str, *, quick=(), needs=None, device=None):
    """Add an experiment to the tool; the name must be new."""
    if name in EXPERIMENTS:
        raise ValueError(f"benchmark {name!r} is registered twice")
    EXPERIMENTS[name] = Experiment(name, module, question, tuple(quick), needs, device)
    return EXPERIMENTS[name]


# fmt: off
register("article_step", "benchmarks.article_step",
         "the article's training step: CortexNet against DenseReference",
         quick=["--batch-size", "16", "--num-columns", "16", "--in-dim", "64", "--rounds", "2",
                "--min-run-time", "0", "--gemm-size", "512", "--no-profile"])
register("layer_sweep", "benchmarks.layer_sweep",
         "the attention layer alone from 64 to 131,072 columns, against the article's loop and PyG",
         quick=["--min-log2", "6", "--max-log2", "10", "--extra-sizes", "--rounds", "1",
                "--min-run-time", "0", "--budget-s", "2", "--fit-range", "64", "1024"])
register("model_sweep", "benchmarks.model_sweep",
         "the whole training step across column counts",
         quick=["--per-column-sizes", "16", "32", "--shared-sizes", "256", "1024",
                "--in-dim", "64", "--col-out", "32", "--batch-size", "8", "--rounds", "1"])
register("bandwidth", "benchmarks.bandwidth",
         "achieved memory bandwidth of the attention against its lower bound",
         quick=["--sizes", "2048", "--rounds", "2", "--min-run-time", "0", "--copy-mib", "32",
                "--torch-max-nodes", "2048", "--more-threads"])
register("neurons", "benchmarks.neurons",
         "the neuron simulator against the article's loop, and its scaling",
         quick=["--num-nodes", "300", "--copies", "4", "--big-nodes", "10000", "--big-steps", "5",
                "--sizes", "1000,3000,10000", "--rounds", "1", "--min-run-time", "0"])
register("cora", "benchmarks.cora",
         "Cora node classification: ColumnAttentionConv against GATConv",
         quick=["--seeds", "1", "--epochs", "5", "--no-progress"])
register("compare_commits", "benchmarks.compare_commits",
         "the article step, a Cora epoch and the N = 10,000 layer, at two commits",
         quick=["--base", "HEAD", "--rounds", "1", "--repeats", "1",
                "--workloads", "article_step", "layer_10k"])
register("ablation", "benchmarks.ablation",
         "does the biology matter: each part of the model switched off, beside baselines",
         quick=["--variants", "article", "ring", "--seeds", "1", "--extra-seeds", "0",
                "--max-steps", "3", "--jobs", "1", "--results", "{out_dir}/ablation.json",
                "--runs-dir", "{out_dir}/ablation-runs"],
         needs="FashionMNIST/raw")
register("cuda_suite", "benchmarks.cuda_suite",
         "the Triton attention on a GPU: layer sweep, bandwidth, article step",
         quick=["--quick"], device="cuda")
register("shared_scale", "benchmarks.shared_scale",
         "one training step of shared-weight columns up to 10^6: time, peak memory, memory model",
         quick=["--sizes", "256", "--modes", "torch/bf16", "--steps", "1",
                "--batch-size", "2", "--col-out", "16", "--in-dim", "64"])
register("column_sharding", "benchmarks.column_sharding",
         "the per-column model sharded over processes: strong and weak scaling, halo bytes",
         quick=["--num-columns", "64", "--strong", "1", "2", "--weak", "--batch-size", "4",
                "--in-dim", "16", "--warmup", "1", "--steps", "1"])
register("shared_sharding", "benchmarks.shared_sharding",
         "the shared-weight model sharded over processes: peak memory per process",
         quick=["--sizes", "256", "--processes", "1", "2", "--batch-size", "2", "--col-out",
                "16", "--in-dim", "64", "--warmup", "0", "--steps", "1"])
register("study", "benchmarks.study",
         "where can the column graph matter: the preregistered study under the validation protocol",
         quick=["--experiment", "C", "--dataset", "digits", "--val-size", "200", "--max-steps", "2",
                "--seeds", "1",
                "--models", "mlp-matched", "--results", "{out_dir}/study.json",
                "--runs-dir", "{out_dir}/study-runs"])
# fmt: on
