"""``benchmarks/shared_scale.py``: one point runs, the sweep merges, the docs block renders."""

from __future__ import annotations

import json

import pytest

from benchmarks import shared_scale

TINY = ["--in-dim", "12", "--col-out", "8", "--batch-size", "2", "--message-iters", "2",
        "--steps", "1"]  # fmt: skip


@pytest.mark.parametrize("mode", ["torch/bf16", "manual/fp32"])
def test_one_point_trains_and_reports_its_peak(mode, monkeypatch):
    import cortexgnn.nn.model as model_module

    monkeypatch.setattr(model_module, "checkpoint", model_module.checkpoint)  # restored after
    args = shared_scale.get_parser().parse_args(TINY)
    row = shared_scale.run_point(f"300:{mode}", args)
    assert row["status"] == "ok" and row["N"] == 300 and len(row["losses"]) == 2
    assert row["step"]["samples"] == 1 and row["peak_rss_bytes"] > 0
    assert row["parameter_bytes"] > 4 * 300 * 8  # the per-column bias at least


def test_the_memory_model_adds_up():
    args = shared_scale.get_parser().parse_args(TINY)
    model = shared_scale.predicted_peak_bytes(1000, "torch/bf16", args, base_bytes=5)
    parts = model["per_column"]
    iterations = args.message_iters
    assert (
        model["bytes_per_column"] == sum(parts.values()) + (iterations - 1) * parts["per_iteration"]
    )
    assert model["peak_bytes"] == 5 + 1000 * model["bytes_per_column"]
    assert parts["per_iteration"] == 2 * 2 * 8  # one bfloat16 state: 2 bytes x B x D


@pytest.mark.slow
def test_sweep_in_subprocesses_merges_and_renders(tmp_path):
    out = ["--out-dir", str(tmp_path), "--manual-sizes"]
    first = shared_scale.main([*TINY, *out, "--sizes", "200", "--modes", "off/fp32"])
    second = shared_scale.main([*TINY, *out, "--sizes", "400", "--modes", "torch/bf16", "--merge"])
    assert [r["status"] for r in first["rows"]] == ["ok"]
    saved = json.loads((tmp_path / "shared_scale-cpu.json").read_text())
    assert [(r["N"], r["mode"]) for r in saved["rows"]] == [(200, "off/fp32"), (400, "torch/bf16")]
    assert second["parameters_per_column"]["shared"]["per_column"] == 8 + 8  # D + k
    text = shared_scale.render(saved)
    assert "| 400 | bf16 + recompute |" in text and "| 200 | float32 |" in text


def test_the_scaling_page_shows_the_committed_results():
    """docs/scaling.md's block is render() of the committed file: no number typed by hand."""
    root = shared_scale.REPO_ROOT
    saved = json.loads((root / "benchmarks" / "results" / "shared_scale-cpu.json").read_text())
    page = (root / "docs" / "scaling.md").read_text()
    start, end = shared_scale.MARKERS
    block = page.split(start, 1)[1].split(end, 1)[0]
    assert block.strip() == shared_scale.render(saved).strip()
    counts = saved["parameters_per_column"]
    assert counts["shared"]["per_column"] == saved["config"]["col_out"] + 8  # D + k
