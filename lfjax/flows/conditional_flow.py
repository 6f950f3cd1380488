"""The conditional flow p(a | s) of the CNF paper, composed from lfjax's bijectors.

Forward (action -> latent): atanh, then K blocks of [ActNorm, InvertibleLinear,
ConditionalAffineCoupling], then tanh, over a Uniform(-1, 1)^D base. The inverse
(latent -> action) is the decoder the agent acts through.

A :class:`ConditionalFlow` is static configuration (hashable, safe to close over in jit);
its parameters are a plain pytree, so they can be vmapped over a leading seed axis,
optimized with optax and saved with orbax.
"""

import dataclasses
import math
from typing import Sequence

import chex
import distrax
import jax
import jax.numpy as jnp

from lfjax.flows.actnorm import ActNorm, init_actnorm_params
from lfjax.flows.coupling import ConditionalAffineCoupling, init_coupling_params
from lfjax.flows.linear import InvertibleLinear, init_linear_params, precompute_inverse
from lfjax.flows.tanh import DEFAULT_EPS, Atanh, Tanh

FlowParams = dict


@dataclasses.dataclass(frozen=True)
class ConditionalFlow:
    """A state-conditioned normalizing flow over actions in (-1, 1)^A.

    Odd action dimensions are padded with a zero column (SPEC.md 1), so the flow, its
    bijector and its latents live in ``latent_dim`` = A rounded up to even; ``encode``
    and ``log_prob`` take [..., A] actions, ``decode`` and ``sample`` return [..., A].
    """

    action_dim: int
    state_dim: int
    num_blocks: int = 12
    hidden_dims: tuple[int, ...] = (256, 256)
    eps: float = DEFAULT_EPS

    @property
    def latent_dim(self) -> int:
        return self.action_dim + self.action_dim % 2

    # ----- construction -------------------------------------------------------------

    def _block_bijectors(self, block: dict, index: int, states: jnp.ndarray) -> list:
        """One block's layers in forward order."""
        return [
            ActNorm.from_params(block["actnorm"]),
            InvertibleLinear.from_params(block["linear"]),
            # Which half is kept alternates; block 0 keeps the second half (official code).
            ConditionalAffineCoupling.from_params(
                block["coupling"], states, index % 2 == 0, self.hidden_dims
            ),
        ]

    def bijector(self, params: FlowParams, states: jnp.ndarray) -> distrax.Bijector:
        """The flow for a batch of states as a distrax bijector, padded action -> latent.

        states: [..., S]. The bijector maps [..., latent_dim] -> [..., latent_dim]; put it
        in ``distrax.Chain`` or invert it for ``distrax.Transformed`` (see
        :meth:`distribution`).
        """
        chex.assert_axis_dimension(states, -1, self.state_dim)
        layers = [Atanh(self.eps)]
        for index, block in enumerate(params["blocks"]):
            layers += self._block_bijectors(block, index, states)
        layers.append(Tanh(self.eps))
        # distrax.Chain applies its last element first.
        return distrax.Chain(layers[::-1])

    def base_distribution(self, batch_shape: Sequence[int] = ()) -> distrax.Distribution:
        """Uniform(-1, 1)^latent_dim with the given batch shape."""
        shape = (*batch_shape, self.latent_dim)
        return distrax.Independent(distrax.Uniform(-jnp.ones(shape), jnp.ones(shape)), 1)

    def distribution(self, params: FlowParams, states: jnp.ndarray) -> distrax.Distribution:
        """p(padded action | s) as a ``distrax.Transformed``: batch shape states.shape[:-1]."""
        return distrax.Transformed(
            self.base_distribution(states.shape[:-1]),
            distrax.Inverse(self.bijector(params, states)),
        )

    # ----- parameters ---------------------------------------------------------------

    def init(self, key: chex.PRNGKey, actions: jnp.ndarray, states: jnp.ndarray) -> FlowParams:
        """Random parameters, with every ActNorm initialized from this batch.

        actions: [B, A]; states: [B, S]. As in the official code, the data-dependent
        initialization runs layer by layer in forward order, each ActNorm set from its own
        input (the earlier layers already initialized), so each starts by whitening it.
        """
        self._check(actions, states, self.action_dim)
        chex.assert_rank(actions, 2)
        x, _ = Atanh(self.eps).forward_and_log_det(self._pad(actions))
        blocks = []
        for index, block_key in enumerate(jax.random.split(key, self.num_blocks)):
            linear_key, coupling_key = jax.random.split(block_key)
            block = {
                "actnorm": init_actnorm_params(x),
                "linear": init_linear_params(linear_key, self.latent_dim),
                "coupling": init_coupling_params(
                    coupling_key, self.latent_dim, self.state_dim, self.hidden_dims
                ),
            }
            for layer in self._block_bijectors(block, index, states):
                x = layer.forward(x)
            blocks.append(block)
        return {"blocks": blocks}

    def freeze(self, params: FlowParams) -> FlowParams:
        """Parameters of a flow that will not be trained further.

        Stops gradients to every parameter and precomputes each linear layer's inverse and
        log-determinant, so decoding does no matrix factorization. Call it once, outside the
        training loop, and decode with the result.
        """
        params = jax.tree_util.tree_map(jax.lax.stop_gradient, params)
        blocks = [{**b, "linear": precompute_inverse(b["linear"])} for b in params["blocks"]]
        return {**params, "blocks": blocks}

    # ----- density and codec ----------------------------------------------------------

    def log_prob(self, params: FlowParams, actions: jnp.ndarray, states: jnp.ndarray) -> jnp.ndarray:
        """log p(a | s): actions [..., A], states [..., S] -> [...].

        For an odd A the density is over the padded action, pad included (as the official
        code trains it).
        """
        self._check(actions, states, self.action_dim)
        _, log_det = self.bijector(params, states).forward_and_log_det(self._pad(actions))
        # The base is Uniform(-1, 1)^D: log density -D log 2 everywhere inside.
        return log_det - self.latent_dim * math.log(2.0)

    def encode(self, params: FlowParams, actions: jnp.ndarray, states: jnp.ndarray) -> jnp.ndarray:
        """actions [..., A], states [..., S] -> latents [..., latent_dim] in (-1, 1)."""
        self._check(actions, states, self.action_dim)
        return self.bijector(params, states).forward(self._pad(actions))

    def decode(self, params: FlowParams, latents: jnp.ndarray, states: jnp.ndarray) -> jnp.ndarray:
        """latents [..., latent_dim], states [..., S] -> actions [..., A] in (-1, 1).

        Latents are clamped to ±(1 - eps) first; beyond the clamp there is no gradient.
        """
        self._check(latents, states, self.latent_dim)
        actions = self.bijector(params, states).inverse(latents)
        return actions[..., : self.action_dim]

    def sample(self, params: FlowParams, key: chex.PRNGKey, states: jnp.ndarray) -> jnp.ndarray:
        """One action per state: states [..., S] -> actions [..., A]."""
        shape = (*states.shape[:-1], self.latent_dim)
        latents = jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
        return self.decode(params, latents, states)

    # ----- helpers ----------------------------------------------------------------------

    def _pad(self, actions: jnp.ndarray) -> jnp.ndarray:
        if self.latent_dim == self.action_dim:
            return actions
        return jnp.concatenate([actions, jnp.zeros_like(actions[..., :1])], axis=-1)

    def _check(self, x: jnp.ndarray, states: jnp.ndarray, dim: int) -> None:
        chex.assert_axis_dimension(x, -1, dim)
        chex.assert_axis_dimension(states, -1, self.state_dim)
        chex.assert_equal_shape_prefix([x, states], x.ndim - 1)


def make_flow(
    action_dim: int,
    state_dim: int,
    num_blocks: int = 12,
    hidden_dims: Sequence[int] = (256, 256),
    eps: float = DEFAULT_EPS,
) -> ConditionalFlow:
    """The paper's flow: 12 blocks, conditioner [kept half, state] -> 256 -> 256."""
    if action_dim < 1 or state_dim < 1 or num_blocks < 1:
        raise ValueError(
            f"make_flow needs positive sizes, got action_dim={action_dim}, "
            f"state_dim={state_dim}, num_blocks={num_blocks}"
        )
    return ConditionalFlow(action_dim, state_dim, num_blocks, tuple(hidden_dims), eps)
