"""The flow stage (lfjax.stages.flow): an unfinished pretraining is never taken for a flow and
resumes only when asked to; a flow that never reaches a finite validation NLL saves nothing."""

import dataclasses

import jax.numpy as jnp
import pytest

from lfjax import data, stages
from lfjax.checkpoints import FlowProgress, PartialFlowError
from lfjax.configs import quick_preset
from lfjax.pretraining import FlowDivergedError


@pytest.fixture(scope="module")
def loaded(small_umaze):
    return data.load_dataset("maze2d-umaze")


def tiny_config():
    config = quick_preset("maze2d-umaze")
    flow = dataclasses.replace(config.flow, num_blocks=2, num_epochs=2, batch_size=256, hidden_dims=(32, 32))
    return dataclasses.replace(config, flow=flow)


class Interrupted(Exception):
    pass


def test_an_unfinished_pretraining_is_resumed_only_when_asked(loaded, tmp_path, monkeypatch):
    config, flow_dir = tiny_config(), tmp_path / "flow"
    save = FlowProgress.save

    def save_then_stop(self, epoch, tree, record):
        save(self, epoch, tree, record)
        raise Interrupted

    monkeypatch.setattr(FlowProgress, "save", save_then_stop)
    with pytest.raises(Interrupted):
        stages.flow.load_or_pretrain(config, loaded, flow_dir, log=lambda _: None)
    monkeypatch.setattr(FlowProgress, "save", save)
    assert (flow_dir / "progress" / "1").is_dir() and not (flow_dir / "flow.json").exists()

    with pytest.raises(PartialFlowError, match="1 of 2 epochs.*pass --resume"):
        stages.flow.load_or_pretrain(config, loaded, flow_dir, log=lambda _: None)
    messages = []
    resumed = stages.flow.load_or_pretrain(config, loaded, flow_dir, resume=True, log=messages.append)
    assert "resuming the flow's pretraining after epoch 1/2" in messages
    assert [h["epoch"] for h in resumed.info["history"]] == [1, 2]
    assert (flow_dir / "flow.json").is_file() and not (flow_dir / "progress").exists()


def test_a_flow_that_never_reaches_a_finite_nll_saves_nothing(loaded, tmp_path, monkeypatch):
    real = data.normalize_states
    monkeypatch.setattr(stages.flow.data, "normalize_states",
                        lambda obs, stats: real(obs, stats).at[::5, 0].set(jnp.nan))
    flow_dir = tmp_path / "flow"
    with pytest.raises(FlowDivergedError, match="never reached a finite validation NLL in 2"):
        stages.flow.load_or_pretrain(tiny_config(), loaded, flow_dir, resume=True, log=lambda _: None)
    assert sorted(p.name for p in flow_dir.iterdir()) == ["lfjax.lock"]  # no flow, no progress
