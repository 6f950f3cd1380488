"""A hyperparameter grid in one program reproduces separate runs of each configuration and
seed: the same initial states, the same training randomness, the same evaluation episodes and
policy noise. XLA on CPU sums some reductions in another order for 8 members than for 2, so
the parameters agree to float32 rounding (checked over 10 updates), not bit for bit."""

import dataclasses

import jax
import numpy as np
import pytest

from lfjax import agent, data, stages
from lfjax.stages.dataset import normalized

from .conftest import tiny_config

SWEEP = (("awac_lambda", (0.2, 1.0)), ("tau", (0.01, 0.05)))


def _separate(config, overrides):
    """The run of one grid configuration alone (its seeds, no sweep)."""
    return dataclasses.replace(config, sweep=(), agent=dataclasses.replace(config.agent, **overrides))


@pytest.fixture(scope="module")
def setup(loaded, tmp_path_factory):
    config = dataclasses.replace(tiny_config(num_seeds=2, num_updates=20, eval_every=10), sweep=SWEEP)
    root = tmp_path_factory.mktemp("grid")
    pretrained = stages.flow.load_or_pretrain(config, loaded, root / "flow", log=lambda _: None)
    return config, pretrained, root


def _train(config, pretrained, loaded, num_updates):
    init, args = stages.agent.agent_init(config, pretrained, loaded.spec.obs_dim)
    states = jax.jit(jax.vmap(init))(*args)
    stats = data.StateStats(mean=pretrained.state_mean, std=pretrained.state_std)
    dataset = normalized(loaded.transitions, stats)
    frozen = stages.agent.frozen_flows(pretrained, config)
    return agent.make_train(config.agent, pretrained.flow)(states, frozen, dataset, num_updates)


def test_members_train_like_their_separate_runs(setup, loaded):
    config, pretrained, _ = setup
    grid_states, grid_metrics = _train(config, pretrained, loaded, 10)
    # The first and last configurations differ in both settings (each separate run compiles
    # its own program, so not all four); the hparams below pin every member's place.
    for c in (0, len(config.grid) - 1):
        states, metrics = _train(_separate(config, config.grid[c]), pretrained, loaded, 10)
        rows = slice(c * config.num_seeds, (c + 1) * config.num_seeds)
        for key in ("critic_loss", "actor_loss", "q_mean", "weight_mean"):
            np.testing.assert_allclose(grid_metrics[key][rows], metrics[key], rtol=1e-5)
        for a, b in zip(jax.tree.leaves(grid_states), jax.tree.leaves(states)):
            a, b = np.asarray(a)[rows], np.asarray(b)
            scale = np.abs(b).max() if b.size and b.dtype.kind == "f" else 0
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale)
    # Each member's own hyperparameters, in member order (configs x seeds).
    np.testing.assert_allclose(grid_states.hparams.tau, [0.01, 0.01, 0.05, 0.05] * 2, rtol=1e-6)
    np.testing.assert_allclose(grid_states.hparams.awac_lambda, [0.2] * 4 + [1.0] * 4, rtol=1e-6)


def test_members_play_their_seeds_episodes(setup, loaded):
    """Given the same actors, a member scores exactly what its seed scores in a separate run:
    same resets, same policy noise."""
    config, pretrained, _ = setup
    grid_states, _ = _train(config, pretrained, loaded, 3)
    grid_scores = stages.agent.evaluate_agents(config, loaded.spec, pretrained,
                                               grid_states.actor_params, num_episodes=2, seed=5)
    for c, overrides in enumerate(config.grid):
        rows = slice(c * config.num_seeds, (c + 1) * config.num_seeds)
        actors = jax.tree.map(lambda x: x[rows], grid_states.actor_params)
        alone = stages.agent.evaluate_agents(_separate(config, overrides), loaded.spec, pretrained,
                                             actors, num_episodes=2, seed=5)
        np.testing.assert_array_equal(grid_scores[rows], alone)


def test_grid_results_summary_and_resume(setup, loaded):
    config, pretrained, root = setup
    results = stages.agent.train_agent(config, loaded, pretrained, root / "grid", log=lambda _: None)
    assert [m["config"] for m in results["members"]] == [g for g in config.grid for _ in range(2)]
    assert [m["seed"] for m in results["members"]] == [config.seed, config.seed + 1] * 4
    summary = results["summary"]
    assert len(summary) == 4 and results["best"] == summary[0]["config"]
    means = [s["mean"] for s in summary]
    assert means == sorted(means, reverse=True)
    final = np.array(results["final"]["scores"])
    for entry in summary:
        c = config.grid.index(entry["config"])
        np.testing.assert_allclose(entry["mean"], final[2 * c: 2 * c + 2].mean())
    assert len(results["curve"][-1]["configs"]) == 4

    # Stopped after the first chunk and resumed: the same curve as uninterrupted.
    half = dataclasses.replace(config, num_updates=10, final_eval_episodes=config.eval_episodes)
    stages.agent.train_agent(half, loaded, pretrained, root / "resumed", log=lambda _: None)
    messages = []
    resumed = stages.agent.train_agent(config, loaded, pretrained, root / "resumed", resume=True,
                                       log=messages.append)
    assert "resuming from the checkpoint at 10 updates (num_updates 10 -> 20)" in messages
    assert [p["scores"] for p in resumed["curve"]] == [p["scores"] for p in results["curve"]]
