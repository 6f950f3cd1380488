"""Batched evaluation: per-seed routing, one episode per copy, normalization, scores."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces

from lfjax.evaluation import NonFiniteParametersError, evaluate, normalized_score


class CountdownEnv(gymnasium.Env):
    """Reward = first action component; terminates after `length` steps; counts its steps."""

    def __init__(self, length):
        self.length = length
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.steps_taken = 0
        self.resets = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.resets += 1
        return np.array([0.0, self.length], np.float32), {}

    def step(self, action):
        assert self.t < self.length, "stepped after the episode ended"
        self.t += 1
        self.steps_taken += 1
        obs = np.array([self.t, self.length], np.float32)
        return obs, float(action[0]), self.t == self.length, False, {}


def constant_act(agent_params, flow_params, obs, key):
    # One seed: its scalar "policy" times its scalar "flow".
    return jnp.clip(jnp.full((obs.shape[0], 1), agent_params * flow_params), -1.0, 1.0)


def test_each_seed_gets_its_own_policy_and_each_episode_counts_once():
    made = []

    def make_env(i):
        made.append(CountdownEnv(length=2 + i % 4))  # copies end at different steps
        return made[-1]

    agent = jnp.array([0.5, -0.25, 1.0])
    flow = jnp.array([1.0, 1.0, 0.5])
    returns = evaluate(constant_act, agent, flow, (np.zeros(2), np.ones(2)), make_env, num_episodes=5)
    assert returns.shape == (3, 5)
    lengths = np.array([2 + i % 4 for i in range(15)]).reshape(3, 5)
    np.testing.assert_allclose(returns, np.array([0.5, -0.25, 0.5])[:, None] * lengths)
    assert [env.steps_taken for env in made] == lengths.reshape(-1).tolist()
    assert all(env.resets == 1 for env in made)


def test_observations_are_normalized_with_the_dataset_stats():
    def obs_act(agent_params, flow_params, obs, key):
        return jnp.clip(obs[:, :1], -1.0, 1.0)  # acts with the normalized time step

    mean, std = np.array([1.0, 0.0]), np.array([4.0, 1.0])
    returns = evaluate(
        obs_act, jnp.zeros(1), jnp.zeros(1), (mean, std), lambda i: CountdownEnv(3), num_episodes=2
    )
    # Observed t = 0, 1, 2 -> (t - 1) / 4 = -0.25, 0, 0.25.
    np.testing.assert_allclose(returns, np.zeros((1, 2)), atol=1e-7)
    returns = evaluate(
        obs_act, jnp.zeros(1), jnp.zeros(1), (np.zeros(2), std), lambda i: CountdownEnv(3), num_episodes=2
    )
    np.testing.assert_allclose(returns, np.full((1, 2), 0.75))


class Recorder(gymnasium.Wrapper):
    """Counts a real env's steps, adds up its rewards, and records how its episode ended."""

    def __init__(self, env):
        super().__init__(env)
        self.steps, self.total, self.ends = 0, 0.0, []

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self.total += float(reward)
        if terminated or truncated:
            self.ends.append((self.steps, bool(terminated), bool(truncated)))
        return obs, reward, terminated, truncated, info


def test_an_episode_truncated_by_the_time_limit_ends_there():
    """Pendulum never terminates: its TimeLimit of 7 steps must end each episode, counted once."""
    made = []

    def make_env(i):
        made.append(Recorder(gymnasium.make("Pendulum-v1", max_episode_steps=7)))
        return made[-1]

    def run():
        made.clear()
        # The cap of 50 is only there to stop an evaluation that ignores truncation.
        return evaluate(constant_act, jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0]),
                        (np.zeros(3), np.ones(3)), make_env, num_episodes=2, seed=3,
                        max_episode_steps=50)

    returns = run()
    assert [env.ends for env in made] == [[(7, False, True)]] * 4  # 7 steps, truncated, once
    np.testing.assert_allclose(returns.ravel(), [env.total for env in made], rtol=1e-12)
    assert len({env.total for env in made}) == 4  # each copy its own reset seed
    np.testing.assert_array_equal(returns, run())  # env resets seeded: reproducible


def test_max_episode_steps_caps_endless_episodes():
    made = []

    def make_env(i):
        made.append(CountdownEnv(length=10**9))
        return made[-1]

    returns = evaluate(constant_act, jnp.ones(2), jnp.ones(2), (np.zeros(2), np.ones(2)),
                       make_env, num_episodes=1, max_episode_steps=4)
    np.testing.assert_allclose(returns, np.full((2, 1), 4.0))
    assert [env.steps_taken for env in made] == [4, 4]


