"""The one MLP every lfjax network is built from (flow conditioners, actor, critics)."""

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp


class PReLU(nn.Module):
    """PyTorch's default ``nn.PReLU``: one learnable slope per layer, initialized to 0.25."""

    init_slope: float = 0.25

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        slope = self.param("slope", lambda _: jnp.asarray(self.init_slope, x.dtype))
        return jnp.where(x >= 0, x, slope * x)


class MLP(nn.Module):
    """Dense layers with an activation between them: [..., D_in] -> [..., out_dim].

    Attributes:
        hidden_dims: widths of the hidden layers (the paper: (256, 256, 256) for AWAC,
            (256, 256) for the flow conditioner).
        out_dim: width of the output layer.
        activation: "relu", "prelu" (a fresh learnable slope per hidden layer, as in the
            official PyTorch code) or any callable.
        zero_init_output: zero the output layer's kernel and bias, so that a coupling
            layer starts as the identity.
        layer_norm: LayerNorm after every hidden Dense, before the activation (the critics'
            stability option).
    """

    hidden_dims: Sequence[int]
    out_dim: int
    activation: str | Callable[[jnp.ndarray], jnp.ndarray] = "relu"
    zero_init_output: bool = False
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for width in self.hidden_dims:
            x = nn.Dense(width)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            if self.activation == "prelu":
                x = PReLU()(x)
            elif self.activation == "relu":
                x = nn.relu(x)
            else:
                x = self.activation(x)
        if self.zero_init_output:
            zeros = nn.initializers.zeros
            return nn.Dense(self.out_dim, kernel_init=zeros, bias_init=zeros)(x)
        return nn.Dense(self.out_dim)(x)
