"""A small maze2d dataset and a tiny run configuration for the stage tests."""

import dataclasses

import pytest

from lfjax import data
from lfjax.configs import RunConfig, quick_preset


@pytest.fixture(scope="package")
def loaded(small_umaze):
    """The session's small maze2d-umaze dataset (tests/conftest.py), loaded once."""
    return data.load_dataset("maze2d-umaze")


def tiny_config(**overrides) -> RunConfig:
    config = quick_preset("maze2d-umaze")
    return dataclasses.replace(
        config,
        flow=dataclasses.replace(config.flow, num_blocks=2, num_epochs=1, batch_size=256, hidden_dims=(32, 32)),
        agent=dataclasses.replace(config.agent, batch_size=32, hidden_dims=(32, 32)),
        **{"num_updates": 60, "eval_every": 20, "eval_episodes": 1, "final_eval_episodes": 1,
           "num_seeds": 3, **overrides},
    )


