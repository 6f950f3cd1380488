"""The flow stage (lfjax.stages.flow.load_or_pretrain): a saved flow is reused only when it was
made from the same dataset with the same flow config, epochs, seed and number of flows;
anything else pretrains anew, and says so."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lfjax import data, pretraining, stages
from lfjax.configs import RunConfig, quick_preset

REUSED = "reusing the pretrained flow"
OTHER = "was made with other settings; pretraining a new one"


def tiny_config(**overrides) -> RunConfig:
    config = quick_preset("maze2d-umaze")
    flow = dataclasses.replace(config.flow, num_blocks=2, num_epochs=1, batch_size=256, hidden_dims=(16, 16))
    return dataclasses.replace(config, **{"flow": flow, "num_seeds": 1, "seed": 0, **overrides})


@pytest.fixture(scope="module")
def loaded(small_umaze):
    return data.load_dataset("maze2d-umaze")


@pytest.fixture(scope="module")
def saved(loaded, tmp_path_factory):
    """A flow pretrained and saved by the stage with tiny_config()."""
    flow_dir = tmp_path_factory.mktemp("flows") / "flow"
    messages = []
    pretrained = stages.flow.load_or_pretrain(tiny_config(), loaded, flow_dir, log=messages.append)
    assert any(m.startswith("pretraining 1 flow(s)") for m in messages), messages
    return flow_dir, pretrained


class Pretrains(Exception):
    """Raised by the stand-in for pretraining.pretrain: the stage decided to pretrain."""


@pytest.fixture
def no_pretraining(monkeypatch):
    """pretraining.pretrain replaced by a recorder that stops the stage there."""
    calls = []

    def pretrain(flow_config, actions, states, **kwargs):
        calls.append({"flow_config": flow_config, "num_rows": actions.shape[0], **kwargs})
        raise Pretrains

    monkeypatch.setattr(pretraining, "pretrain", pretrain)
    return calls


def test_the_same_settings_reuse_the_saved_flow(saved, loaded, no_pretraining):
    flow_dir, pretrained = saved
    messages = []
    reused = stages.flow.load_or_pretrain(tiny_config(), loaded, flow_dir, log=messages.append)
    assert not no_pretraining and any(m.startswith(REUSED) for m in messages), messages
    for a, b in zip(jax.tree.leaves(reused.params), jax.tree.leaves(pretrained.params)):
        np.testing.assert_array_equal(a, b)
    # The statistics the flow was trained with are the dataset's, and come back with it.
    np.testing.assert_array_equal(reused.state_mean, loaded.state_stats.mean)
    np.testing.assert_array_equal(reused.state_std, loaded.state_stats.std)


def _other_data(loaded):
    return dataclasses.replace(loaded, transitions=loaded.transitions.take(jnp.arange(2500)))


def _other_generation(loaded):
    return dataclasses.replace(loaded, metadata={**loaded.metadata, "seed": loaded.metadata["seed"] + 1})


def _saved_with_the_datasets_epochs(flow_json):
    """As if the saved flow had been asked for the dataset's own epoch count (num_epochs None)
    and that count had been 1."""
    flow_json["flow_config"]["num_epochs"] = None
    flow_json["num_epochs"] = 1  # what it was trained for
    return flow_json


MISMATCHES = {
    # name: (config, dataset transform, flow.json edit, what the new pretraining is asked for)
    "fewer transitions": (tiny_config(), _other_data, None, {"num_rows": 2500}),
    "data generated with another seed": (tiny_config(), _other_generation, None, {}),
    "flow blocks": (
        tiny_config(flow=dataclasses.replace(tiny_config().flow, num_blocks=3)), None, None, {}),
    "epochs": (tiny_config(flow=dataclasses.replace(tiny_config().flow, num_epochs=2)), None, None,
               {"num_epochs": 2}),
    # The flow config alike (num_epochs None), but the dataset's count (100 for umaze) is not 1.
    "the dataset's epochs": (tiny_config(flow=dataclasses.replace(tiny_config().flow, num_epochs=None)),
                             None, _saved_with_the_datasets_epochs, {"num_epochs": 100}),
    "seed": (tiny_config(seed=1), None, None, {"seed": 1}),
    "number of flows": (tiny_config(num_seeds=2, flow_per_seed=True), None, None, {"num_seeds": 2}),
}


def mismatched(what, saved, loaded, tmp_path):
    """(config, dataset, flow_dir) of MISMATCHES[what]: a copy of the saved flow in tmp_path,
    its flow.json edited as the case says, and the config and dataset a run then asks with."""
    config, transform, edit, _ = MISMATCHES[what]
    flow_dir = tmp_path / "flow"
    shutil.copytree(saved[0], flow_dir)
    if edit:
        flow_json = flow_dir / "flow.json"
        flow_json.write_text(json.dumps(edit(json.loads(flow_json.read_text()))))
    return config, transform(loaded) if transform else loaded, flow_dir


@pytest.mark.parametrize("what", list(MISMATCHES))
def test_a_flow_made_otherwise_is_not_reused(saved, loaded, tmp_path, no_pretraining, what):
    config, dataset, flow_dir = mismatched(what, saved, loaded, tmp_path)
    asked = MISMATCHES[what][3]
    messages = []
    with pytest.raises(Pretrains):
        stages.flow.load_or_pretrain(config, dataset, flow_dir, log=messages.append)
    assert any(OTHER in m for m in messages) and not any(REUSED in m for m in messages), messages
    assert len(no_pretraining) == 1
    call = no_pretraining[0]
    assert call["flow_config"] == config.flow
    for key, value in asked.items():
        assert call[key] == value, (key, call[key])


def test_pretraining_anew_replaces_the_saved_flow(saved, loaded, tmp_path):
    flow_dir = tmp_path / "flow"
    shutil.copytree(saved[0], flow_dir)
    messages = []
    first = stages.flow.load_or_pretrain(tiny_config(seed=1), loaded, flow_dir, log=messages.append)
    assert any(OTHER in m for m in messages) and any(m.startswith("flow saved to") for m in messages)
    assert json.loads((flow_dir / "flow.json").read_text())["seed"] == 1
    leaves = zip(jax.tree.leaves(first.params), jax.tree.leaves(saved[1].params))
    assert any(not np.array_equal(a, b) for a, b in leaves)  # another seed, another flow
    messages = []
    again = stages.flow.load_or_pretrain(tiny_config(seed=1), loaded, flow_dir, log=messages.append)
    assert any(m.startswith(REUSED) for m in messages), messages
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(first.params)):
        np.testing.assert_array_equal(a, b)


# What each mismatch names in the refusal (the differing setting, saved -> asked).
NAMED = {
    "fewer transitions": "dataset.num_transitions",
    "data generated with another seed": "dataset.generation.seed",
    "flow blocks": "flow_config.num_blocks 2 -> 3",
    "epochs": "num_epochs 1 -> 2",
    "the dataset's epochs": "num_epochs 1 -> 100",
    "seed": "seed 0 -> 1",
    "number of flows": "num_flows 1 -> 2",
}


@pytest.mark.parametrize("what", list(MISMATCHES))
def test_a_shared_flow_made_otherwise_is_refused_not_replaced(saved, loaded, tmp_path, no_pretraining, what):
    """replace=False (a --flow_dir shared between runs): another run's agents decode through
    the flow there, so a run asking for other settings stops, naming them, and nothing changes."""
    config, dataset, flow_dir = mismatched(what, saved, loaded, tmp_path)
    before = {p.relative_to(flow_dir): p.read_bytes() for p in flow_dir.rglob("*") if p.is_file()}
    for ask in (lambda: stages.flow.check_not_other(config, dataset, flow_dir),
                lambda: stages.flow.load_or_pretrain(config, dataset, flow_dir, replace=False,
                                                     log=lambda m: pytest.fail(m))):
        with pytest.raises(stages.flow.OtherFlowError) as raised:
            ask()
        assert f"{flow_dir} holds a flow made otherwise" in str(raised.value)
        assert NAMED[what] in str(raised.value) and "delete" in str(raised.value)
    assert not no_pretraining
    assert {p.relative_to(flow_dir): p.read_bytes() for p in flow_dir.rglob("*") if p.is_file()} == before


def test_a_shared_flow_made_alike_is_reused(saved, loaded, no_pretraining):
    messages = []
    stages.flow.check_not_other(tiny_config(), loaded, saved[0])
    stages.flow.load_or_pretrain(tiny_config(), loaded, saved[0], replace=False, log=messages.append)
    assert not no_pretraining and any(m.startswith(REUSED) for m in messages), messages
