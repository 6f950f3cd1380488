"""BatchedEnv steps K copies exactly as K gymnasium envs stepped one by one: the same
observations, rewards, terminations and truncations, bit for bit, and the same returns through
`evaluate`."""

import dataclasses

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lfjax.envs.batched as batched_lib
from lfjax.data import get_env_spec
from lfjax.envs import BatchedEnv, make_batched_env, step_rule
from lfjax.evaluation import evaluate

ENVS = ["maze2d-umaze", "maze2d-large", "halfcheetah-medium", "hopper-medium", "walker2d-medium"]
SEEDS = [3, 4, 5, 6, 7]


def random_policy(spec, horizon):
    # Beyond [-1, 1]: maze2d clips the action, locomotion charges the unclipped control cost.
    actions = np.random.default_rng(0).uniform(-1.5, 1.5, (horizon, len(SEEDS), spec.action_dim))
    return lambda t, obs: actions[t].astype(np.float32)


def feedback_policy(spec, horizon):
    """Depends on the observations, so a copy that drifts off the reference drifts further.
    In maze2d it pushes along the velocity, so speeds reach PointEnv's clip of 5."""
    weights = np.random.default_rng(1).normal(size=(spec.obs_dim, spec.action_dim))

    def act(t, obs):
        push = 1.2 * np.tanh(0.5 * obs @ weights)
        if spec.is_maze:  # obs (x, y, vx, vy)
            push = 0.2 * push + 1.5 * np.tanh(3.0 * obs[:, 2:])
        return push.astype(np.float32)

    return act


def rollout(reset, step, policy, horizon):
    """Steps every copy until it ends (terminated or truncated) or horizon: -> per-step obs
    [T, K, S], reward, terminated, truncated [T, K] and the active mask [T, K]; finished copies
    are not stepped, as in evaluate."""
    obs = reset(SEEDS)
    done = np.zeros(len(SEEDS), bool)
    record = {"obs": [obs], "reward": [], "terminated": [], "truncated": [], "active": []}
    for t in range(horizon):
        if done.all():
            break
        active = ~done
        obs, reward, terminated, truncated = step(policy(t, obs), active)
        for name, value in zip(record, (obs, reward, terminated, truncated, active)):
            record[name].append(np.where(active[:, None], value, 0) if name == "obs" else
                                np.where(active, value, 0))
        done |= active & (terminated | truncated)
    return {name: np.array(values) for name, values in record.items()}


def loop_of_envs(spec):
    """reset / step over one fresh spec.make_eval_env() per copy, as evaluate's fallback."""
    envs = [spec.make_eval_env() for _ in SEEDS]

    def reset(seeds):
        return np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds)])

    def step(actions, active):
        obs, rewards = np.zeros((len(envs), spec.obs_dim)), np.zeros(len(envs))
        terminated, truncated = np.zeros(len(envs), bool), np.zeros(len(envs), bool)
        for i in np.flatnonzero(active):
            obs[i], reward, terminated[i], truncated[i], _ = envs[i].step(actions[i])
            rewards[i] = float(reward)
        return obs, rewards, terminated, truncated

    return reset, step, envs


@pytest.mark.parametrize("policy", [random_policy, feedback_policy])
@pytest.mark.parametrize("name", ENVS)
def test_batched_env_steps_exactly_as_the_envs(name, policy):
    """Whole episodes (to the TimeLimit, or a locomotion fall) from the same seeds and actions:
    every observation, reward and flag equal, bit for bit."""
    spec = get_env_spec(name)
    horizon = spec.max_episode_steps + 1
    reset, step, envs = loop_of_envs(spec)
    expected = rollout(reset, step, policy(spec, horizon), horizon)
    for env in envs:
        env.close()
    with make_batched_env(spec, len(SEEDS)) as batched:
        got = rollout(batched.reset, batched.step, policy(spec, horizon), horizon)
    for field in expected:
        np.testing.assert_array_equal(got[field], expected[field], err_msg=field)
    # What the episodes exercise: the TimeLimit (exactly once, at the last step), falls, the
    # goal reward, PointEnv's speed clip.
    lengths = expected["active"].sum(axis=0)
    if spec.is_maze or name.startswith("halfcheetah"):  # only the TimeLimit ends these
        assert (lengths == spec.max_episode_steps).all() and not expected["terminated"].any()
        assert expected["truncated"].sum() == len(SEEDS) and expected["truncated"][-1].all()
    else:  # hopper and walker2d fall under these policies
        assert expected["terminated"].any(axis=0).all()
    if spec.is_maze:
        assert expected["reward"].any()
        if policy is feedback_policy:
            assert np.abs(expected["obs"][..., 2:]).max() > 5.0


