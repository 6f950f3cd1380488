"""Clamped tanh and atanh: the squashing ends of the conditional flow.

Both clamp to ``±(1 - eps)`` like the official code, so that saturated dataset actions
(about half the maze2d rows hit ±1 in some dimension) keep finite log-dets, and so that
the decoder gives the actor no gradient beyond the clamp (SPEC.md 2).
"""

import distrax
import jax.numpy as jnp

DEFAULT_EPS = 1e-5


class Tanh(distrax.Bijector):
    """y = clip(tanh(x), ±(1 - eps)) elementwise; acts on events of shape [D].

    forward: R^D -> (-1, 1)^D with log|det J| = sum log(1 - y^2) over the event;
    inverse: clamps y first, then atanh.
    """

    def __init__(self, eps: float = DEFAULT_EPS):
        super().__init__(event_ndims_in=1)
        self.eps = eps

    def _clip(self, y: jnp.ndarray) -> jnp.ndarray:
        return jnp.clip(y, -1.0 + self.eps, 1.0 - self.eps)

    def forward_and_log_det(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """x [..., D] -> (y [..., D], log_det [...])."""
        y = self._clip(jnp.tanh(x))
        return y, jnp.sum(jnp.log1p(-jnp.square(y)), axis=-1)

    def inverse_and_log_det(self, y: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """y [..., D] -> (x [..., D], log_det [...])."""
        y = self._clip(y)
        return jnp.arctanh(y), -jnp.sum(jnp.log1p(-jnp.square(y)), axis=-1)

    def same_as(self, other: distrax.Bijector) -> bool:
        return type(other) is Tanh and other.eps == self.eps


class Atanh(distrax.Inverse):
    """x = atanh(clip(a, ±(1 - eps))): (-1, 1)^D -> R^D, the flow's first layer."""

    def __init__(self, eps: float = DEFAULT_EPS):
        super().__init__(Tanh(eps))
        self.eps = eps
