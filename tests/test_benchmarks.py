"""Smoke tests of the benchmark scripts at tiny sizes, and the maths of their helpers.

No timing assertions: only that each script runs, its result has the promised structure,
the implementations it compares agree numerically, and the report renders it: quick runs
without targets, full runs with them and with the commit, machine and date they came from.
The default part runs in about 15 s; ``-m slow`` adds ``cortexgnn bench --quick`` at its
real sizes (minutes), checked for CUDA and profiler messages.
"""

import ast
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import (
    __main__ as tool,
)
from benchmarks import (
    article_step,
    bandwidth,
    harness,
    layer_sweep,
    model_sweep,
    registry,
    report,
    report_sections,
    run_all,
)
from benchmarks.datasets import DataNotFound

ROOT = Path(__file__).resolve().parents[1]


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


TINY = {  # run_all's quick sizes, shrunk further so the default suite stays fast
    "article_step": ["--batch-size", "4", "--num-columns", "8", "--in-dim", "12",
                     "--col-out", "6", "--rounds", "1", "--min-run-time", "0.01",
                     "--gemm-size", "64", "--no-profile"],
    "bandwidth": ["--sizes", "300", "--batch-size", "2", "--channels", "8", "--rounds", "1",
                  "--min-run-time", "0.01", "--copy-mib", "1", "--backends", "torch"],
}  # fmt: skip
COMMITTED = ROOT / "benchmarks" / "results"  # the full-size results README's table shows


def _table_cells(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]


def assert_smoke_table(table: str) -> None:
    """A quick run's table: results only, no target column and no yes/no verdict."""
    header, *rows = _table_cells(table)
    assert header == ["measurement (smoke size: no target)", "result"]
    assert rows and all(len(r) == 2 for r in rows)
    assert not {"yes", "no"} & {c for r in rows for c in r}
    assert "reached" not in table and ">= " not in table


def tiny_registry(monkeypatch, **extra: registry.Experiment) -> None:
    """The registry with TINY smoke sizes (the default suite stays fast)."""
    for name, argv in TINY.items():
        experiment = dataclasses.replace(registry.EXPERIMENTS[name], quick=tuple(argv))
        monkeypatch.setitem(registry.EXPERIMENTS, name, experiment)
    for name, experiment in extra.items():
        monkeypatch.setitem(registry.EXPERIMENTS, name, experiment)


def test_run_all_quick_writes_a_report(tmp_path, monkeypatch, capsys):
    tiny_registry(monkeypatch)
    summary = run_all.main(["--quick", "--out-dir", str(tmp_path), "--only", "article_step"])
    doc = (tmp_path / "benchmarks.md").read_text()
    assert "## 1. Article configuration" in doc
    assert summary["report"]["readme_updated"] is None  # quick runs never touch the README
    assert summary["article_step"]["config"]["profile"] is False  # no profiler in quick runs
    rows = summary["report"]["headline"]
    assert rows and all(r["target"] is None and r["met"] is None for r in rows)
    assert_smoke_table(report.headline_markdown(rows))  # what `cortexgnn bench` prints
    table = doc.split("## Headline (smoke sizes, no targets)\n\n", 1)[1].split("\n\n", 1)[0]
    assert_smoke_table(table)
    assert "Rendered from" not in doc  # the source line belongs to full runs
    progress = capsys.readouterr().err
    assert "[1/1] article_step: running" in progress and "[1/1] article_step: done in" in progress


def test_quick_report_of_full_size_results_still_has_no_targets(tmp_path):
    """``--quick`` drops the targets whatever the sizes: the flag, not the numbers, decides."""
    summary = report.main(["--results", str(COMMITTED), "--quick", "--no-plots",
                           "--out", str(tmp_path / "b.md")])  # fmt: skip
    assert_smoke_table(report.headline_markdown(summary["headline"]))
    assert "Rendered from" not in (tmp_path / "b.md").read_text()
    assert report.headline_markdown([]) == "No headline measurement in these results."


