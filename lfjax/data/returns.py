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
