"""lfjax.flows: distrax bijectors for state-conditioned normalizing flows.

Usable on its own: nothing here imports the rest of lfjax except the shared MLP.

>>> import jax, jax.numpy as jnp
>>> from lfjax.flows import make_flow
>>> flow = make_flow(action_dim=2, state_dim=4, num_blocks=2, hidden_dims=(32, 32))
>>> actions, states = jnp.zeros((8, 2)) + 0.1 * jnp.arange(8)[:, None] / 8, jnp.ones((8, 4))
>>> params = flow.init(jax.random.PRNGKey(0), actions, states)
>>> flow.log_prob(params, actions, states).shape
(8,)
"""

from lfjax.flows.actnorm import ActNorm, init_actnorm_params
from lfjax.flows.conditional_flow import ConditionalFlow, FlowParams, make_flow
from lfjax.flows.coupling import (
    ConditionalAffineCoupling,
    CouplingConditioner,
    init_coupling_params,
)
from lfjax.flows.linear import InvertibleLinear, init_linear_params, precompute_inverse
from lfjax.flows.tanh import Atanh, Tanh

__all__ = [
    "ActNorm",
    "Atanh",
    "ConditionalAffineCoupling",
    "ConditionalFlow",
    "CouplingConditioner",
    "FlowParams",
    "InvertibleLinear",
    "Tanh",
    "init_actnorm_params",
    "init_coupling_params",
    "init_linear_params",
    "make_flow",
    "precompute_inverse",
]