def test_full_report_names_commit_machine_and_date(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold\n{report.END}\noutro\n")
    summary = report.main(["--results", str(COMMITTED), "--no-plots", "--out",
                           str(tmp_path / "b.md"), "--readme", str(readme)])  # fmt: skip
    assert summary["readme_updated"]
    region = readme.read_text().split(report.START, 1)[1].split(report.END, 1)[0]
    table, source, image = region.strip().split("\n\n")
    # The full-run table keeps its format: four columns, a yes/no verdict per row.
    header, _, *rows = _table_cells(table)
    assert header == ["measurement", "result", "target", "reached"]
    assert rows and all(r[3] in ("yes", "no") for r in rows)
    assert table == report.headline_markdown(summary["headline"])
    assert image == "![scaling](docs/img/bench_scaling.png)"
    # The line under it names where every number came from.
    assert source.startswith("Rendered from `benchmarks/results/*-cpu.json`, measured on ")
    for path in sorted(COMMITTED.glob("*-cpu.json")):
        env = json.loads(path.read_text()).get("environment")
        name = path.name.removesuffix("-cpu.json")
        if env is None or name not in report_sections.SECTIONS:
            continue
        assert f"`{name}` at commit {env['git_commit']}, {env['date_utc'][:10]}" in source
        assert f"{env['cpu']} ({env['cpu_count']} cores)" in source
        assert f"{env['num_threads']} thread" in source
    assert source in (tmp_path / "b.md").read_text()  # docs/benchmarks.md shows it too


def test_source_line_names_each_machine_when_they_differ():
    env = {"cpu": "A", "cpu_count": 2, "num_threads": 1, "git_commit": "abc1234",
           "date_utc": "2026-01-02T03:04:05Z", "gpu": None}  # fmt: skip
    same = report.source_line({"x": {"environment": env}, "y": {"environment": env}})
    assert same == ("Rendered from `benchmarks/results/*.json`, measured on A (2 cores), "
                    "1 thread: `x` at commit abc1234, 2026-01-02 03:04 UTC; `y` at commit "
                    "abc1234, 2026-01-02 03:04 UTC.")  # fmt: skip
    other = {**env, "cpu": "B", "num_threads": 2, "gpu": "H200"}
    mixed = report.source_line({"x": {"environment": env}, "y": {"environment": other}})
    assert "`y` at commit abc1234, 2026-01-02 03:04 UTC, B (2 cores), GPU H200, 2 threads" in mixed
    assert report.source_line({"x": {"config": {}}}) == ""


@pytest.mark.slow  # a fresh interpreter (torch, PyG): 5-15 s on the shared 2-core box
def test_harness_is_quiet_on_a_cpu_machine():
    """No CUDA or profiler messages from picking the device, timing, profiling, describing."""
    code = (
        "import torch\n"
        "from benchmarks import harness\n"
        "harness.quiet_cpu_profiler()\n"
        "device = harness.pick_device('auto')\n"
        "harness.time_interleaved({'f': lambda: torch.ones(4) + 1}, device=device,\n"
        "                         num_threads=1, rounds=1, min_run_time=0.001)\n"
        "from torch.profiler import ProfilerActivity, profile\n"
        "with profile(activities=[ProfilerActivity.CPU]):\n"
        "    torch.ones(4) + 1\n"
        "print(device)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KINETO_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    if done.stdout.strip() != "cpu":
        pytest.skip("CUDA is usable here: its messages are left alone")
    assert done.stderr == ""


@pytest.mark.slow
def test_bench_quick_prints_no_cuda_or_profiler_noise(tmp_path):
    """The issue's check: ``cortexgnn bench --quick`` at its real sizes, output grepped."""
    if harness.cuda_usable():
        pytest.skip("CUDA is usable here: its messages are left alone")
    env = {k: v for k, v in os.environ.items() if k != "KINETO_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-m", "cortexgnn", "bench", "--quick", "--out-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    ours = re.compile(r"\[\d+/\d+\] \w+: ")  # the runner's progress lines: checked below
    noisy = [ln for ln in output.splitlines()
             if re.search("error|cuda|usdt|warn", ln, re.I) and not ours.match(ln)]  # fmt: skip
    assert noisy == []
    printed = done.stdout.split("\nreport: ", 1)[0]  # the headline table comes last
    assert_smoke_table(printed[printed.rindex("| measurement") :].strip())
    for number, name in enumerate(registry.EXPERIMENTS, 1):  # every experiment said so
        total = len(registry.EXPERIMENTS)
        assert re.search(rf"\[{number}/{total}\] {name}: (done in|skipped)", done.stderr), name


def test_zero_min_run_time_times_exactly_one_call_per_round():
    """Quick runs pass ``--min-run-time 0``: no block-size search, one timed call a round."""
    import torch

    calls = []
    stats = harness.time_interleaved(
        {"f": lambda: calls.append(1)}, device=torch.device("cpu"), num_threads=1,
        rounds=3, min_run_time=0, warmup=2,
    )["f"]  # fmt: skip
    assert stats["samples"] == 3
    assert len(calls) == 2 + 3


def test_peak_memory_sees_a_large_allocation():
    import torch

    peak = harness.peak_memory_bytes(lambda: torch.ones(16 << 20), torch.device("cpu"))
    if peak is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert peak >= 0.9 * (64 << 20)  # 16 Mi floats = 64 MiB


def test_cli_bench_runs_the_tool_of_the_checkout(tmp_path, capsys, monkeypatch):
    """``cortexgnn bench`` starts ``python -m benchmarks run all`` in the checkout; that
    command, run here in-process at TINY sizes, writes the results and the report."""
    from cortexgnn.cli import main

    started = []
    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "run", lambda cmd, cwd: started.append((cmd, cwd)) or
                      subprocess.CompletedProcess(cmd, 0))  # fmt: skip
        assert main(["bench", "--quick", "--only", "bandwidth", "--out-dir", str(tmp_path)]) == 0
    [(command, cwd)] = started
    assert command[:5] == [sys.executable, "-m", "benchmarks", "run", "all"] and cwd == ROOT
    tiny_registry(monkeypatch)
    assert tool.main(command[3:]) == 0
    assert (tmp_path / "bandwidth-cpu.json").is_file()
    assert "## 4. Bandwidth" in (tmp_path / "benchmarks.md").read_text()
    out = capsys.readouterr().out
    assert "report:" in out
    assert "| yes |" not in out and "| no |" not in out and "reached" not in out


EXPERIMENT_FILES_OTHERWISE = {"report", "ablation_report", "study_report", "runs_report", "run_all"}


def test_every_benchmark_with_a_main_is_registered():
    """A new ``benchmarks/<name>.py`` with ``main`` is an experiment: it needs its line."""
    registered = {e.module for e in registry.EXPERIMENTS.values()}
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        has_main = any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
        name = path.stem
        if has_main and name not in EXPERIMENT_FILES_OTHERWISE and name != "__main__":
            assert f"benchmarks.{name}" in registered, f"{path.name} is not in the registry"
    for experiment in registry.EXPERIMENTS.values():  # and every entry runs a real main
        module = experiment.load()
        assert callable(module.main) and callable(module.get_parser), experiment.name
        module.get_parser().parse_args(
            [a.replace("{out_dir}", "x") for a in experiment.quick]
            + (["--data-dir", "x"] if experiment.needs else [])
        )  # the smoke sizes are flags the experiment takes
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("layer_sweep", "benchmarks.layer_sweep", "again")


def test_tool_lists_runs_and_refuses_unknown_names(capsys):
    assert tool.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in registry.EXPERIMENTS)
    assert tool.main(["run", "no_such_thing"]) == 2
    assert "choose all or one of" in capsys.readouterr().err
    assert tool.main([]) == 2


def test_a_missing_dataset_is_one_line_and_run_all_goes_on(tmp_path, monkeypatch, capsys):
    assert tool.main(["run", "cora", "--data-dir", str(tmp_path), "--no-save"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "Cora not found" in line and "--download" in line and "--data-dir" in line
    tiny_registry(monkeypatch)
    summary = run_all.main(["--quick", "--out-dir", str(tmp_path), "--data-dir", str(tmp_path),
                            "--only", "ablation", "bandwidth"])  # fmt: skip
    assert "FashionMNIST/raw not found" in summary["skipped"]["ablation"]
    assert "bandwidth" in summary and "ablation" not in summary
    assert "[1/2] ablation: skipped: FashionMNIST/raw not found" in capsys.readouterr().err


def test_progress_speaks_at_least_every_tick(monkeypatch, capsys):
    monkeypatch.setattr(run_all, "TICK_S", 0.05)
    with run_all.progress("slow"):
        time.sleep(0.3)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "slow: running" and len(lines) >= 3
    assert all(re.fullmatch(r"slow: running, \d+ s", line) for line in lines[1:])


def test_a_failed_cora_download_removes_what_it_created(tmp_path, monkeypatch):
    from torch_geometric.datasets import Planetoid

    from benchmarks.datasets import load_cora

    def offline(self, *args, **kwargs):
        os.makedirs(os.path.join(self.raw_dir), exist_ok=True)  # as a download starts
        raise OSError("network is unreachable")

    monkeypatch.setattr(Planetoid, "download", offline)
    data_dir = tmp_path / "data"
    with pytest.raises(DataNotFound, match="could not download Cora.*--data-dir"):
        load_cora(data_dir, tmp_path / "cache", download=True)
    assert not data_dir.exists()


def test_report_states_conditions_as_data_and_no_one_environment(tmp_path):
    summary = report.main(["--results", str(COMMITTED), "--no-plots",
                           "--out", str(tmp_path / "b.md")])  # fmt: skip
    doc = (tmp_path / "b.md").read_text()
    conditions = doc.split("## Conditions\n\n", 1)[1].split("\n\n", 1)[0]
    header, _, *rows = _table_cells(conditions)
    assert header[:4] == ["result", "CPU (cores)", "device", "threads"]
    for row in rows:
        env = json.loads((COMMITTED / f"{row[0].strip('`')}-cpu.json").read_text())["environment"]
        assert row[1] == f"{env['cpu']} ({env['cpu_count']})" and row[3] == str(env["num_threads"])
        assert row[4] == f"{env['load_average_at_start'][0]:.1f}"
    assert summary["headline"]
    for phrase in ("lent", "this VM", "oversubscribed", "this session", "shared machine"):
        assert phrase not in doc


def test_a_benchmark_says_when_it_times_another_checkouts_package(monkeypatch, tmp_path):
    import cortexgnn

    assert harness.package_checkout_warning() is None  # this checkout's package
    elsewhere = tmp_path / "other-tree" / "cortexgnn" / "__init__.py"
    monkeypatch.setattr(cortexgnn, "__file__", str(elsewhere))
    message = harness.package_checkout_warning()
    assert message is not None and str(tmp_path / "other-tree") in message
    assert "python -m benchmarks run" in message
