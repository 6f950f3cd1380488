"""The agent stage (lfjax.stages.agent) as a library call: a seed that goes non-finite is
reported, rolled back to its last good state and frozen, and the others go on."""

import jax
import jax.numpy as jnp
import numpy as np

from lfjax import agent, stages
from lfjax.checkpoints import restore_latest, run_checkpoints

from .conftest import tiny_config


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
