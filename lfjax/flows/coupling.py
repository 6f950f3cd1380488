"""State-conditioned affine coupling layer (RealNVP with a condition, as in the CNF paper).

The state is an argument of the bijector (flowjax's idea), not baked into a rebuilt
network: one conditioner serves every state, and :class:`ConditionalAffineCoupling` is a
plain distrax bijector once a batch of states is given.
"""

from typing import Callable, Sequence

import chex
import distrax
import flax.linen as nn
import jax.numpy as jnp

from lfjax.networks import MLP

# conditioner(kept [..., D/2], condition [..., S]) -> [..., D]: (raw log-scale, shift).
Conditioner = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


class CouplingConditioner(nn.Module):
    """[kept half, condition] -> hidden -> ... -> (raw log-scale, shift), PReLU activations.

    The output layer starts at zero, so every coupling block starts as the identity.
    """

    dim: int
    hidden_dims: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, kept: jnp.ndarray, condition: jnp.ndarray) -> jnp.ndarray:
        inputs = jnp.concatenate([kept, condition], axis=-1)
        return MLP(self.hidden_dims, self.dim, activation="prelu", zero_init_output=True)(inputs)


class ConditionalAffineCoupling(distrax.Bijector):
    """Affine coupling of one half of x, given the other half and a condition.

    With (kept, other) the two halves of x [..., D] (``keep_second_half`` chooses which is
    kept), forward is
        raw, shift = conditioner(kept, condition)
        log_scale = rescale * tanh(raw)
        other' = other * exp(log_scale) + shift
    and log|det J| = sum(log_scale). ``rescale`` ([D/2], initialized to ones) bounds the
    log-scale, as in the official code.
    """

    def __init__(
        self,
        conditioner: Conditioner,
        condition: jnp.ndarray,
        rescale: jnp.ndarray,
        keep_second_half: bool,
    ):
        """condition: [..., S] (leading dims match x's); rescale: [D/2]."""
        super().__init__(event_ndims_in=1)
        chex.assert_rank(rescale, 1)
        self._conditioner = conditioner
        self.condition = condition
        self.rescale = rescale
        self.keep_second_half = keep_second_half

    def _split(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        chex.assert_axis_dimension(x, -1, 2 * self.rescale.shape[0])
        first, second = jnp.split(x, 2, axis=-1)
        return (second, first) if self.keep_second_half else (first, second)

    def _join(self, kept: jnp.ndarray, other: jnp.ndarray) -> jnp.ndarray:
        halves = (other, kept) if self.keep_second_half else (kept, other)
        return jnp.concatenate(halves, axis=-1)

    def _scale_and_shift(self, kept: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        raw_log_scale, shift = jnp.split(self._conditioner(kept, self.condition), 2, axis=-1)
        return self.rescale * jnp.tanh(raw_log_scale), shift

    def forward_and_log_det(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """x [..., D] -> (y [..., D], log_det [...])."""
        kept, other = self._split(x)
        log_scale, shift = self._scale_and_shift(kept)
        return self._join(kept, other * jnp.exp(log_scale) + shift), jnp.sum(log_scale, -1)

    def inverse_and_log_det(self, y: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """y [..., D] -> (x [..., D], log_det [...])."""
        kept, other = self._split(y)
        log_scale, shift = self._scale_and_shift(kept)
        return self._join(kept, (other - shift) * jnp.exp(-log_scale)), -jnp.sum(log_scale, -1)

    @classmethod
    def from_params(
        cls,
        params: dict,
        condition: jnp.ndarray,
        keep_second_half: bool,
        hidden_dims: Sequence[int] = (256, 256),
    ) -> "ConditionalAffineCoupling":
        """Builds the layer from params made by :func:`init_coupling_params`."""
        dim = 2 * params["rescale"].shape[-1]
        module = CouplingConditioner(dim, tuple(hidden_dims))

        def conditioner(kept, cond):
            return module.apply(params["conditioner"], kept, cond)

        return cls(conditioner, condition, params["rescale"], keep_second_half)


def init_coupling_params(
    key: chex.PRNGKey, dim: int, condition_dim: int, hidden_dims: Sequence[int] = (256, 256)
) -> dict:
    """{"conditioner": flax params of CouplingConditioner, "rescale": ones [D/2]}."""
    if dim % 2:
        raise ValueError(f"coupling needs an even dimension, got {dim}; pad the input first")
    module = CouplingConditioner(dim, tuple(hidden_dims))
    kept = jnp.zeros((1, dim // 2))
    variables = module.init(key, kept, jnp.zeros((1, condition_dim)))
    return {"conditioner": variables, "rescale": jnp.ones((dim // 2,))}

