"""Batched policy evaluation in the real environment, and D4RL-normalized scores.

All seeds x episodes run side by side: one environment copy per (seed, episode), one jitted
policy call per environment step for all of them, each episode counted exactly once. The copies
step one by one (`lfjax.envs.EnvLoop`), or all in one MuJoCo call per step when given a
`lfjax.envs.BatchedEnv`, with bit-identical returns.
"""

import dataclasses
import functools
import math
from typing import Any, Callable

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from lfjax.envs import BatchedEnv, EnvLoop

ActFn = Callable[[Any, Any, jax.Array, jax.Array], jax.Array]


class NonFiniteParametersError(ValueError):
    """A policy to roll out has non-finite parameters: it has no score to measure."""


@jax.jit
def finite_seeds(tree: Any) -> jax.Array:
    """[N] bool: whether every array of seed i (leaves [N, ...]) is finite."""
    leaves = jax.tree.leaves(tree)
    ok = jnp.ones(leaves[0].shape[0], bool)
    for x in leaves:
        if jnp.issubdtype(x.dtype, jnp.inexact):
            ok &= jnp.isfinite(x).reshape(x.shape[0], math.prod(x.shape[1:])).all(axis=1)
    return ok


@functools.lru_cache(maxsize=16)
def _batched_act(act_fn: ActFn) -> Callable:
    # Cached per act_fn so that repeated evaluations between training chunks reuse one compiled
    # program instead of tracing a fresh vmap wrapper each time.
    return jax.jit(jax.vmap(act_fn, in_axes=(0, 0, 0, 0)))


