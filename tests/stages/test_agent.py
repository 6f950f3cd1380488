"""The agent stage (lfjax.stages.agent) as a library call: a seed that goes non-finite is
reported, rolled back to its last good state and frozen as failed, contributes no score from
then on, and the others go on; when every seed fails the stage stops with status "failed"; the
agents see states normalized with the statistics saved with the flow."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lfjax import agent, stages
from lfjax.checkpoints import PretrainedFlow, restore_latest, run_checkpoints

from .conftest import tiny_config


def poison(monkeypatch, seeds, chunk_number, good=None):
    """Makes seeds (indices) go non-finite in the chunk_number-th training chunk; good, a dict,
    gets seed 1's actor params after the first chunk."""
    real_make_train = agent.make_train
    calls = {"n": 0}

    def poisoned_make_train(*args, **kwargs):
        train_chunk = real_make_train(*args, **kwargs)

        def chunk(states, flow_params, dataset, n):
            states, metrics = train_chunk(states, flow_params, dataset, n)
            calls["n"] += 1
            if calls["n"] == 1 and good is not None:
                good["actor"] = jax.tree_util.tree_map(lambda x: np.asarray(x[1]), states.actor_params)
            if calls["n"] == chunk_number:
                nan = lambda x: x.at[jnp.array(seeds)].set(jnp.nan)
                states = states.replace(actor_params=jax.tree_util.tree_map(nan, states.actor_params))
                metrics = {**metrics, "finite": metrics["finite"].at[jnp.array(seeds)].set(False)}
            return states, metrics

        return chunk

    monkeypatch.setattr(stages.agent.agent, "make_train", poisoned_make_train)
    return calls


def record_datasets(monkeypatch, seen):
    """Makes the agent stage's training chunks store the dataset they train on in
    seen["dataset"] (as numpy arrays)."""
    real_make_train = agent.make_train

    def recording_make_train(*args, **kwargs):
        train_chunk = real_make_train(*args, **kwargs)

        def chunk(states, flow_params, dataset, n):
            seen["dataset"] = jax.tree_util.tree_map(np.asarray, dataset)
            return train_chunk(states, flow_params, dataset, n)

        return chunk

    monkeypatch.setattr(stages.agent.agent, "make_train", recording_make_train)


def test_a_seed_that_goes_non_finite_is_reported_and_the_others_go_on(loaded, tmp_path, monkeypatch):
    config = tiny_config()
    pretrained = stages.flow.load_or_pretrain(config, loaded, tmp_path / "flow", log=lambda _: None)
    good_after_first = {}
    poison(monkeypatch, [1], 2, good_after_first)  # seed index 1 blows up in the second chunk
    messages = []
    workdir = tmp_path / "run"
    workdir.mkdir()
    results = stages.agent.train_agent(
        config, loaded, pretrained, workdir, log=messages.append,
        results_base={"config": {**config.to_dict(), "seeds": [0, 1, 2]}},
    )
    assert any("seed 1: non-finite" in m and "20-40" in m for m in messages), messages
    assert results["status"] == "finished"
    final = results["final"]
    assert final["failed_seeds"] == [1] and final["failures"] == [{"seed": 1, "within_updates": [20, 40]}]
    # The failed seed has no score: not in the final scores, not in any mean from its failure on.
    assert final["scores"][1] is None and np.isfinite([final["scores"][0], final["scores"][2]]).all()
    assert final["mean"] == pytest.approx(np.mean([final["scores"][0], final["scores"][2]]))
    curve = results["curve"]
    assert curve[0]["scores"][1] is not None and curve[0]["failed_seeds"] == []
    for point in curve[1:]:
        assert point["scores"][1] is None and point["failed_seeds"] == [1]
        assert point["mean"] == pytest.approx(np.mean([point["scores"][0], point["scores"][2]]))
    # experiments.evaluate's rollout of the seeds that did not fail: theirs, with their own
    # episodes and noise (the last evaluation's scores again), the failed seed left out.
    step, saved = stages.agent.load_agents(config, pretrained, 4, workdir)
    returns = stages.agent.evaluate_agents(config, loaded.spec, pretrained, saved.actor_params,
                                           num_episodes=1, seed=curve[-1]["eval_seed"], member_indices=[0, 2])
    assert step == 60 and returns.shape == (2, 1)
    np.testing.assert_allclose(loaded.normalized_score(returns)[:, 0], [final["scores"][0], final["scores"][2]])
    # The last checkpoint holds seed 1's last good parameters and the other seeds' newest.
    manager = run_checkpoints(workdir)
    step, states, record = restore_latest(manager, workdir, jax.eval_shape(
        lambda: jax.vmap(agent.make_init(config.agent, pretrained.flow, 4))(jax.random.split(jax.random.PRNGKey(0), 3))))
    assert step == 60 and record["failed"] == [False, True, False]
    for kept, good in zip(jax.tree_util.tree_leaves(states.actor_params), jax.tree_util.tree_leaves(good_after_first["actor"])):
        np.testing.assert_array_equal(np.asarray(kept)[1], good)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(states))


