"""Generated stand-ins for the D4RL locomotion datasets (halfcheetah, hopper, walker2d).

D4RL's data (and Minari's mujoco/* datasets) cannot be made on this machine: they come from
SAC policies trained for millions of steps. What can be made is a small dataset in exactly
their format, collected in the same gymnasium v5 MuJoCo environments, so that the loader, the
flow and the agent run on data with the real shapes, termination structure and reward scale.
These stand-ins are NOT D4RL data, and scores on them are not comparable with the paper's.

Two behaviour policies, both acting in the evaluation environment itself:
- random: uniform actions in [-1, 1]^A;
- trained: a linear policy a = tanh(W (s - mu) / sigma), trained briefly with Augmented Random
  Search (Mania et al. 2018, "V2-t": normalized states, the best directions only) on the env's
  own reward; it collects data with N(0, BEHAVIOUR_NOISE_STD^2) noise added to its actions
  (D4RL's SAC policies also collected stochastically, and a deterministic behaviour policy
  would give the flow a point mass to fit).
Dataset kinds, after D4RL's:
- medium: the trained policy's episodes;
- medium-replay: a mixture of both: each action is random with probability epsilon, which
  falls linearly from 1 to 0 over the stream (a learner's replay buffer, from random to
  "medium");
- medium-expert: a concatenation: random-policy episodes for the first half of the stream,
  then the trained policy's (D4RL's medium-expert is medium followed by expert).
Reference returns, stored as the dataset's ref_min_score / ref_max_score: the random policy
and the noise-free trained policy on the same environment.

Episodes are stored as Minari's mujoco datasets store theirs: every episode starts from a
seeded env reset and ends with a termination (the body fell: a true terminal) or a truncation
(the 1000-step time limit, or the end of the stream: not a terminal).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import gymnasium
import numpy as np

from lfjax.data.minari_io import Episode

# Bump when the recipe changes so that datasets record which one made them.
RECIPE_VERSION = 1
DEFAULT_TRAIN_STEPS = 40_000  # ~5-15 s on a laptop-class CPU core
BEHAVIOUR_NOISE_STD = 0.1
# ARS V2-t settings: Mania et al. use similar ones for Hopper (N=8, b=4, step 0.01-0.02,
# noise 0.025-0.03). Training rollouts are cut at ARS_HORIZON steps so that a short budget
# still gives tens of updates.
ARS_DIRECTIONS = 8
ARS_TOP_DIRECTIONS = 4
ARS_STEP_SIZE = 0.02
ARS_NOISE = 0.03
ARS_HORIZON = 200
# Floor of the state std used to normalize the policy input: some joint velocities barely
# move in the first rollouts.
ARS_STD_FLOOR = 1e-2

KINDS = ("medium", "medium-replay", "medium-expert")

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclasses.dataclass(frozen=True)
class LinearPolicy:
    """a = tanh(weights (s - obs_mean) / obs_std): weights [A, S], obs_mean / obs_std [S]."""

    weights: np.ndarray
    obs_mean: np.ndarray
    obs_std: np.ndarray

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        """observation [S] -> action [A] in (-1, 1)."""
        return np.tanh(self.weights @ ((observation - self.obs_mean) / self.obs_std))

    def to_dict(self) -> dict[str, list]:
        return {k: np.asarray(v).tolist() for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass(frozen=True)
class TrainingInfo:
    """What the short ARS run did: iterations, env steps, mean training-rollout return of the
    last iteration (over its 2 * ARS_DIRECTIONS perturbed rollouts, horizon ARS_HORIZON)."""

    iterations: int
    env_steps: int
    last_rollout_return: float


def random_policy(action_dim: int) -> Policy:
    """Uniform actions in [-1, 1]^action_dim."""
    return lambda observation, rng: rng.uniform(-1.0, 1.0, action_dim)


def noisy(policy: LinearPolicy, noise_std: float) -> Policy:
    """policy's action plus N(0, noise_std^2) noise, clipped to [-1, 1]."""

    def act(observation, rng):
        action = policy(observation)
        return np.clip(action + noise_std * rng.standard_normal(action.shape), -1.0, 1.0)

    return act


def _rollout(
    env: gymnasium.Env, act: Callable[[np.ndarray], np.ndarray], seed: int, horizon: int
) -> tuple[float, np.ndarray]:
    """One episode of at most horizon steps -> (return, visited observations [T, S])."""
    observation, _ = env.reset(seed=seed)
    total, visited = 0.0, []
    for _ in range(horizon):
        visited.append(observation)
        observation, reward, terminated, truncated, _ = env.step(act(observation))
        total += float(reward)
        if terminated or truncated:
            break
    return total, np.asarray(visited)


