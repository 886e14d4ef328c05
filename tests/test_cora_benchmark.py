"""Smoke test of benchmarks/cora.py: both models train on the real Cora split for two epochs."""

from __future__ import annotations

import json

from benchmarks import cora


def test_cora_benchmark_runs_and_writes_its_result(data_dir, tmp_path):
    argv = ["--data-dir", str(data_dir), "--seeds", "2", "--epochs", "3", "--out-dir"]
    result = cora.main([*argv, str(tmp_path)])
    assert set(result["models"]) == {"column", "gat"}
    for summary in result["models"].values():
        assert len(summary["test_acc"]) == 2
        assert all(0.0 <= acc <= 1.0 for acc in summary["test_acc"])
        assert summary["epoch_ms_median"] > 0 and summary["params"] > 0
    saved = json.loads((tmp_path / "cora.json").read_text())
    assert saved["models"]["column"]["test_acc"] == result["models"]["column"]["test_acc"]
    assert saved["args"]["seeds"] == 2 and saved["environment"]["torch"]
