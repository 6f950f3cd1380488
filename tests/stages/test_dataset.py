"""The dataset stage's `normalized`: what every network trains on."""

import jax
import jax.numpy as jnp
import numpy as np

from lfjax import data
from lfjax.stages.dataset import normalized


def test_observations_and_next_observations_share_the_statistics():
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    raw = data.Transitions(
        observations=3.0 + 2.0 * jax.random.normal(k[0], (50, 4)),
        actions=jax.random.uniform(k[1], (50, 2), minval=-1.0, maxval=1.0),
        rewards=jnp.arange(50.0),
        next_observations=-1.0 + 0.5 * jax.random.normal(k[2], (50, 4)),
        terminals=jnp.zeros(50),
    )
    stats = data.StateStats(mean=jnp.array([1.0, -2.0, 0.5, 3.0]), std=jnp.array([2.0, 0.25, 1.0, 4.0]))
    out = normalized(raw, stats)
    mean, std = np.asarray(stats.mean), np.asarray(stats.std)
    np.testing.assert_allclose(out.observations, (np.asarray(raw.observations) - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(out.next_observations, (np.asarray(raw.next_observations) - mean) / std,
                               rtol=1e-6)
    for name in ("actions", "rewards", "terminals"):  # only states are normalized
        np.testing.assert_array_equal(getattr(out, name), getattr(raw, name))
