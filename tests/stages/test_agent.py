"""The agent stage (lfjax.stages.agent) as a library call: a seed that goes non-finite is
reported, rolled back to its last good state and frozen, and the others go on; the agents see
states normalized with the statistics saved with the flow."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lfjax import agent, data, stages
from lfjax.checkpoints import PretrainedFlow, restore_latest, run_checkpoints
from lfjax.configs import RunConfig, quick_preset
from lfjax.datagen import generate_dataset


@pytest.fixture(scope="module")
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


def test_a_seed_that_goes_non_finite_is_reported_and_the_others_go_on(loaded, tmp_path, monkeypatch):
    config = tiny_config()
    pretrained = stages.flow.load_or_pretrain(config, loaded, tmp_path / "flow", log=lambda _: None)
    real_make_train = agent.make_train
    calls = {"n": 0}
    good_after_first = {}

    def poisoned_make_train(*args, **kwargs):
        train_chunk = real_make_train(*args, **kwargs)

        def chunk(states, flow_params, dataset, n):
            states, metrics = train_chunk(states, flow_params, dataset, n)
            calls["n"] += 1
            if calls["n"] == 1:
                good_after_first["actor"] = jax.tree_util.tree_map(lambda x: np.asarray(x[1]), states.actor_params)
            if calls["n"] == 2:  # seed index 1 blows up in the second chunk
                nan = lambda x: x.at[1].set(jnp.nan)
                states = states.replace(actor_params=jax.tree_util.tree_map(nan, states.actor_params))
                metrics = {**metrics, "finite": metrics["finite"].at[1].set(False)}
            return states, metrics

        return chunk

    monkeypatch.setattr(stages.agent.agent, "make_train", poisoned_make_train)
    messages = []
    workdir = tmp_path / "run"
    workdir.mkdir()
    results = stages.agent.train_agent(
        config, loaded, pretrained, workdir, log=messages.append,
        results_base={"config": {**config.to_dict(), "seeds": [0, 1, 2]}},
    )
    assert any("seed 1: non-finite" in m and "20-40" in m for m in messages), messages
    assert results["final"]["failed_seeds"] == [1]
    assert np.isfinite(results["final"]["mean"]) and np.isfinite(results["final"]["scores"]).all()
    # The last checkpoint holds seed 1's last good parameters and the other seeds' newest.
    manager = run_checkpoints(workdir)
    step, states, record = restore_latest(manager, workdir, jax.eval_shape(
        lambda: jax.vmap(agent.make_init(config.agent, pretrained.flow, 4))(jax.random.split(jax.random.PRNGKey(0), 3))))
    assert step == 60 and record["failed"] == [False, True, False]
    for kept, good in zip(jax.tree_util.tree_leaves(states.actor_params), jax.tree_util.tree_leaves(good_after_first["actor"])):
        np.testing.assert_array_equal(np.asarray(kept)[1], good)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(states))


def test_agents_train_and_act_on_states_normalized_with_the_flows_statistics(loaded, tmp_path, monkeypatch):
    """The statistics saved with the flow (here deliberately not the dataset's own) normalize
    the observations and the next observations the agent trains on, and the observations it
    acts on in evaluation."""
    config = tiny_config(algo="awac", num_updates=20, eval_every=20, num_seeds=1)
    decoder = agent.IdentityDecoder(loaded.spec.action_dim)
    own = loaded.state_stats
    mean, std = np.asarray(own.mean) + 1.0, 2.0 * np.asarray(own.std)
    pretrained = PretrainedFlow(decoder, decoder.params(1), jnp.asarray(mean), jnp.asarray(std), {})
    seen = {}
    real_make_train, real_evaluate = agent.make_train, stages.agent.evaluation.evaluate

    def recording_make_train(*args, **kwargs):
        train_chunk = real_make_train(*args, **kwargs)

        def chunk(states, flow_params, dataset, n):
            seen["dataset"] = jax.tree_util.tree_map(np.asarray, dataset)
            return train_chunk(states, flow_params, dataset, n)

        return chunk

    def recording_evaluate(*args, **kwargs):
        seen["eval_stats"] = args[3]
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(stages.agent.agent, "make_train", recording_make_train)
    monkeypatch.setattr(stages.agent.evaluation, "evaluate", recording_evaluate)
    stages.agent.train_agent(config, loaded, pretrained, tmp_path, log=lambda _: None)

    raw = loaded.transitions
    np.testing.assert_allclose(seen["dataset"].observations, (np.asarray(raw.observations) - mean) / std,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(seen["dataset"].next_observations,
                               (np.asarray(raw.next_observations) - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(seen["eval_stats"].mean, mean.astype(np.float32))
    np.testing.assert_array_equal(seen["eval_stats"].std, std.astype(np.float32))
