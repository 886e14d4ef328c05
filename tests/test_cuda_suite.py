"""``benchmarks/cuda_suite.py``: its logic at tiny sizes on the CPU; its refusal without CUDA."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import cuda_suite
from cortexgnn.ops.triton_attention import triton_available


def test_refuses_in_one_line_without_cuda(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as refused:
        cuda_suite.main([])
    assert refused.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("cuda_suite: no CUDA device here;")
    assert captured.err.count("\n") == 1


def test_quick_cpu_run_measures_every_baseline_and_writes_results(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # the Triton candidates are the slow test's
    result = cuda_suite.main(["--device", "cpu", "--quick", "--out-dir", str(tmp_path)])
    rows = result["layer"]["rows"]
    for layer in ("auto", "propagate", "transformer_conv", "gat_conv"):
        timed = [r for r in rows if r["layer"] == layer and r["status"] == "ok"]
        assert len(timed) == 2 and all(r["forward_backward"]["median_s"] > 0 for r in timed)
    assert {r["status"] for r in rows if r["layer"] == "triton"} == {
        "skipped: triton does not run on this device"
    }
    assert result["bandwidth"]["copy"]["bytes_per_s"] > 0
    assert set(result["article"]["speedup_vs_reference"]) == {"CortexNet"}
    for name in ("cuda_layer_sweep", "cuda_bandwidth", "cuda_article_step"):
        saved = json.loads((tmp_path / f"{name}-cpu.json").read_text())
        assert saved["benchmark"] == name and saved["environment"]["device"] == "cpu"


@pytest.mark.slow
@pytest.mark.skipif(not triton_available(), reason="triton is not installed")
def test_quick_cpu_run_with_the_triton_interpreter(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    result = cuda_suite.main(["--device", "cpu", "--quick", "--no-save"])
    agreement = result["layer"]["agreement"]
    assert agreement["N"] == 12 and agreement["max_abs_triton_vs_propagate"] < 1e-4
    assert set(result["layer"]["forward_backward_speedup"]["12"]) == {
        f"triton_vs_{other}" for other in ("auto", "propagate", "transformer_conv", "gat_conv")
    }
    assert [r["backend"] for r in result["bandwidth"]["rows"]] == ["triton", "torch"]
    assert set(result["article"]["speedup_vs_reference"]) == {"CortexNet", "CortexNet_triton"}
