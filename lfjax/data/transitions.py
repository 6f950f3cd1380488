"""The dataset as a pytree of device arrays, and the state statistics every network sees."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

# Floor on the per-dimension state std: a constant dimension (std 0) would otherwise divide by
# zero, and a nearly constant one would blow tiny differences up into huge normalized inputs.
STD_FLOOR = 1e-3


@struct.dataclass
class Transitions:
    """N transitions (s, a, r, s', d), all float32.

    observations [N, S], actions [N, A], rewards [N], next_observations [N, S],
    terminals [N]: 1.0 only where the environment truly terminated (time-limit truncation
    and the end of a stored stream are not terminals).
    """

    observations: jnp.ndarray
    actions: jnp.ndarray
    rewards: jnp.ndarray
    next_observations: jnp.ndarray
    terminals: jnp.ndarray

    @property
    def num_transitions(self) -> int:
        return self.rewards.shape[0]

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[-1]

    @property
    def action_dim(self) -> int:
        return self.actions.shape[-1]

    def __len__(self) -> int:
        return self.num_transitions

    def take(self, indices: jnp.ndarray) -> "Transitions":
        """Gathers rows: indices [B] (or any integer shape I) -> Transitions with leading [B]
        (resp. I). Works under jit, e.g. a minibatch from jax.random.randint indices."""
        return jax.tree_util.tree_map(lambda x: x[indices], self)

    def check(self) -> "Transitions":
        """Asserts the shapes and dtypes documented above; returns self."""
        chex.assert_rank([self.observations, self.actions, self.next_observations], 2)
        chex.assert_rank([self.rewards, self.terminals], 1)
        chex.assert_equal_shape([self.observations, self.next_observations])
        chex.assert_equal_shape_prefix(
            [self.observations, self.actions, self.rewards, self.terminals], 1
        )
        chex.assert_type(jax.tree_util.tree_leaves(self), jnp.float32)
        return self

    @classmethod
    def from_numpy(
        cls,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_observations: np.ndarray,
        terminals: np.ndarray,
    ) -> "Transitions":
        """Host arrays (any float/bool dtype) -> checked float32 device arrays."""
        as_f32 = lambda x: jnp.asarray(np.asarray(x, np.float32))
        return cls(
            observations=as_f32(observations),
            actions=as_f32(actions),
            rewards=as_f32(rewards),
            next_observations=as_f32(next_observations),
            terminals=as_f32(terminals),
        ).check()


def concatenate(parts: list[Transitions]) -> Transitions:
    """Stacks datasets along N (e.g. D4RL's medium-expert = medium + expert)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=0), *parts).check()


def split(transitions: Transitions, val_fraction: float, seed: int) -> tuple[Transitions, Transitions]:
    """Random (train, validation) split: validation gets round(val_fraction * N) rows."""
    n = transitions.num_transitions
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n))
    return transitions.take(jnp.asarray(perm[n_val:])), transitions.take(jnp.asarray(perm[:n_val]))


@struct.dataclass
class StateStats:
    """Per-dimension state statistics: mean [S], std [S] (floored at STD_FLOOR)."""

    mean: jnp.ndarray
    std: jnp.ndarray


def compute_state_stats(observations: jnp.ndarray) -> StateStats:
    """observations [N, S] -> StateStats with the mean and the unbiased (ddof=1) std over N,
    as the official code (torch's default std); std is floored at STD_FLOOR."""
    chex.assert_rank(observations, 2)
    observations = jnp.asarray(observations, jnp.float32)
    mean = jnp.mean(observations, axis=0)
    std = jnp.std(observations, axis=0, ddof=1)
    return StateStats(mean=mean, std=jnp.maximum(std, STD_FLOOR))


def normalize_states(observations: jnp.ndarray, stats: StateStats) -> jnp.ndarray:
    """observations [..., S] -> (observations - mean) / std, same shape."""
    chex.assert_axis_dimension(observations, -1, stats.mean.shape[-1])
    return (observations - stats.mean) / stats.std
