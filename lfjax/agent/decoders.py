"""What the actor's samples are decoded through: the frozen flow (latent AWAC), or nothing at
all, for the baselines that act in action space."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class IdentityDecoder:
    """The decoder of an agent that acts in action space: latent = action, no parameters.

    With it, `lfjax.agent`'s actor is a tanh-Gaussian over actions in (-1, 1)^A, and latent
    AWAC's losses become plain AWAC's (``--algo=awac``) or behaviour cloning's (``--algo=bc``).
    It has the frozen flow's interface (`lfjax.agent.train.LatentDecoder`, ``freeze``,
    ``sample``), so the training, acting and evaluation code is the same.
    """

    action_dim: int

    @property
    def latent_dim(self) -> int:
        return self.action_dim

    def params(self, num_seeds: int = 1) -> dict:
        """Its (empty) parameters with a leading seed axis: an array of shape [num_seeds, 0],
        so that code that vmaps over the decoder's parameters works unchanged."""
        return {"none": jnp.zeros((num_seeds, 0), jnp.float32)}

    def freeze(self, params: Any) -> Any:
        return params

    def decode(self, params: Any, latents: jax.Array, states: jax.Array) -> jax.Array:
        """latents [B, A] -> actions [B, A]: the same array."""
        return latents

    def encode(self, params: Any, actions: jax.Array, states: jax.Array) -> jax.Array:
        """actions [B, A] -> latents [B, A]: the same array."""
        return actions

    def sample(self, params: Any, key: jax.Array, states: jax.Array) -> jax.Array:
        """Uniform actions in [-1, 1]^A for states [B, S]: the random policy."""
        return jax.random.uniform(key, (states.shape[0], self.action_dim), minval=-1.0, maxval=1.0)
