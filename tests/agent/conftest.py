"""Test doubles for the agent tests: a dataset stand-in and a linear 'flow'.

The double decodes a = scale * z (pad dropped), which keeps hand-computed losses exact. The
real conditional flow is exercised in test_agent_with_flow.py.
"""

import dataclasses

import flax
import jax
import jax.numpy as jnp
import pytest


@flax.struct.dataclass
class Transitions:
    """Same field names as lfjax.data.Transitions."""

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_observations: jax.Array
    terminals: jax.Array


@dataclasses.dataclass(frozen=True)
class ScaleFlow:
    """decode(params, z, s) = params['scale'] * z[:, :action_dim]; a frozen stand-in for a flow."""

    action_dim: int
    latent_dim: int

    def init(self, key, actions, states):
        del key, actions, states
        return {"scale": jnp.ones(())}

    def freeze(self, params):
        return jax.lax.stop_gradient(params)

    def decode(self, params, latents, states):
        assert latents.shape[0] == states.shape[0] and latents.shape[1] == self.latent_dim
        return params["scale"] * latents[:, : self.action_dim]


@pytest.fixture(scope="session")
def scale_flow():
    return ScaleFlow(action_dim=2, latent_dim=2)


def random_transitions(key, num, obs_dim=3, action_dim=2):
    k = jax.random.split(key, 5)
    return Transitions(
        observations=jax.random.normal(k[0], (num, obs_dim)),
        actions=jax.random.uniform(k[1], (num, action_dim), minval=-1.0, maxval=1.0),
        rewards=jax.random.normal(k[2], (num,)),
        next_observations=jax.random.normal(k[3], (num, obs_dim)),
        terminals=(jax.random.uniform(k[4], (num,)) < 0.1).astype(jnp.float32),
    )


@pytest.fixture(scope="session")
def small_dataset():
    return random_transitions(jax.random.PRNGKey(0), 256)
