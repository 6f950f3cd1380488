"""Invertible linear layer (Glow's 1x1 convolution for vectors), plain parameterization.

We keep the official code's plain weight matrix W rather than Glow's LU factors: action
dimensions are at most 6, so slogdet is negligible in the likelihood pass, and the inverse
is only needed by the decoder of a *frozen* flow, where :func:`precompute_inverse` computes
it once for the whole agent training instead of on every call (as the official code does).
Keeping W also keeps AdamW's weight decay acting on the same parameters as the official code.
"""

import chex
import distrax
import jax
import jax.numpy as jnp


class InvertibleLinear(distrax.Bijector):
    """y = W x; acts on events of shape [D].

    Optionally takes W^-1 and log|det W| precomputed (see :func:`precompute_inverse`), so
    that repeated inverse calls do no matrix factorization.
    """

    def __init__(
        self,
        weight: jnp.ndarray,
        weight_inverse: jnp.ndarray | None = None,
        log_abs_det: jnp.ndarray | None = None,
    ):
        """weight: [D, D]; weight_inverse: [D, D] or None; log_abs_det: [] or None."""
        super().__init__(event_ndims_in=1, is_constant_jacobian=True)
        chex.assert_rank(weight, 2)
        chex.assert_axis_dimension(weight, 0, weight.shape[1])
        self.weight = weight
        self._weight_inverse = weight_inverse
        self._log_abs_det = log_abs_det

    @property
    def log_abs_det(self) -> jnp.ndarray:
        if self._log_abs_det is not None:
            return self._log_abs_det
        return jnp.linalg.slogdet(self.weight)[1]

    @property
    def weight_inverse(self) -> jnp.ndarray:
        if self._weight_inverse is not None:
            return self._weight_inverse
        return jnp.linalg.inv(self.weight)

    def forward_and_log_det(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """x [..., D] -> (y [..., D], log_det [...])."""
        y = x @ self.weight.T
        return y, jnp.broadcast_to(self.log_abs_det, x.shape[:-1])

    def inverse_and_log_det(self, y: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """y [..., D] -> (x [..., D], log_det [...])."""
        x = y @ self.weight_inverse.T
        return x, jnp.broadcast_to(-self.log_abs_det, y.shape[:-1])

    @classmethod
    def from_params(cls, params: dict) -> "InvertibleLinear":
        return cls(params["weight"], params.get("weight_inverse"), params.get("log_abs_det"))


def init_linear_params(key: chex.PRNGKey, dim: int) -> dict:
    """A random orthogonal W (QR of a Gaussian matrix, as the official code). {"weight": [D, D]}."""
    q, _ = jnp.linalg.qr(jax.random.normal(key, (dim, dim)))
    return {"weight": q}


def precompute_inverse(params: dict) -> dict:
    """Adds W^-1 and log|det W| to a layer's params, for a flow that will no longer change."""
    weight = params["weight"]
    return {
        **params,
        "weight_inverse": jnp.linalg.inv(weight),
        "log_abs_det": jnp.linalg.slogdet(weight)[1],
    }
