"""Checkpoint files from outside: a truncated, missing or foreign file gets an error that
names the problem and the fix."""

from __future__ import annotations

import pytest
import torch

from cortexgnn import CortexNet, atomic_save, load_article_checkpoint, save_article_checkpoint
from cortexgnn.checkpoint import SizeLimitError

TINY = dict(num_columns=6, in_dim=10, col_out=4, top_out=3, graph_k=2, graph_seed=0)


@pytest.fixture
def net() -> CortexNet:
    return CortexNet(**TINY)


@pytest.fixture
def saved(tmp_path, net):
    state = {"model_state_dict": net.state_dict(), "hyperparams": dict(net.hparams)}
    return tmp_path, state, atomic_save(state, tmp_path / "good.pth")


def test_checkpoint_truncated_or_empty(saved):
    tmp_path, _, good = saved
    data = good.read_bytes()
    for name, content in [("half.pth", data[: len(data) // 2]), ("empty.pth", b"")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=r"truncated or corrupt"):
            load_article_checkpoint(tmp_path / name)


def test_checkpoint_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*nope.pth"):
        load_article_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: torch.ones(3), r"needs the keys \['model_state_dict', 'hyperparams'\]"),
        (lambda s: {**s, "hyperparams": None}, r"'hyperparams' must be a dict"),
        (lambda s: {**s, "model_state_dict": [1]}, r"'model_state_dict' must be a state dict"),
        (
            lambda s: {**s, "model_state_dict": torch.nn.Linear(3, 2).state_dict()},
            r"another architecture",
        ),
        (lambda s: {**s, "hyperparams": {**s["hyperparams"], "col_out": 5}}, r"do not fit"),
        (lambda s: {**s, "hyperparams": {**s["hyperparams"], "num_columns": 7}}, r"do not fit"),
        (
            lambda s: {**s, "hyperparams": {**s["hyperparams"], "use_attention": False}},
            r"do not fit",
        ),
        (
            lambda s: {**s, "hyperparams": {**s["hyperparams"], "message_iters": -1}},
            r"message_iters must be >= 0",
        ),
        (lambda s: {**s, "hyperparams": {**s["hyperparams"], "heads": 2}}, r"\['heads'\]"),
    ],
)
def test_checkpoint_of_another_model(saved, edit, match):
    tmp_path, state, _ = saved
    torch.save(edit(state), tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=match):
        load_article_checkpoint(tmp_path / "bad.pth")


@pytest.mark.parametrize(
    "field, value, article",
    [
        ("num_columns", 10**5, True),  # the article's layout builds a dense [N, N] adjacency
        ("num_columns", 10**9, False),
        ("in_dim", 10**9, False),
        ("top_out", 10**9, True),
        ("graph", "complete", False),  # 30,000 columns joined pairwise: 9e8 edges
    ],
)
def test_sizes_in_a_checkpoint_are_bounded_before_anything_is_built(
    saved, net, field, value, article
):
    tmp_path, state, _ = saved
    if article:
        state = torch.load(save_article_checkpoint(tmp_path / "a.pth", net), weights_only=True)
    config = dict(net.config.to_dict(), **{field: value})
    hyperparams = {**state["hyperparams"], field: value}
    if field == "graph":  # a graph that is small per column, but not in all
        config["num_columns"] = hyperparams["num_columns"] = 30_000
        hyperparams.pop("graph")
    edited = dict(state, hyperparams=hyperparams, model_config=config)
    path = atomic_save(edited, tmp_path / "huge.pth")
    with pytest.raises(SizeLimitError, match=r"huge.pth: a model of .* GiB.*max_elements"):
        load_article_checkpoint(path)


def test_a_raised_limit_lets_a_bigger_model_through_to_the_weight_check(saved):
    tmp_path, state, _ = saved
    config = dict(CortexNet(**TINY).config.to_dict(), in_dim=1000)
    edited = dict(state, hyperparams={**state["hyperparams"], "in_dim": 1000}, model_config=config)
    path = atomic_save(edited, tmp_path / "wide.pth")
    with pytest.raises(SizeLimitError):
        load_article_checkpoint(path, max_elements=1000)
    with pytest.raises(ValueError, match="weights do not fit"):  # built, then the shapes differ
        load_article_checkpoint(path, max_elements=10**6)


def test_message_iters_from_a_file_is_bounded(saved):
    tmp_path, state, _ = saved
    config = dict(CortexNet(**TINY).config.to_dict(), message_iters=10**12)
    edited = dict(state, hyperparams={**state["hyperparams"], "message_iters": 10**12},
                  model_config=config)  # fmt: skip
    path = atomic_save(edited, tmp_path / "loops.pth")
    with pytest.raises(SizeLimitError, match="message_iters=1000000000000 .*max_message_iters"):
        load_article_checkpoint(path)


def test_a_loaded_model_is_one_its_constructor_would_accept(saved, net):
    tmp_path, state, _ = saved
    weights = dict(state["model_state_dict"])
    empty = dict(weights, edge_index=torch.empty(2, 0, dtype=torch.long),
                 edge_weight=torch.empty(0))  # fmt: skip
    path = atomic_save(dict(state, model_state_dict=empty), tmp_path / "empty.pth")
    with pytest.raises(ValueError, match="no edges but message_iters=4"):
        load_article_checkpoint(path)
    with pytest.raises(ValueError, match="no edges but message_iters=4"):
        CortexNet(**TINY, edge_index=torch.empty(2, 0, dtype=torch.long))
    nan = dict(weights, edge_weight=torch.full_like(weights["edge_weight"], float("nan")))
    path = atomic_save(dict(state, model_state_dict=nan), tmp_path / "nan.pth")
    with pytest.raises(ValueError, match="edge_weight holds NaN"):
        load_article_checkpoint(path)
    article = tmp_path / "article.pth"
    save_article_checkpoint(article, net)
    stored = torch.load(article, weights_only=True)
    stored["model_state_dict"]["adj_weight"].fill_(float("nan"))
    torch.save(stored, article)
    with pytest.raises(ValueError, match="adj_weight holds NaN"):
        load_article_checkpoint(article)


def test_a_file_that_holds_its_weights_is_not_limited_by_max_elements(saved):
    _, _, good = saved
    assert isinstance(load_article_checkpoint(good, max_elements=10), CortexNet)


def test_the_size_estimate_counts_shared_columns_and_patches_once(tmp_path):
    from cortexgnn import ModelConfig
    from cortexgnn.checkpoint import check_model_size

    # 10^6 shared-weight columns: one column module and a bias per column (~1.5e8
    # elements), not 10^6 modules; a resume or eval of such a run must not be refused
    shared = ModelConfig(num_columns=10**6, shared_weights=True)
    check_model_size(shared, tmp_path / "big.pth", dense_adjacency=False)
    with pytest.raises(SizeLimitError, match="big.pth"):  # per-column weights: 3e11 elements
        check_model_size(shared.replace(shared_weights=False), tmp_path / "big.pth",
                         dense_adjacency=False)  # fmt: skip
    # patch columns read patch_size**2 inputs, not the whole image
    patches = ModelConfig(
        num_columns=64**2, in_dim=256**2, col_out=16, patch_size=4, graph="lattice"
    )
    check_model_size(patches, tmp_path / "grid.pth", dense_adjacency=False)
    with pytest.raises(SizeLimitError):
        check_model_size(patches.replace(patch_size=None, graph="small-world"),
                         tmp_path / "grid.pth", dense_adjacency=False)  # fmt: skip
