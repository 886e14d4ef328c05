"""TrainConfig: validation, the nested ModelConfig, stored dicts old and new, the model."""

from __future__ import annotations

import math

import pytest

from cortexgnn import CortexNet, DenseReference
from cortexgnn.nn.config import ModelConfig
from cortexgnn.train.config import TrainConfig, build_model, model_config_for


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(max_steps=0), "max_steps must be >= 1"),
        (dict(threads=0), "threads must be >= 1"),
        (dict(t_max_epochs=0.0), "t_max_epochs must be > 0"),
        (dict(t_max_epochs=-1.0), "t_max_epochs must be a finite number"),
        (dict(lr=math.nan), "lr must be a finite number"),
        (dict(device="gpu"), "device must be auto, cpu, mps, cuda or cuda:N"),
        (dict(eval_every=0), "eval_every must be >= 1"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_round_trip_and_the_flat_layout_of_older_checkpoints():
    model = ModelConfig(num_columns=6, graph_k=2, attention_uses_edge_weight=True)
    config = TrainConfig(model_config=model)
    assert TrainConfig.from_dict(config.to_dict()) == config
    old = {"dataset": "digits", "columns": 6, "graph_k": 2, "attention": False, "col_out": 8,
           "epochs": 3}  # fmt: skip
    restored = TrainConfig.from_dict(old)
    assert restored.model_config.num_columns == 6 and not restored.model_config.use_attention
    assert restored.model_config.col_out == 8 and restored.epochs == 3
    with pytest.raises(ValueError, match="unknown training settings \\['colums'\\]"):
        TrainConfig.from_dict({"colums": 6})


def test_build_model_takes_sizes_from_the_data_and_the_graph_seed_from_the_seed():
    config = TrainConfig(seed=5, model_config=ModelConfig(num_columns=4, graph_k=2, col_out=4))
    resolved = model_config_for(config, in_dim=64, num_classes=3)
    assert (resolved.in_dim, resolved.top_out, resolved.graph_seed) == (64, 3, 5)
    pinned = TrainConfig(seed=5, model_config=config.model_config.replace(graph_seed=9))
    assert model_config_for(pinned, 64, 3).graph_seed == 9
    model = build_model(config, 64, 3)
    assert isinstance(model, CortexNet) and model.config == resolved
    reference = build_model(TrainConfig(model="reference", model_config=config.model_config), 64, 3)
    assert isinstance(reference, DenseReference) and reference.config.in_dim == 64
