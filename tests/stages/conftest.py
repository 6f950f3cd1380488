"""A small maze2d dataset and a tiny run configuration for the stage tests."""

import dataclasses
import os

import pytest

from lfjax import data
from lfjax.configs import RunConfig, quick_preset
from lfjax.datagen import generate_dataset


@pytest.fixture(scope="package")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari_rel")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    generate_dataset("maze2d-umaze", num_steps=3000, seed=1, ref_episodes=2, progress=False)
    yield data.load_dataset("maze2d-umaze")
    os.environ["MINARI_DATASETS_PATH"] = old


def tiny_config(**overrides) -> RunConfig:
    config = quick_preset("maze2d-umaze")
    return dataclasses.replace(
        config,
        flow=dataclasses.replace(config.flow, num_blocks=2, num_epochs=1, batch_size=256, hidden_dims=(32, 32)),
        agent=dataclasses.replace(config.agent, batch_size=32, hidden_dims=(32, 32)),
        **{"num_updates": 60, "eval_every": 20, "eval_episodes": 1, "final_eval_episodes": 1,
           "num_seeds": 3, **overrides},
    )