def test_normalized_score():
    np.testing.assert_allclose(normalized_score(161.86, 23.85, 161.86), 100.0)
    np.testing.assert_allclose(normalized_score(np.array([23.85, 92.855]), 23.85, 161.86), [0.0, 50.0])
    with pytest.raises(ValueError):
        normalized_score(1.0, 2.0, 2.0)


def test_part_of_a_run_gets_the_same_episodes_as_the_whole_run():
    """What one process of a multi-host run evaluates (seed_indices) equals its rows of the
    whole run evaluated at once: same environment copies, same resets, same policy noise."""

    def noisy_act(agent_params, flow_params, obs, key):
        noise = jax.random.uniform(key, (obs.shape[0], 1), minval=-0.1, maxval=0.1)
        return jnp.clip(agent_params * flow_params + noise + 0.01 * obs[:, :1], -1.0, 1.0)

    def make_env(i):
        return CountdownEnv(length=2 + i % 3)

    agent = jnp.array([0.5, -0.25, 1.0, 0.1])
    flow = jnp.ones(4)
    stats = (np.zeros(2), np.ones(2))
    whole = evaluate(noisy_act, agent, flow, stats, make_env, num_episodes=3, seed=7)
    rows = np.array([1, 3])
    part = evaluate(noisy_act, agent[rows], flow[rows], stats, make_env, num_episodes=3,
                    seed=7, seed_indices=[1, 3], num_run_seeds=4)
    np.testing.assert_array_equal(part, whole[rows])
    with pytest.raises(ValueError, match="seed_indices"):
        evaluate(noisy_act, agent[:2], flow[:2], stats, make_env, seed_indices=[0, 4], num_run_seeds=4)


def test_a_seed_with_non_finite_parameters_is_never_rolled_out():
    made = []

    def make_env(i):
        made.append(CountdownEnv(length=3))
        return made[-1]

    agent = jnp.array([0.5, jnp.nan, 1.0])
    with pytest.raises(NonFiniteParametersError, match=r"seed index\(es\) \[1\]"):
        evaluate(constant_act, agent, jnp.ones(3), (np.zeros(2), np.ones(2)), make_env, num_episodes=2)
    flow = jnp.array([1.0, 1.0, jnp.inf])  # the flow a seed decodes through counts too
    with pytest.raises(NonFiniteParametersError, match=r"\[7\]"):
        evaluate(constant_act, jnp.ones(3), flow, (np.zeros(2), np.ones(2)), make_env, num_episodes=2,
                 seed_indices=[5, 6, 7], num_run_seeds=8)
    assert made == []  # refused before any env was made


def test_episodes_record_where_each_ended_and_when_the_first_reward_came():
    """evaluate_episodes: returns as evaluate's, lengths, the last observation of each
    episode (never one after its end) and the 1-based step of the first non-zero reward (-1
    for a policy that earns none)."""
    from lfjax.evaluation import evaluate_episodes

    agent = jnp.array([0.5, 0.0, 1.0])  # seed 1 earns no reward at all
    flow = jnp.ones(3)
    make_env = lambda i: CountdownEnv(length=2 + i % 4)
    run = evaluate_episodes(constant_act, agent, flow, (np.zeros(2), np.ones(2)), make_env, num_episodes=5,
                            gamma=0.5)
    lengths = np.array([2 + i % 4 for i in range(15)]).reshape(3, 5)
    np.testing.assert_array_equal(run.lengths, lengths)
    np.testing.assert_allclose(run.returns, evaluate(constant_act, agent, flow, (np.zeros(2), np.ones(2)),
                                                     make_env, num_episodes=5))
    np.testing.assert_array_equal(run.final_observations[..., 0], lengths)  # obs = [t, length]
    np.testing.assert_array_equal(run.final_observations[..., 1], lengths)
    np.testing.assert_array_equal(run.first_reward_steps, [[1] * 5, [-1] * 5, [1] * 5])
    np.testing.assert_array_equal(run.first_observations, np.stack([np.zeros((3, 5)), lengths], -1))
    np.testing.assert_array_equal(run.first_actions[..., 0], np.repeat([[0.5], [0.0], [1.0]], 5, 1))
    # Reward a per step: sum_t 0.5^t a = a (2 - 2 * 0.5^length).
    np.testing.assert_allclose(run.discounted_returns,
                               np.array([0.5, 0.0, 1.0])[:, None] * (2 - 2 * 0.5 ** lengths))
