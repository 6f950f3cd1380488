"""Actor and twin critics of latent AWAC, both built from the shared `lfjax.networks.MLP`.

The actor acts in the flow's latent space: its Gaussian lives before a tanh, so latents land in
(-1, 1)^L, the support of the flow's uniform base distribution. The critics score real actions.
"""

from typing import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from lfjax.networks import MLP


class TanhGaussianActor(nn.Module):
    """s -> (mean, log_std) of a Gaussian over pre-tanh latents.

    Attributes:
        latent_dim: L, the flow's latent width (the action dim padded to even).
        hidden_dims: hidden widths of the MLP.
        log_std_min, log_std_max: clip of log_std (a hard clip: no gradient beyond it, as
            torch's clamp in the official code).
    """

    latent_dim: int
    hidden_dims: Sequence[int]
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, observations: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """observations [B, S] (normalized) -> mean [B, L], log_std [B, L]."""
        chex.assert_rank(observations, 2)
        out = MLP(self.hidden_dims, 2 * self.latent_dim, activation="relu")(observations)
        # Same split order as the official torch.chunk: first half mean, second log_std.
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


def sample_latents(mean: jnp.ndarray, log_std: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
    """Reparameterized sample z = tanh(mean + std * eps): [B, L] each -> z [B, L] in (-1, 1).

    Differentiable in mean and log_std, so the actor loss can backpropagate through it.
    """
    chex.assert_equal_shape([mean, log_std])
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(mean + jnp.exp(log_std) * eps)


class TwinCritic(nn.Module):
    """[s, a] -> Q [num_critics, B]: independent MLPs evaluated as one vmapped ensemble.

    One module with a leading critic axis on every parameter means one batched matmul per
    layer instead of two, and one optimizer/target update over a single pytree.
    num_critics: 2 in the paper (twin critics); more is a stability option. layer_norm:
    LayerNorm before every hidden ReLU (another).
    """

    hidden_dims: Sequence[int]
    num_critics: int = 2
    layer_norm: bool = False

    @nn.compact
    def __call__(self, observations: jnp.ndarray, actions: jnp.ndarray) -> jnp.ndarray:
        """observations [B, S] (normalized), actions [B, A] -> Q-values [num_critics, B]."""
        chex.assert_rank([observations, actions], 2)
        chex.assert_equal_shape_prefix([observations, actions], 1)
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        inputs = jnp.concatenate([observations, actions], axis=-1)
        mlp = ensemble(self.hidden_dims, 1, activation="relu", layer_norm=self.layer_norm)
        return mlp(inputs)[..., 0]
