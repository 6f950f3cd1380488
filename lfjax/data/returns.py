"""Discounted Monte-Carlo returns of the dataset's own trajectories: what the behaviour policy
earned from each stored (s, a), the yardstick for the critics' mean Q.

A trajectory continues from row t to row t + 1 when t is not a terminal and the next row starts
where t ended (next_observations[t] == observations[t + 1]); it breaks anywhere else, so
episodes stored one after another, shuffled rows or a stream cut into episodes (maze2d: one
continuous stream) are all handled by the data itself. A trajectory cut without a terminal
(a time limit, the end of the data) misses its tail: its last returns are lower bounds.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


def continues(observations: np.ndarray, next_observations: np.ndarray,
              terminals: np.ndarray) -> np.ndarray:
    """[N] bool: whether row t's trajectory goes on at row t + 1 (never for the last row)."""
    observations, next_observations = np.asarray(observations), np.asarray(next_observations)
    out = np.zeros(len(observations), bool)
    out[:-1] = (np.asarray(terminals[:-1]) == 0) & np.all(
        next_observations[:-1] == observations[1:], axis=-1)
    return out


@jax.jit
def _discounted(rewards: jax.Array, terminals: jax.Array, goes_on: jax.Array, gamma: jax.Array):
    def back(following, row):
        r, d, c = row
        g = r + gamma * (1.0 - d) * jnp.where(c, following, 0.0)
        return g, g

    _, out = jax.lax.scan(back, jnp.zeros((), jnp.float32), (rewards, terminals, goes_on),
                          reverse=True)
    return out


def discounted_returns(rewards: np.ndarray, terminals: np.ndarray, goes_on: np.ndarray,
                       gamma: float) -> np.ndarray:
    """G_t = r_t + gamma (1 - d_t) G_{t+1}, with G_{t+1} = 0 where the trajectory breaks:
    rewards, terminals, goes_on [N] (`continues`) -> [N] float32."""
    return np.asarray(_discounted(jnp.asarray(rewards, jnp.float32),
                                  jnp.asarray(terminals, jnp.float32),
                                  jnp.asarray(goes_on, bool), jnp.float32(gamma)))


def mean_discounted_return(transitions, gamma: float) -> float:
    """The mean over every stored transition of its discounted Monte-Carlo return (a
    `lfjax.data.Transitions` in its stored order; raw or normalized observations alike)."""
    t = jax.device_get(transitions)
    goes_on = continues(t.observations, t.next_observations, t.terminals)
    return float(discounted_returns(t.rewards, t.terminals, goes_on, gamma).mean())


@struct.dataclass
class NStepTransitions:
    """Transitions whose TD targets look n steps ahead (`n_step_transitions`): the update's
    target is rewards + discounts * min Q'(next_observations, pi(next_observations)).

    observations [N, S], actions [N, A]: row t's (s_t, a_t), as stored.
    rewards [N]: sum_{k<K} gamma^k r_{t+k} over the K <= n steps the trajectory goes on.
    next_observations [N, S]: s_{t+K}, where the target bootstraps.
    discounts [N]: gamma^K, or 0 when a terminal came within the K steps.
    terminals [N]: all 0 (the terminals are in discounts); kept so the fields of
    `lfjax.data.Transitions` are all here.
    """

    observations: jnp.ndarray
    actions: jnp.ndarray
    rewards: jnp.ndarray
    next_observations: jnp.ndarray
    terminals: jnp.ndarray
    discounts: jnp.ndarray


def n_step_transitions(transitions, n: int, gamma: float) -> NStepTransitions:
    """n-step TD targets from the stored trajectories: a Transitions [N] -> NStepTransitions [N].

    Row t sums the rewards of rows t, t+1, ... while its trajectory goes on (`continues`), for
    at most n rows, stops after a terminal (discount 0), and bootstraps from the next
    observation of the last row it summed. n = 1 gives the one-step targets exactly. A reward
    needs about n times fewer backups to travel back along a path; the targets then follow the
    behaviour's next n - 1 actions, a bias that shrinks as n does.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    t = jax.device_get(transitions)
    rewards = np.asarray(t.rewards, np.float64)
    terminals = np.asarray(t.terminals) != 0
    goes_on = continues(t.observations, t.next_observations, t.terminals)
    rows = np.arange(len(rewards))
    last = rows.copy()  # the last row summed so far
    total = rewards.copy()
    discount = np.where(terminals, 0.0, gamma)
    active = goes_on & ~terminals  # may add the next row
    for _ in range(n - 1):
        nxt = np.minimum(last + 1, len(rewards) - 1)
        step = active & goes_on[last]
        total[step] += discount[step] * rewards[nxt[step]]
        last[step] = nxt[step]
        ended = step & terminals[nxt]
        discount[step] = np.where(ended[step], 0.0, discount[step] * gamma)
        active = step & ~ended
    as_f32 = lambda x: jnp.asarray(np.asarray(x, np.float32))
    return NStepTransitions(
        observations=transitions.observations,
        actions=transitions.actions,
        rewards=as_f32(total),
        next_observations=as_f32(np.asarray(t.next_observations)[last]),
        terminals=jnp.zeros_like(transitions.terminals),
        discounts=as_f32(discount),
    )