def _mean_std(state_stats: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(state_stats, "mean") and hasattr(state_stats, "std"):
        mean, std = state_stats.mean, state_stats.std
    else:
        mean, std = state_stats
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


@dataclasses.dataclass(frozen=True)
class Episodes:
    """What every evaluation episode did, [N seeds, E episodes] each.

    Attributes:
        returns: undiscounted returns, float64.
        lengths: steps taken.
        final_observations: [N, E, S] the last observation of each episode (where it ended).
        first_reward_steps: the step (1-based) of the first non-zero reward, -1 when none came:
            in a sparse-reward maze, when the goal was first reached.
        first_observations: [N, E, S] each episode's first observation (raw, not normalized).
        first_actions: [N, E, A] the action taken there.
        discounted_returns: sum_t gamma^t r_t of each episode (None without a gamma): what a
            critic's Q(first observation, first action) estimates, but for the episode's
            end (truncation) cutting the tail.
    """

    returns: np.ndarray
    lengths: np.ndarray
    final_observations: np.ndarray
    first_reward_steps: np.ndarray
    first_observations: np.ndarray
    first_actions: np.ndarray
    discounted_returns: np.ndarray | None = None


def evaluate(*args, **kwargs) -> np.ndarray:
    """Undiscounted returns of every seed's policy: -> [N, num_episodes] float64.
    `evaluate_episodes(...).returns`; the arguments are evaluate_episodes'."""
    return evaluate_episodes(*args, **kwargs).returns


def evaluate_episodes(
    act_fn: ActFn,
    agent_params: Any,
    flow_params: Any,
    state_stats: Any,
    make_env: Callable[[int], gymnasium.Env],
    num_episodes: int = 10,
    seed: int = 0,
    max_episode_steps: int | None = None,
    seed_indices: Any = None,
    num_run_seeds: int | None = None,
    batched_env: BatchedEnv | None = None,
    gamma: float | None = None,
) -> Episodes:
    """Every seed's policy rolled out: -> Episodes [N, num_episodes] (returns float64, lengths,
    final observations [N, num_episodes, S], first reward steps).

    Args:
        act_fn: act(actor_params, flow_params, normalized_obs [B, S], key) -> actions [B, A]
            for one seed (e.g. `lfjax.agent.make_act(...)`); vmapped here over seeds. Keep the
            same function object across calls to reuse its compiled program.
        agent_params: the actors' parameters, leading seed axis [N, ...].
        flow_params: the frozen flows' parameters, leading seed axis [N, ...].
        state_stats: the dataset's state statistics, an object with `.mean` and `.std` [S] or a
            (mean, std) pair; observations are normalized as (obs - mean) / std.
        make_env: make_env(i) -> a fresh environment with flat Box observations [S] and actions
            [A], ending its episodes by termination or truncation (e.g. a TimeLimit).
            Called N * num_episodes times; copy i = seed_index * num_episodes + episode.
        num_episodes: episodes per seed.
        seed: copy i is reset with seed + i; the policies' noise is drawn from PRNGKey(seed).
        max_episode_steps: optional extra cap on episode length (truncation).
        seed_indices: when these N seeds are part of a larger run of ``num_run_seeds`` seeds
            (e.g. the seeds one process holds, see `lfjax.sharding.addressable_seeds`), their
            indices [N] in it: each seed then gets the episodes and the noise it gets when the
            whole run is evaluated in one call. Default: the N seeds are the whole run.
        batched_env: N * num_episodes copies of the env make_env makes, stepped together
            (`lfjax.envs.make_batched_env(spec, N * num_episodes)`; keep it across calls): the
            same returns, bit for bit, without a Python env.step per copy; make_env is then
            not called. The caller closes it.
        gamma: also sum each episode's rewards discounted by gamma (Episodes.discounted_returns).

    Raises NonFiniteParametersError, before any rollout, when a seed's agent or flow
    parameters are not all finite (a diverged seed has no score; the caller leaves it out).
    """
    num_seeds = jax.tree.leaves(agent_params)[0].shape[0]
    bad = np.flatnonzero(~np.asarray(finite_seeds((agent_params, flow_params))))
    if bad.size:
        where = bad if seed_indices is None else np.asarray(seed_indices)[bad]
        raise NonFiniteParametersError(
            f"seed index(es) {where.tolist()} have non-finite policy or flow parameters: "
            "refusing to roll them out (a diverged seed has no score; leave it out)"
        )
    if seed_indices is None:
        seed_indices = np.arange(num_seeds)
    seed_indices = np.asarray(seed_indices)
    num_run_seeds = num_seeds if num_run_seeds is None else num_run_seeds
    if seed_indices.shape != (num_seeds,) or not (0 <= seed_indices).all() or (
        seed_indices >= num_run_seeds
    ).any():
        raise ValueError(
            f"seed_indices must be {num_seeds} indices in [0, {num_run_seeds}), got {seed_indices}"
        )
    num_envs = num_seeds * num_episodes
    mean, std = _mean_std(state_stats)
    batched_act = _batched_act(act_fn)

    copies = (seed_indices[:, None] * num_episodes + np.arange(num_episodes)).ravel()
    if batched_env is not None and batched_env.num_envs != num_envs:
        raise ValueError(
            f"batched_env has {batched_env.num_envs} copies, evaluation needs {num_envs} "
            f"({num_seeds} seeds x {num_episodes} episodes)"
        )
    envs = batched_env if batched_env is not None else EnvLoop([make_env(int(i)) for i in copies])
    try:
        obs = envs.reset(seed + copies).astype(np.float32)
        returns = np.zeros(num_envs, np.float64)
        lengths = np.zeros(num_envs, np.int64)
        first_reward = np.full(num_envs, -1, np.int64)
        discounted = np.zeros(num_envs, np.float64)
        first_obs, first_actions = obs.copy(), None
        done = np.zeros(num_envs, bool)
        key = jax.random.PRNGKey(seed)
        while not done.all():
            key, step_key = jax.random.split(key)
            norm_obs = ((obs - mean) / std).reshape(num_seeds, num_episodes, -1)
            # Finished copies still ride along in the batch (fixed shapes: one compiled call),
            # but are never stepped again, so no autoreset episode is counted.
            keys = jax.random.split(step_key, num_run_seeds)
            if num_run_seeds != num_seeds:
                keys = keys[seed_indices]
            actions = batched_act(agent_params, flow_params, jnp.asarray(norm_obs), keys)
            actions = np.asarray(actions).reshape(num_envs, -1)
            if first_actions is None:
                first_actions = actions.copy()
            active = ~done
            next_obs, reward, terminated, truncated = envs.step(actions, active)
            obs[active] = next_obs[active]
            returns[active] += reward[active]
            lengths[active] += 1
            first = active & (first_reward < 0) & (reward != 0)
            first_reward[first] = lengths[first]
            if gamma is not None:
                discounted[active] += gamma ** (lengths[active] - 1) * reward[active]
            capped = max_episode_steps is not None and lengths >= max_episode_steps
            done |= active & (terminated | truncated | capped)
    finally:
        if batched_env is None:
            envs.close()
    return Episodes(
        returns=returns.reshape(num_seeds, num_episodes),
        lengths=lengths.reshape(num_seeds, num_episodes),
        final_observations=np.asarray(obs, np.float64).reshape(num_seeds, num_episodes, -1),
        first_reward_steps=first_reward.reshape(num_seeds, num_episodes),
        first_observations=np.asarray(first_obs, np.float64).reshape(num_seeds, num_episodes, -1),
        first_actions=first_actions.reshape(num_seeds, num_episodes, -1),
        discounted_returns=None if gamma is None else discounted.reshape(num_seeds, num_episodes),
    )


def normalized_score(returns: Any, ref_min_score: float, ref_max_score: float) -> Any:
    """D4RL score 100 * (return - random) / (expert - random); any array shape, same shape out."""
    if ref_max_score == ref_min_score:
        raise ValueError("reference returns must differ")
    return 100.0 * (np.asarray(returns) - ref_min_score) / (ref_max_score - ref_min_score)
