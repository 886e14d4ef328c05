"""``ModelConfig`` (``cortexgnn/nn/config.py``): defaults, validation, round trip."""

from __future__ import annotations

import dataclasses

import pytest

from cortexgnn import CortexNet, ModelConfig
from cortexgnn.nn.config import ARTICLE_FIELDS

ARTICLE = dict(num_columns=64, in_dim=784, col_out=128, top_out=10, graph_k=8, graph_p=0.15,
               message_iters=4, plasticity_lr=5e-5, use_attention=True, e_i_ratio=0.8,
               dropout=0.1)  # fmt: skip


def test_defaults_are_the_article_and_every_fix_is_off():
    config = ModelConfig()
    assert config.article_hparams() == ARTICLE
    assert tuple(config.article_hparams()) == ARTICLE_FIELDS  # the article's key order
    assert config.graph_seed is None and not config.attention_uses_edge_weight
    assert not config.freeze_homeostasis_in_eval and config.homeostasis_min_divisor is None
    assert config.use_homeostasis and config.use_hebbian and not config.check_finite_input


def test_round_trip_through_a_dict_and_frozen():
    config = ModelConfig(num_columns=8, graph_seed=3, homeostasis_min_divisor=0.1,
                         attention_uses_edge_weight=True)  # fmt: skip
    stored = config.to_dict()
    assert stored["num_columns"] == 8 and len(stored) == len(dataclasses.fields(ModelConfig))
    assert ModelConfig.from_dict(stored) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_columns = 4
    assert config.replace(num_columns=9).num_columns == 9 and config.num_columns == 8
    with pytest.raises(ValueError, match="num_columns must be >= 1"):
        config.replace(num_columns=0)  # replace validates like a new config


def test_unknown_keys_are_refused():
    with pytest.raises(TypeError, match=r"unknown model settings \['heads'\]"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "heads": 2})
    with pytest.raises(TypeError, match=r"unknown model settings \['colums'\]"):
        ModelConfig().replace(colums=3)
    with pytest.raises(TypeError, match="a model config must be a dict, got list"):
        ModelConfig.from_dict([("num_columns", 3)])


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("num_columns", 8.0, r"num_columns must be int, got 8.0 \(float\)"),
        ("num_columns", True, r"num_columns must be int, got True \(bool\)"),
        ("graph_p", "0.1", r"graph_p must be float, got '0.1' \(str\)"),
        ("use_attention", 1, r"use_attention must be bool, got 1 \(int\)"),
        ("dropout", None, r"dropout must not be None"),
        ("graph_seed", 1.5, r"graph_seed must be int"),
    ],
)
def test_wrong_types_are_refused(field, value, match):
    with pytest.raises(TypeError, match=match):
        ModelConfig(**{field: value})


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(num_columns=0), r"num_columns must be >= 1, got 0"),
        (dict(message_iters=-1), r"message_iters must be >= 0"),
        (dict(graph_k=-1), r"graph_k must be >= 0"),
        (dict(graph_p=1.5), r"graph_p is a probability in \[0, 1\]"),
        (dict(dropout=1.0), r"dropout must lie in \[0, 1\)"),
        (dict(plasticity_lr=float("inf")), r"plasticity_lr must be a finite number"),
        (dict(homeostasis_min_divisor=0.0), r"homeostasis_min_divisor must be a finite number > 0"),
    ],
)
def test_out_of_range_values_are_refused(settings, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**settings)


@pytest.mark.parametrize("graph_k", [0, 1])
def test_a_graph_without_edges_is_refused_while_messages_pass(graph_k):
    match = rf"graph_k={graph_k} gives a graph without edges.*graph_k >= 2.*message_iters=0"
    with pytest.raises(ValueError, match=match):
        CortexNet(num_columns=6, in_dim=4, col_out=4, graph_k=graph_k)
    columns_alone = CortexNet(num_columns=6, in_dim=4, col_out=4, graph_k=graph_k, message_iters=0)
    assert columns_alone.edge_index.numel() == 0 and columns_alone.conv is None


def test_a_small_world_wider_than_the_network_is_refused_where_it_is_built():
    with pytest.raises(ValueError, match=r"k=8, num_nodes=4: lower k or add columns"):
        CortexNet(num_columns=4, in_dim=4, col_out=4)


def test_cortexnet_takes_a_config_and_keyword_overrides():
    config = ModelConfig(num_columns=6, in_dim=5, col_out=4, top_out=3, graph_k=2, graph_seed=0)
    model = CortexNet(config, message_iters=1)
    assert model.config == config.replace(message_iters=1) and model.config is not config
    assert model.hparams == model.config.article_hparams() and model.hparams["message_iters"] == 1
    with pytest.raises(TypeError, match="config must be a ModelConfig, got dict"):
        CortexNet(config.to_dict())
    with pytest.raises(TypeError, match=r"unknown model settings \['heads'\]"):
        CortexNet(config, heads=2)
