"""ActNorm (Glow): a per-dimension affine layer with data-dependent initialization."""

import chex
import distrax
import jax.numpy as jnp

# The official code's guard against constant dimensions (e.g. hopper's zero pad column).
STD_EPS = 1e-6


class ActNorm(distrax.Bijector):
    """y = x * exp(log_scale) + shift, per dimension; acts on events of shape [D].

    This is the official code's parameterization; it equals the paper's
    (x + b) * exp(log_s) with shift = b * exp(log_s).
    """

    def __init__(self, log_scale: jnp.ndarray, shift: jnp.ndarray):
        """log_scale, shift: [D]."""
        super().__init__(event_ndims_in=1, is_constant_jacobian=True)
        chex.assert_equal_shape([log_scale, shift])
        chex.assert_rank(log_scale, 1)
        self.log_scale = log_scale
        self.shift = shift

    def _log_det(self, x: jnp.ndarray) -> jnp.ndarray:
        return jnp.broadcast_to(jnp.sum(self.log_scale), x.shape[:-1])

    def forward_and_log_det(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """x [..., D] -> (y [..., D], log_det [...])."""
        return x * jnp.exp(self.log_scale) + self.shift, self._log_det(x)

    def inverse_and_log_det(self, y: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """y [..., D] -> (x [..., D], log_det [...])."""
        return (y - self.shift) * jnp.exp(-self.log_scale), -self._log_det(y)

    @classmethod
    def from_params(cls, params: dict) -> "ActNorm":
        return cls(params["log_scale"], params["shift"])


def init_actnorm_params(x: jnp.ndarray) -> dict:
    """Data-dependent init from a batch x [B, D] of this layer's inputs.

    Sets the layer so that its output on x has zero mean and (unbiased) unit variance per
    dimension: log_scale = -log(std + 1e-6), shift = -mean * exp(log_scale).
    Returns {"log_scale": [D], "shift": [D]}.
    """
    chex.assert_rank(x, 2)
    mean = jnp.mean(x, axis=0)
    log_scale = -jnp.log(jnp.std(x, axis=0, ddof=1) + STD_EPS)
    return {"log_scale": log_scale, "shift": -mean * jnp.exp(log_scale)}