def test_when_every_seed_fails_the_stage_stops_and_reports_no_score(loaded, tmp_path, monkeypatch):
    config = tiny_config()
    pretrained = stages.flow.load_or_pretrain(config, loaded, tmp_path / "flow", log=lambda _: None)
    calls = poison(monkeypatch, [0, 1, 2], 2)
    reports = []
    results = stages.agent.train_agent(
        config, loaded, pretrained, tmp_path / "run", log=lambda _: None, report=reports.append,
        results_base={"config": {**config.to_dict(), "seeds": [0, 1, 2]}},
    )
    assert calls["n"] == 2  # no training after the last seed failed
    assert results["status"] == "failed" and results["updates"] == 40
    assert results["final"]["scores"] == [None, None, None]
    assert results["final"]["mean"] is None and results["final"]["std"] is None
    assert results["curve"][-1]["mean"] is None and reports[-1]["status"] == "failed"


def test_agents_train_and_act_on_states_normalized_with_the_flows_statistics(loaded, tmp_path, monkeypatch):
    """The statistics saved with the flow (here deliberately not the dataset's own) normalize
    the observations and the next observations the agent trains on, and the observations it
    acts on in evaluation."""
    config = tiny_config(algo="awac", num_updates=20, eval_every=20, num_seeds=1)
    # One-step targets: next observation t is then row t's own (n-step shifts it along the path).
    config = dataclasses.replace(config, agent=dataclasses.replace(config.agent, n_step=1))
    decoder = agent.IdentityDecoder(loaded.spec.action_dim)
    own = loaded.state_stats
    mean, std = np.asarray(own.mean) + 1.0, 2.0 * np.asarray(own.std)
    pretrained = PretrainedFlow(decoder, decoder.params(1), jnp.asarray(mean), jnp.asarray(std), {})
    seen = {}
    record_datasets(monkeypatch, seen)
    real_evaluate = stages.agent.evaluation.evaluate_episodes

    def recording_evaluate(*args, **kwargs):
        seen["eval_stats"] = args[3]
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(stages.agent.evaluation, "evaluate_episodes", recording_evaluate)
    stages.agent.train_agent(config, loaded, pretrained, tmp_path, log=lambda _: None)

    raw = loaded.transitions
    np.testing.assert_allclose(seen["dataset"].observations, (np.asarray(raw.observations) - mean) / std,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(seen["dataset"].next_observations,
                               (np.asarray(raw.next_observations) - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(seen["eval_stats"].mean, mean.astype(np.float32))
    np.testing.assert_array_equal(seen["eval_stats"].std, std.astype(np.float32))


def test_results_hold_the_datas_return_and_what_each_seeds_episodes_did(loaded, tmp_path):
    """results["data"] holds the data's mean discounted Monte-Carlo return at the agent's gamma;
    every curve point holds, per seed, its critics' mean Q (their mean is the point's q_mean),
    the share of its episodes that reached the goal, and where they ended: end cells counting
    every episode, and a seed that never reached the goal scores exactly the all-zero return."""
    from lfjax.data.returns import mean_discounted_return

    config = tiny_config(algo="awac", num_seeds=2, num_updates=40, eval_every=20, eval_episodes=3,
                         final_eval_episodes=4)
    pretrained = stages.flow.no_flow(loaded)
    results = stages.agent.train_agent(config, loaded, pretrained, tmp_path, log=lambda _: None)
    assert results["data"]["gamma"] == 0.99
    assert results["data"]["mc_return_mean"] == pytest.approx(mean_discounted_return(loaded.transitions, 0.99))
    assert results["data"]["reward_range"] == [0.0, 1.0]
    zero = float(loaded.normalized_score(0.0))
    for point in results["curve"]:
        diag = point["diagnostics"]
        assert np.mean(diag["q_mean"]) == pytest.approx(point["q_mean"], rel=1e-5)
        for m in range(2):
            assert sum(count for _, _, count in diag["end_cells"][m]) == point["episodes"]
            assert 0.0 <= diag["reached"][m] <= 1.0 and diag["end_distance"][m] >= 0.0
            # The critics' Q at each episode's start, beside the discounted return it collected.
            assert np.isfinite(diag["q_start"][m]) and 0.0 <= diag["return_start"][m] < 100.0
            if diag["reached"][m] == 0.0:
                assert point["scores"][m] == pytest.approx(zero) and diag["first_reward_step"][m] is None
                assert diag["return_start"][m] == 0.0
            else:
                assert point["scores"][m] > zero and 1 <= diag["first_reward_step"][m] <= 300
                assert diag["return_start"][m] > 0.0


def test_a_resume_through_another_flow_or_on_other_data_is_refused(loaded, tmp_path):
    """Every checkpoint records the sha256 of the dataset's transitions and of the flow; the
    stage refuses to restore agents into another flow's latent space or onto other data, for
    callers that did not check first (experiments.run does, before writing anything)."""
    from lfjax.stages.resume import ChangedInputsError

    config = tiny_config(num_updates=20, num_seeds=1)
    pretrained = stages.flow.load_or_pretrain(config, loaded, tmp_path / "flow", log=lambda _: None)
    results = stages.agent.train_agent(config, loaded, pretrained, tmp_path / "run", log=lambda _: None)
    assert results["inputs"]["flow_sha256"] == stages.resume.flow_sha256(pretrained)
    other = dataclasses.replace(pretrained, params=jax.tree_util.tree_map(lambda x: x * 1.001, pretrained.params))
    with pytest.raises(ChangedInputsError, match="trained through another flow"):
        stages.agent.train_agent(config, loaded, other, tmp_path / "run", resume=True, log=lambda _: None)
    fewer = dataclasses.replace(loaded, transitions=jax.tree_util.tree_map(lambda x: x[:-1], loaded.transitions))
    with pytest.raises(ChangedInputsError, match="trained on other data"):
        stages.agent.train_agent(config, fewer, pretrained, tmp_path / "run", resume=True, log=lambda _: None)
    messages = []
    again = stages.agent.train_agent(config, loaded, pretrained, tmp_path / "run", resume=True, log=messages.append)
    assert "resuming from the checkpoint at 20 updates" in messages and again["final"] == results["final"]


def test_with_an_averaged_actor_the_average_is_what_the_run_evaluates(loaded, tmp_path):
    """actor_ema: the run's scores are the averaged actor's (experiments.evaluate's rollout of
    acting_params reproduces them exactly), not the trained actor's."""
    config = tiny_config(algo="awac", num_seeds=2, num_updates=40, eval_every=40, final_eval_episodes=3)
    config = dataclasses.replace(config, agent=dataclasses.replace(config.agent, actor_ema=0.05))
    pretrained = stages.flow.no_flow(loaded)
    results = stages.agent.train_agent(config, loaded, pretrained, tmp_path, log=lambda _: None)
    _, states = stages.agent.load_agents(config, pretrained, 4, tmp_path)
    point = results["curve"][-1]

    def scores(actor_params):
        returns = stages.agent.evaluate_agents(config, loaded.spec, pretrained, actor_params,
                                               num_episodes=3, seed=point["eval_seed"])
        return loaded.normalized_score(returns).mean(axis=1)

    np.testing.assert_array_equal(scores(agent.acting_params(states)), point["scores"])
    assert states.averaged_actor_params is not None
    assert not np.allclose(jax.tree_util.tree_leaves(states.averaged_actor_params)[0],
                           jax.tree_util.tree_leaves(states.actor_params)[0])


def test_with_n_step_targets_the_agents_train_on_the_n_step_dataset(loaded, tmp_path, monkeypatch):
    from lfjax.data.returns import n_step_transitions
    from lfjax.stages.dataset import normalized

    config = tiny_config(algo="awac", num_updates=20, eval_every=20, num_seeds=1)
    config = dataclasses.replace(config, agent=dataclasses.replace(config.agent, n_step=4))
    pretrained = stages.flow.no_flow(loaded)
    seen = {}
    record_datasets(monkeypatch, seen)
    stages.agent.train_agent(config, loaded, pretrained, tmp_path, log=lambda _: None)
    stats = type(loaded.state_stats)(mean=pretrained.state_mean, std=pretrained.state_std)
    expected = n_step_transitions(normalized(loaded.transitions, stats), 4, 0.99)
    jax.tree_util.tree_map(np.testing.assert_array_equal, seen["dataset"], jax.tree_util.tree_map(np.asarray, expected))
    assert (seen["dataset"].discounts < 0.99).any()  # some rows look further than one step