@pytest.mark.parametrize("name", ["hopper-medium", "walker2d-medium"])
def test_health_rules_match_the_envs(name):
    """The health rules against the env's own is_healthy on states episodes rarely reach: each
    range's edges, Hopper's |state| < 100 (velocities of a fall stay far below it), NaN."""
    env = get_env_spec(name).make_eval_env().unwrapped
    rule_healthy = batched_lib._LOCOMOTION[type(env)][0]
    rng = np.random.default_rng(0)
    num = 400
    qpos = env.init_qpos + rng.normal(scale=0.3, size=(num, env.model.nq))
    qpos[:, 1] = rng.uniform(0.5, 2.2, num)  # z across both edges of the healthy range
    qpos[:, 2] = rng.uniform(-1.2, 1.2, num)  # the angle likewise
    qvel = rng.normal(scale=5.0, size=(num, env.model.nv))
    big = rng.random((num, env.model.nv)) < 0.02
    qvel[big] = rng.choice([-150.0, 150.0], big.sum())
    # Healthy but for one coordinate exactly on an edge of its range: unhealthy.
    qpos[:4, 1:3], qvel[:4] = (1.25, 0.0), 0.0
    qpos[0:2, 1] = env._healthy_z_range
    qpos[2:4, 2] = env._healthy_angle_range
    qpos[5::97, 2] = np.nan
    expected = []
    for q, v in zip(qpos, qvel):
        env.data.qpos[:], env.data.qvel[:] = q, v
        expected.append(env.is_healthy)
    got = rule_healthy(env, qpos, qvel)
    np.testing.assert_array_equal(got, np.array(expected, bool))
    assert 0.1 < got.mean() < 0.9
    env.close()


def test_inactive_copies_are_not_stepped():
    spec = get_env_spec("maze2d-umaze")
    push = np.ones((3, 2), np.float32)
    with make_batched_env(spec, 3) as batched:
        start = batched.reset([1, 2, 3])
        held = np.array([False, True, False])
        obs, reward, terminated, truncated = batched.step(push, ~held)
        assert (obs[held] == start[held]).all() and (obs[~held] != start[~held]).any()
        assert reward[held] == 0 and not terminated[held] and not truncated[held]
        late, *_ = batched.step(push, held)
    # The held copy then takes its first step from its reset state, as a copy of its own.
    with make_batched_env(spec, 1) as single:
        single.reset([2])
        np.testing.assert_array_equal(single.step(push[:1])[0][0], late[1])


def test_unsupported_envs_get_none():
    hopper = get_env_spec("hopper-medium")
    assert make_batched_env(dataclasses.replace(hopper, eval_env_id="Pendulum-v1"), 2) is None
    assert make_batched_env(dataclasses.replace(hopper, eval_env_id="Ant-v5"), 2) is None
    # A wrapper that changes actions, observations or rewards is not what the rules reproduce.
    env = gymnasium.wrappers.ClipAction(hopper.make_eval_env())
    with pytest.raises(ValueError, match="wrapper"):
        BatchedEnv(env, step_rule(env.unwrapped), 2)
    env.close()


def tiny_actor(agent_params, flow_params, obs, key):
    """One seed's policy: a random linear map of the observation plus noise, in [-1, 1]."""
    noise = 0.3 * jax.random.normal(key, (obs.shape[0], agent_params.shape[1]))
    return jnp.clip(jnp.tanh(obs @ agent_params) * flow_params + noise, -1.0, 1.0)


@pytest.mark.parametrize("name", ["maze2d-umaze", "halfcheetah-medium", "hopper-medium",
                                  "walker2d-medium"])
def test_evaluate_returns_are_identical_with_batching(name):
    spec = get_env_spec(name)
    num_seeds, num_episodes = 2, 3
    agent = jax.random.normal(jax.random.PRNGKey(0), (num_seeds, spec.obs_dim, spec.action_dim))
    flow = jnp.array([1.0, 0.5])
    stats = (np.zeros(spec.obs_dim), np.full(spec.obs_dim, 2.0))
    make_env = lambda i: spec.make_eval_env()
    loop = evaluate(tiny_actor, agent, flow, stats, make_env, num_episodes=num_episodes, seed=9)
    # Two threads: MuJoCo's batch is bit-identical at any thread count.
    with make_batched_env(spec, num_seeds * num_episodes, nthread=2) as batched:
        together = evaluate(tiny_actor, agent, flow, stats, make_env, num_episodes=num_episodes,
                            seed=9, batched_env=batched)
        again = evaluate(tiny_actor, agent, flow, stats, make_env, num_episodes=num_episodes,
                         seed=9, batched_env=batched)  # a kept BatchedEnv starts afresh
    np.testing.assert_array_equal(together, loop)
    np.testing.assert_array_equal(again, loop)
    assert np.unique(loop).size > 1  # the episodes differ: a mixed-up copy would show


def test_evaluate_part_of_a_run_with_batching():
    """One process's seeds (seed_indices) get the whole run's episodes in the batched env too;
    a batched env of the wrong size is refused."""
    spec = get_env_spec("maze2d-umaze")
    agent = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 2))
    flow, stats = jnp.ones(3), (np.zeros(4), np.ones(4))
    make_env = lambda i: spec.make_eval_env()
    whole = evaluate(tiny_actor, agent, flow, stats, make_env, num_episodes=2, seed=4)
    rows = np.array([0, 2])
    with make_batched_env(spec, 4) as batched:
        part = evaluate(tiny_actor, agent[rows], flow[rows], stats, make_env, num_episodes=2,
                        seed=4, seed_indices=rows, num_run_seeds=3, batched_env=batched)
        with pytest.raises(ValueError, match="copies"):
            evaluate(tiny_actor, agent, flow, stats, make_env, num_episodes=2, batched_env=batched)
    np.testing.assert_array_equal(part, whole[rows])
