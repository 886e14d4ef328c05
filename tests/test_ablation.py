"""benchmarks/ablation.py: bookkeeping of the study, adopting outside runs, a smoke run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_data import write_tiny_mnist

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package

from benchmarks import ablation  # noqa: E402


def _run(name, seed, acc=0.5):
    return {"name": name, "seed": seed, "parameters": 10, "final_accuracy": acc,
            "best_accuracy": acc, "step_ms": 1.0, "wall_s": 2.0, "commit": "abc"}  # fmt: skip


def _complete(results, seeds, best="ring"):
    """Every variant with ``seeds`` seeds; ``best`` a point above the rest."""
    for name in ablation.VARIANTS:
        for seed in range(seeds):
            ablation.record(results, "variants", _run(name, seed, 0.9 if name == best else 0.8))


def test_record_keeps_seeds_sorted_and_each_seed_once():
    results = {"variants": []}
    for seed, acc in ((2, 0.3), (0, 0.1), (1, 0.2), (0, 0.9)):
        ablation.record(results, "variants", _run("ring", seed, acc))
    (row,) = results["variants"]
    assert row["seeds"] == [0, 1, 2]
    assert row["final_accuracy"] == [0.1, 0.2, 0.3]  # the repeated seed 0 was ignored
    assert row["flags"] == ablation.VARIANTS["ring"]


def test_best_variant_waits_for_every_first_seed_and_skips_article_and_baselines():
    results = {"variants": []}
    _complete(results, 2, best="mlp-matched")  # a baseline on top is not a candidate
    assert ablation.best_variant(results, 3) is None
    _complete(results, 3, best="columns-128")
    assert ablation.best_variant(results, 3) == "columns-128"


def test_pending_runs_baselines_first_then_the_extra_seeds_of_article_and_the_best():
    args = ablation.get_parser().parse_args(["--data-dir", "x"])
    results = {"variants": [], "full_protocol": []}
    todo = ablation.pending(results, args, "variants")
    assert todo[:3] == [("mlp-small", 0), ("mlp-matched", 0), ("single-column", 0)]
    assert len(todo) == 3 * len(ablation.VARIANTS) + 2  # the best's extra seeds wait
    assert todo[-2:] == [("article", 3), ("article", 4)]
    _complete(results, 3, best="gated")
    assert ablation.pending(results, args, "variants") == [
        ("article", 3), ("article", 4), ("gated", 3), ("gated", 4)
    ]  # fmt: skip
    assert ablation.pending(results, args, "full_protocol") == [
        ("article", 0), ("mlp-matched", 0), ("gated", 0)
    ]  # fmt: skip


def test_the_full_protocol_is_ten_epochs_at_the_articles_evaluation_cadence():
    short = ablation.protocol(ablation.get_parser().parse_args(["--data-dir", "x"]))
    full = ablation.protocol(ablation.get_parser().parse_args(["--data-dir", "x", "--full"]))
    assert (short["epochs"], short["eval_every"]) == (3, 200)
    assert (full["epochs"], full["t_max_epochs"], full["eval_every"]) == (10, 12.0, 100)


def _tiny_fashion(root: Path) -> Path:
    write_tiny_mnist(root, num_train=40, num_test=20)
    (root / "MNIST").rename(root / "FashionMNIST")  # the same IDX files, Fashion's folder
    return root


def test_adopt_records_a_matching_run_and_names_every_setting_that_differs(tmp_path):
    from cortexgnn.cli import main as cortexgnn

    data = _tiny_fashion(tmp_path / "data")
    argv = ["--data-dir", str(data), "--max-steps", "2", "--runs-dir", str(tmp_path / "runs"),
            "--results", str(tmp_path / "ablation.json")]  # fmt: skip
    args = ablation.get_parser().parse_args(argv)
    proto = ablation.protocol(args)
    run_dir = tmp_path / "elsewhere"
    command = ablation.train_command(args, proto, "mlp-small", 1, run_dir)
    assert cortexgnn(command[3:]) == 0  # what the study would run, made outside it

    results = ablation.main([*argv, "--adopt", f"mlp-small={run_dir}"])
    (row,) = results["variants"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (row["name"], row["seeds"]) == ("mlp-small", [1])
    assert row["final_accuracy"] == [summary["final_test_acc"]]
    assert json.loads((tmp_path / "ablation.json").read_text())["variants"] == [row]

    with pytest.raises(SystemExit, match="model: run 'mlp-small', study 'mlp-matched'"):
        ablation.main([*argv, "--adopt", f"mlp-matched={run_dir}"])
    with pytest.raises(SystemExit, match="NAME=DIR"):
        ablation.main([*argv, "--adopt", f"no-such-variant={run_dir}"])
    other = ablation.get_parser().parse_args([*argv[:2], "--max-steps", "3"])
    with pytest.raises(ValueError, match="max_steps: run 2, study 3"):
        ablation.adopt(other, ablation.protocol(other), f"mlp-small={run_dir}")


def test_adopt_refuses_a_damaged_or_inconsistent_folder_in_one_line(tmp_path):
    from cortexgnn.cli import main as cortexgnn

    data = _tiny_fashion(tmp_path / "data")
    argv = ["--data-dir", str(data), "--max-steps", "2", "--runs-dir", str(tmp_path / "runs"),
            "--results", str(tmp_path / "ablation.json")]  # fmt: skip
    args = ablation.get_parser().parse_args(argv)
    good = tmp_path / "good"
    assert (
        cortexgnn(ablation.train_command(args, ablation.protocol(args), "mlp-small", 1, good)[3:])
        == 0
    )
    summary = json.loads((good / "summary.json").read_text())

    def damaged(name, edit):
        folder = tmp_path / name
        shutil.copytree(good, folder)
        edit(folder)
        return folder

    def write_summary(**changes):
        return lambda f: (f / "summary.json").write_text(json.dumps({**summary, **changes}))

    cases = {
        "no config": (write_summary(config=None), "no valid 'config'"),
        "empty metrics": (lambda f: (f / "metrics.jsonl").write_text(""), "no training rows"),
        "hand-written": (
            write_summary(steps=1, final_test_acc=0.999, best_test_acc=0.999, steps_per_s=1e9),
            "checkpoint.pth is at step 2",
        ),  # fmt: skip
        "fast": (write_summary(steps_per_s=1e9), "steps_per_s 1000000000.0 is not"),
        "accurate": (write_summary(final_test_acc=0.999), "not the last accuracy"),
        "no checkpoint": (lambda f: (f / "checkpoint.pth").unlink(), "checkpoint.pth is missing"),
        "torn summary": (lambda f: (f / "summary.json").write_text("{"), "unreadable"),
    }
    for name, (edit, match) in cases.items():
        folder = damaged(name.replace(" ", "-"), edit)
        with pytest.raises(SystemExit, match=match) as refused:
            ablation.main([*argv, "--adopt", f"mlp-small={folder}"])
        assert "\n" not in str(refused.value), name
    assert not (tmp_path / "ablation.json").exists()  # nothing was recorded


def test_a_results_file_of_another_protocol_is_refused(tmp_path):
    path = tmp_path / "ablation.json"
    results = {"variants": [], "full_protocol": [], "protocol": {"epochs": 7}}
    ablation.record(results, "variants", _run("ring", 0))
    path.write_text(json.dumps(results))
    with pytest.raises(SystemExit, match="another protocol"):
        ablation.main(["--data-dir", "x", "--results", str(path), "--adopt", f"ring={tmp_path}"])
    assert json.loads(path.read_text()) == results  # untouched


@pytest.mark.slow
def test_the_study_runs_resumes_and_skips_what_is_done(tmp_path):
    """Two short runs through real ``cortexgnn train`` subprocesses, then a rerun that skips."""
    data = _tiny_fashion(tmp_path / "data")
    results_path = tmp_path / "ablation.json"
    argv = ["--data-dir", str(data), "--max-steps", "2", "--seeds", "2", "--extra-seeds", "0",
            "--variants", "mlp-small", "--jobs", "2", "--runs-dir", str(tmp_path / "runs"),
            "--results", str(results_path)]  # fmt: skip
    script = [sys.executable, "-m", "benchmarks.ablation", *argv]  # the tool, from the root
    env = {**os.environ, "CORTEXGNN_NO_KERNEL": "1"}
    done = subprocess.run(script, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(results_path.read_text())["variants"]
    assert row["seeds"] == [0, 1] and len(row["final_accuracy"]) == 2
    shutil.rmtree(tmp_path / "runs")  # a rerun must not need (or redo) finished runs
    again = subprocess.run(script, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "done" not in again.stdout
    assert json.loads(results_path.read_text())["variants"] == [row]


def test_the_figure_axis_leaves_a_far_outlier_out_and_keeps_the_rest():
    from benchmarks.ablation_report import axis_range

    low, high = axis_range([88.3, 88.1, 63.2, 86.3], [0.2, 0.0, 0.0, 0.4], centre=88.3)
    assert (round(low, 6), round(high, 6)) == (84.9, 89.5)  # 63.2 is > 5 points away
    assert axis_range([70.0, 80.0], [0.0, 0.0], centre=None) == (69.0, 81.0)


def test_t_quantiles_match_scipy_at_95_percent_and_at_the_bonferroni_level():
    stats = pytest.importorskip("scipy.stats")
    from benchmarks.ablation_report import FIRM_LEVEL, t_quantile

    for df in (1, 2, 4, 9, 30):
        for level in (0.95, FIRM_LEVEL):
            assert t_quantile(level, df) == pytest.approx(stats.t.ppf(0.5 + level / 2, df), 1e-9)


def test_a_verdict_claims_an_effect_only_when_its_interval_excludes_zero_and_says_if_it_is_firm():
    from benchmarks.ablation_report import verdict

    assert verdict("x", [0.4])[0] == "pending"
    kind, sentence = verdict("x", [0.1, -0.1, 0.05])
    assert kind == "none" and "no detectable effect" in sentence
    # 95 % interval -1 ± 0.25 excludes zero; the Bonferroni one (t = 18.4 at 2 df) does not
    kind, sentence = verdict("x", [-1.0, -1.1, -0.9])
    assert kind == "worse" and "not firm" in sentence
    kind, sentence = verdict("x", [1.0, 1.01, 0.99])
    assert kind == "better" and "; firm:" in sentence


def _report_row(name, accs):
    """A finished variant as ``ablation.json`` holds it, one accuracy per seed."""
    n = len(accs)
    return {"name": name, "seeds": list(range(n)), "parameters": 10, "final_accuracy": accs,
            "best_accuracy": accs, "step_ms": [1.0] * n, "commits": ["abc"] * n}  # fmt: skip


def test_the_readme_paragraph_names_the_matched_mlp_and_each_effect_with_its_interval():
    from benchmarks.ablation_report import headline

    results = {"protocol": {"epochs": 3}, "variants": [
        _report_row("article", [0.880, 0.882, 0.881]),
        _report_row("mlp-matched", [0.881, 0.881, 0.883]),  # diffs +0.1, -0.1, +0.2: no effect
        _report_row("no-message-passing", [0.630, 0.632, 0.631]),  # -25 points every seed: firm
    ]}  # fmt: skip
    text = headline(results)
    assert "88.10 ± 0.10 %" in text and "MLP with its parameter count 88.17 ± 0.12 %" in text
    assert "Of the 1 variant that changes a biological part" in text and "so far" in text
    assert "0 make no detectable difference" in text
    assert "`no-message-passing` (-25.00 points, 95 % interval -25.00 to -25.00, firm)" in text
    assert "lack a second seed" not in text and "Not yet run: `ring`" in text


def test_the_readme_paragraph_of_a_finished_study_drops_so_far_and_adds_the_long_runs():
    from benchmarks.ablation_report import GROUPS, headline

    base = [0.880, 0.882, 0.881]
    variants = [_report_row(n, base) for n in GROUPS]  # every variant equal to `article`: no effect
    variants[1] = _report_row("ring", [0.878, 0.879, 0.878])  # -0.2, -0.3, -0.3: not firm at 2 df
    full = [_report_row("article", [0.894]), _report_row("mlp-matched", [0.891])]
    text = headline({"protocol": {"epochs": 3}, "variants": variants, "full_protocol": full,
                     "full_protocol_settings": {"epochs": 10}})  # fmt: skip
    assert "so far" not in text and "Not yet run" not in text
    assert "Of the 12 variants that change a biological part" in text
    assert "11 make no detectable difference; 1 differs at 95 % but none firmly" in text
    assert "`ring` (-0.27 points, 95 % interval" in text
    assert (
        "no detectable difference: `columns-16`, `columns-128`, `mlp-small`, `single-column`"
        in text
    )
    assert "10-epoch protocol (one seed each): `article` 89.40 %, `mlp-matched` 89.10 %." in text


def test_the_old_protocols_test_share_of_homeostasis_updates_follows_from_its_settings():
    from benchmarks.ablation_report import evaluations, test_share

    # 3 epochs of 469 steps, evaluated every 200 steps and at the end: 8 x 79 test batches
    assert evaluations(3 * 469, 200) == 8 and evaluations(400, 200) == 2
    assert test_share(3, 200, 128) == pytest.approx(8 * 79 / (1407 + 8 * 79))
    assert round(100 * test_share(3, 200, 128)) == 31
    assert round(100 * test_share(10, 100, 128)) == 44  # 47 evaluations over 4,690 steps


def test_the_article_rows_seed_sets_are_said_explicitly():
    from benchmarks.ablation_report import _seed_set, article_seeds

    rows = {"article": _report_row("article", [0.880, 0.882, 0.884, 0.870, 0.870]),
            "ring": _report_row("ring", [0.88, 0.88, 0.88])}  # fmt: skip
    text = article_seeds(rows)
    assert "mean over seeds 0–4" in text and "seeds 0–2, where `article` averages 88.20 %" in text
    assert _seed_set([0, 2]) == "0, 2" and _seed_set([3]) == "3"


def test_plain_against_gated_is_paired_and_claims_nothing_about_attention():
    from benchmarks.ablation_report import attention_claim

    plain = {**_report_row("plain", [0.880, 0.881, 0.879]), "parameters": 90}
    gated = {**_report_row("gated", [0.881, 0.880, 0.879]), "parameters": 100}
    text = attention_claim({"plain": plain, "gated": gated})
    assert "`plain` − `gated`: +0.00 [" in text and "10.0 % fewer parameters" in text
    assert "do not show that attention beats weighted sums" in text


@pytest.mark.parametrize(
    ("accs", "words"),
    [
        (([0.85, 0.86, 0.87], [0.84, 0.85, 0.86]), "support the explanation (3 seeds"),
        (([0.85, 0.86, 0.87], [0.60, 0.75, 0.63]), "support the explanation in part"),
        (([0.63, 0.74, 0.62], [0.64, 0.74, 0.62]), "do not support the explanation"),
        (([0.85], [0.84]), "stays a hypothesis"),
    ],
)
def test_the_control_runs_decide_the_no_message_passing_explanation_only_when_complete(accs, words):
    from benchmarks.ablation_report import CONTROLS, control_runs

    target = _report_row("no-message-passing", [0.63, 0.74, 0.62])
    rows = {"article": _report_row("article", [0.88, 0.88, 0.88]), "no-message-passing": target}
    for name, acc in zip(CONTROLS, accs, strict=True):
        rows[name] = {**_report_row(name, list(acc)), "flags": ["--message-iters", "0"]}
    text = "\n".join(control_runs(rows))
    assert words in text
    assert "`no-message-passing-no-homeostasis` (`--message-iters 0`)" in text


def test_the_readme_paragraph_says_where_the_control_runs_leave_the_explanation():
    from benchmarks.ablation_report import CONTROLS, headline

    rows = [_report_row("article", [0.88, 0.88, 0.88]),
            _report_row("no-message-passing", [0.63, 0.74, 0.62])]  # fmt: skip
    results = {"protocol": {"epochs": 3}, "variants": rows}
    assert "near-zero mean" not in headline(results)  # no control run yet: nothing said
    rows += [{**_report_row(n, [0.87]), "flags": []} for n in CONTROLS]
    assert "stays a hypothesis" in headline(results)
    rows[2:] = [{**_report_row(n, [0.87, 0.88, 0.87]), "flags": []} for n in CONTROLS]
    assert "the data support the explanation (3 seeds each" in headline(results)