def train_policy(
    env: gymnasium.Env,
    train_steps: int = DEFAULT_TRAIN_STEPS,
    seed: int = 0,
    progress: Callable[[int], object] | None = None,
) -> tuple[LinearPolicy, TrainingInfo]:
    """A linear policy trained with ARS V2-t until train_steps env steps are used (the last
    iteration finishes). progress(n) is called with the env steps of each iteration."""
    obs_dim = env.observation_space.shape[0]
    action_dim = env.action_space.shape[0]
    rng = np.random.default_rng(seed)
    weights = np.zeros((action_dim, obs_dim))
    mean, std = np.zeros(obs_dim), np.ones(obs_dim)
    # Running sums of every visited state: V2's normalization uses all states seen so far.
    count, total, total_sq = 0, np.zeros(obs_dim), np.zeros(obs_dim)
    steps = iterations = 0
    last = float("nan")
    while steps < train_steps:
        directions = rng.standard_normal((ARS_DIRECTIONS, action_dim, obs_dim))
        returns = np.zeros((ARS_DIRECTIONS, 2))
        iteration_steps = 0
        for k in range(ARS_DIRECTIONS):
            for j, sign in enumerate((1.0, -1.0)):
                w = weights + sign * ARS_NOISE * directions[k]
                policy = LinearPolicy(w, mean, std)
                returns[k, j], visited = _rollout(
                    env, policy, int(rng.integers(2**31)), ARS_HORIZON
                )
                count += len(visited)
                total += visited.sum(0)
                total_sq += (visited**2).sum(0)
                iteration_steps += len(visited)
        top = np.argsort(-returns.max(axis=1))[:ARS_TOP_DIRECTIONS]
        return_std = returns[top].std() + 1e-8
        weights = weights + ARS_STEP_SIZE / (ARS_TOP_DIRECTIONS * return_std) * np.einsum(
            "k,kas->as", returns[top, 0] - returns[top, 1], directions[top]
        )
        mean = total / count
        std = np.maximum(np.sqrt(np.maximum(total_sq / count - mean**2, 0.0)), ARS_STD_FLOOR)
        steps += iteration_steps
        iterations += 1
        last = float(returns.mean())
        if progress is not None:
            progress(iteration_steps)
    return LinearPolicy(weights, mean, std), TrainingInfo(iterations, steps, last)


def _random_rate(kind: str, fraction: float) -> float:
    """Probability that an action is random, at this fraction of the stream."""
    if kind == "medium":
        return 0.0
    if kind == "medium-replay":
        return 1.0 - fraction
    if kind == "medium-expert":
        return 1.0 if fraction < 0.5 else 0.0
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def collect(
    env: gymnasium.Env,
    kind: str,
    trained: LinearPolicy,
    num_steps: int,
    seed: int = 0,
    progress: Callable[[int], object] | None = None,
) -> list[Episode]:
    """num_steps env steps of kind's behaviour as episodes (module docstring).

    env must end its episodes by termination or truncation (its TimeLimit); the last episode
    is cut at num_steps and marked truncated. Actions are float32 like the env's action space.
    progress(n) is called with each episode's length.
    """
    action_dim = env.action_space.shape[0]
    rng = np.random.default_rng(seed)
    behaviours = (random_policy(action_dim), noisy(trained, BEHAVIOUR_NOISE_STD))
    episodes, steps = [], 0
    while steps < num_steps:
        # Fixed per episode, so that medium-expert's halves are whole episodes.
        random_rate = _random_rate(kind, steps / num_steps)
        reset_seed = int(rng.integers(2**31))
        observation, _ = env.reset(seed=reset_seed)
        observations, actions, rewards, terminations, truncations = [observation], [], [], [], []
        while True:
            act = behaviours[0] if rng.random() < random_rate else behaviours[1]
            action = act(observation, rng).astype(np.float32)
            observation, reward, terminated, truncated, _ = env.step(action)
            steps += 1
            truncated = truncated or steps >= num_steps
            observations.append(observation)
            actions.append(action)
            rewards.append(reward)
            terminations.append(terminated)
            truncations.append(truncated and not terminated)
            if terminated or truncated:
                break
        episodes.append(
            Episode(
                observations=np.asarray(observations),
                actions=np.asarray(actions, np.float32),
                rewards=np.asarray(rewards, np.float64),
                terminations=np.asarray(terminations, bool),
                truncations=np.asarray(truncations, bool),
                seed=reset_seed,
            )
        )
        if progress is not None:
            progress(len(actions))
    return episodes


@dataclasses.dataclass(frozen=True)
class ReferenceReturns:
    """Mean undiscounted returns over the reference episodes: random policy, trained policy
    (noise-free)."""

    random: float
    trained: float


def reference_returns(
    env: gymnasium.Env, trained: LinearPolicy, num_episodes: int, seed: int = 0
) -> ReferenceReturns:
    """Both reference returns over num_episodes full episodes each (up to the env's time
    limit); episode i is reset with seed + i for both policies."""
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be positive, got {num_episodes}")
    rng = np.random.default_rng(seed)
    uniform = random_policy(env.action_space.shape[0])
    random_returns = [
        _rollout(env, lambda o: uniform(o, rng), seed + i, 10**9)[0] for i in range(num_episodes)
    ]
    trained_returns = [_rollout(env, trained, seed + i, 10**9)[0] for i in range(num_episodes)]
    return ReferenceReturns(float(np.mean(random_returns)), float(np.mean(trained_returns)))


def episode_returns(episodes: list[Episode]) -> np.ndarray:
    """[E] undiscounted return of every stored episode."""
    return np.array([float(e.rewards.sum()) for e in episodes])
