"""Smoke tests of the benchmark scripts at tiny sizes, and the maths of their helpers.

No timing assertions: only that each script runs, its result has the promised structure,
the implementations it compares agree numerically, and the report renders it.
"""

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package

from benchmarks import (  # noqa: E402
    article_step,
    bandwidth,
    harness,
    layer_sweep,
    model_sweep,
    report,
    run_all,
)


def test_fit_exponent_recovers_a_power_law():
    points = [(n, 3e-6 * n**1.5) for n in (64, 256, 1024, 4096)]
    assert layer_sweep.fit_exponent(points, 0, 10**9) == pytest.approx(1.5)
    assert layer_sweep.fit_exponent(points, 1000, 10**9) is None  # fewer than 3 points


def test_step_flops_of_the_article_configuration():
    flops = article_step.step_flops(128, 64, 128, 784, 4, 512)
    column_gemm = 2 * 128 * 784 * 3 * 64 * 128  # [128, 784] x [784, 3 * 64 * 128]
    assert flops["columns (GEMM + weight grad)"] == 2 * column_gemm
    assert flops["total"] == sum(v for k, v in flops.items() if k != "total")


def test_article_step_tiny(tmp_path):
    out = article_step.main(
        ["--batch-size", "4", "--num-columns", "8", "--in-dim", "12", "--col-out", "6",
         "--rounds", "1", "--min-run-time", "0.01", "--gemm-size", "64",
         "--out-dir", str(tmp_path)]
    )  # fmt: skip
    assert set(out["timing"]) == {"train_step", "inference"}
    assert out["flop_floor_s"] > 0 and out["profile"]
    saved = json.loads((tmp_path / "article_step-cpu.json").read_text())
    assert saved["environment"]["num_threads"] == 1


def test_layer_sweep_tiny_agrees_across_implementations(tmp_path):
    out = layer_sweep.main(
        ["--min-log2", "4", "--max-log2", "5", "--extra-sizes", "--batch-size", "2",
         "--channels", "8", "--graph-k", "4", "--rounds", "1", "--min-run-time", "0.01",
         "--fit-range", "1", "64", "--out-dir", str(tmp_path),
         "--impls", *layer_sweep.IMPLEMENTATIONS]
    )  # fmt: skip
    assert {r["impl"] for r in out["rows"]} == set(layer_sweep.IMPLEMENTATIONS)
    assert all(r["status"] == "ok" for r in out["rows"])
    # Every implementation of the article's maths gives the loop's output.
    assert max(out["agreement_max_abs_vs_article_loop"].values()) < 1e-5
    assert len(out["agreement_max_abs_vs_article_loop"]) == len(layer_sweep.IMPLEMENTATIONS) - 1


def test_layer_sweep_marks_sizes_over_the_memory_cap(tmp_path):
    out = layer_sweep.main(
        ["--min-log2", "5", "--max-log2", "5", "--extra-sizes", "--impls", "dense_masked",
         "--memory-cap-gb", "1e-9", "--no-save"]
    )  # fmt: skip
    assert out["rows"] == [{"impl": "dense_masked", "N": 32, "status": "over memory cap"}]


def test_model_sweep_and_bandwidth_tiny(tmp_path):
    model = model_sweep.main(
        ["--per-column-sizes", "8", "--shared-sizes", "40", "--in-dim", "12", "--col-out", "6",
         "--batch-size", "3", "--shared-batch-size", "2", "--rounds", "1",
         "--out-dir", str(tmp_path)]
    )  # fmt: skip
    impls = {(r["mode"], r["impl"]) for r in model["rows"]}
    assert ("per_column", "DenseReference") in impls
    assert ("shared", "CortexNet (shared weights)") in impls
    bw = bandwidth.main(
        ["--sizes", "300", "--batch-size", "2", "--channels", "8", "--rounds", "1",
         "--min-run-time", "0.01", "--copy-mib", "1", "--backends", "torch", "--more-threads",
         "--out-dir", str(tmp_path)]
    )  # fmt: skip
    row = bw["rows"][0]
    assert row["bound_bytes"] == 3 * 300 * 2 * 8 * 4
    achieved, copy = row["achieved_bytes_per_s"], row["copy_bytes_per_s"]
    assert math.isclose(row["fraction_of_copy"], achieved / copy)


def test_report_headline_and_readme_markers(tmp_path):
    results = {
        "article_step": {"speedup": {"train_step": 30.0}, "fraction_of_flop_floor": 0.4},
    }
    rows = report.headline(results)
    assert [r["met"] for r in rows] == [True, False]
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold\n{report.END}\noutro\n")
    assert report.update_readme(readme, "| new |")
    text = readme.read_text()
    assert "old" not in text and "| new |" in text and text.endswith("outro\n")
    no_markers = tmp_path / "OTHER.md"
    no_markers.write_text("nothing here")
    assert not report.update_readme(no_markers, "| new |")


def test_run_all_quick_writes_a_report(tmp_path):
    summary = run_all.main(
        ["--quick", "--out-dir", str(tmp_path), "--only", "article_step", "bandwidth"]
    )
    doc = (tmp_path / "benchmarks.md").read_text()
    assert "## 1. Article configuration" in doc and "## 4. Bandwidth" in doc
    assert summary["report"]["readme_updated"] is None  # quick runs never touch the README


def test_peak_memory_sees_a_large_allocation():
    import torch

    peak = harness.peak_memory_bytes(lambda: torch.ones(16 << 20), torch.device("cpu"))
    if peak is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert peak >= 0.9 * (64 << 20)  # 16 Mi floats = 64 MiB


def test_cli_bench_quick_runs_one_script(tmp_path, capsys):
    from cortexgnn.train.cli import main

    assert main(["bench", "--quick", "--only", "bandwidth", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "bandwidth-cpu.json").is_file()
    assert "report:" in capsys.readouterr().out
