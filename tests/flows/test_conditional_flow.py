"""The composed flow: its public contract, exact log-densities, normalization, batching."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lfjax.flows import ConditionalFlow, make_flow
from tests.flows.conftest import perturb

STATE_DIM, BATCH = 3, 16


def _data(key, action_dim, batch=BATCH):
    k1, k2 = jax.random.split(key)
    actions = jax.random.uniform(k1, (batch, action_dim), minval=-0.9, maxval=0.9)
    return actions, jax.random.normal(k2, (batch, STATE_DIM))


def _random_flow(key, action_dim, num_blocks=3):
    flow = make_flow(action_dim, STATE_DIM, num_blocks=num_blocks, hidden_dims=(16, 16))
    actions, states = _data(key, action_dim)
    params = perturb(jax.random.fold_in(key, 1), flow.init(key, actions, states), scale=0.1)
    return flow, params, actions, states


@pytest.mark.parametrize("action_dim", [2, 3, 6])
def test_shapes_and_round_trip(key, action_dim):
    flow, params, actions, states = _random_flow(key, action_dim)
    latents = flow.encode(params, actions, states)
    assert latents.shape == (BATCH, flow.latent_dim)
    assert flow.latent_dim == action_dim + action_dim % 2
    assert (jnp.abs(latents) < 1).all()
    np.testing.assert_allclose(flow.decode(params, latents, states), actions, atol=1e-4)
    np.testing.assert_allclose(flow.decode(flow.freeze(params), latents, states), actions, atol=1e-4)
    assert flow.log_prob(params, actions, states).shape == (BATCH,)
    samples = flow.sample(params, key, states)
    assert samples.shape == (BATCH, action_dim) and (jnp.abs(samples) < 1).all()


def test_log_prob_is_exact_change_of_variables(key):
    """log p(a|s) = log|det d latent / d a| - D log 2, with the Jacobian by autodiff."""
    flow, params, actions, states = _random_flow(key, 2)
    log_prob = flow.log_prob(params, actions, states)
    for i in range(4):
        encode = lambda a, i=i: flow.encode(params, a[None], states[i : i + 1])[0]
        jac = jax.jacfwd(encode)(actions[i])
        expected = jnp.linalg.slogdet(jac)[1] - 2 * jnp.log(2.0)
        np.testing.assert_allclose(log_prob[i], expected, atol=1e-3, rtol=1e-4)


def test_density_integrates_to_one(key):
    """A 2-D flow with random parameters is a normalized density over the action square."""
    flow, params, _, _ = _random_flow(key, 2, num_blocks=2)
    state = jax.random.normal(jax.random.PRNGKey(7), (1, STATE_DIM))
    # Midpoint rule in u = atanh(a): the density in u decays like the flow's tails, where
    # a grid in a would have to resolve the sharp edges near |a| = 1.
    n, bound = 600, 7.0
    u = jnp.linspace(-bound, bound, n + 1)
    u = 0.5 * (u[1:] + u[:-1])
    du = (2 * bound / n) ** 2
    grid = jnp.stack(jnp.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    a = jnp.tanh(grid)
    log_jac = jnp.sum(jnp.log1p(-a**2), -1)  # da/du
    log_p = jax.jit(flow.log_prob)(params, a, jnp.repeat(state, a.shape[0], 0))
    total = float(jnp.sum(jnp.exp(log_p + log_jac)) * du)
    assert total == pytest.approx(1.0, abs=0.02)


def test_actnorm_data_dependent_init_whitens_its_input(key):
    flow = make_flow(2, STATE_DIM, num_blocks=3, hidden_dims=(16, 16))
    actions, states = _data(key, 2, batch=256)
    params = flow.init(key, actions, states)
    # Each block starts as ActNorm -> orthogonal W -> identity coupling, so every ActNorm's
    # output on the init batch has zero mean and unit (unbiased) variance.
    x = jnp.arctanh(actions)
    for block in params["blocks"]:
        x = x * jnp.exp(block["actnorm"]["log_scale"]) + block["actnorm"]["shift"]
        np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
        np.testing.assert_allclose(x.std(0, ddof=1), 1.0, atol=1e-4)
        x = x @ block["linear"]["weight"].T


def test_bijector_works_in_distrax_transformed(key):
    flow, params, actions, states = _random_flow(key, 2)
    dist = flow.distribution(params, states)
    assert isinstance(dist, distrax.Transformed)
    np.testing.assert_allclose(dist.log_prob(actions), flow.log_prob(params, actions, states), atol=1e-4)
    assert dist.sample(seed=key).shape == (BATCH, 2)
    bij = flow.bijector(params, states)
    assert isinstance(bij, distrax.Bijector)
    np.testing.assert_allclose(bij.forward(actions), flow.encode(params, actions, states), atol=1e-6)


def test_jit_and_vmap_over_seeds_agree(key):
    flow = make_flow(2, STATE_DIM, num_blocks=2, hidden_dims=(16, 16))
    actions, states = _data(key, 2)
    keys = jax.random.split(key, 3)
    seeds = jax.vmap(lambda k: perturb(k, flow.init(k, actions, states), 0.1))(keys)
    batched = jax.jit(jax.vmap(flow.log_prob, in_axes=(0, None, None)))(seeds, actions, states)
    assert batched.shape == (3, BATCH)
    # One seed at a time through its own jitted program (eager dispatch of every op of the
    # flow would take a minute here; jit against eager is tests/flows/test_bijectors.py's).
    log_prob = jax.jit(flow.log_prob)
    for i in range(3):
        one = jax.tree_util.tree_map(lambda x: x[i], seeds)
        np.testing.assert_allclose(batched[i], log_prob(one, actions, states), atol=1e-4)
    latents = jax.jit(jax.vmap(flow.encode, in_axes=(0, None, None)))(seeds, actions, states)
    decoded = jax.jit(jax.vmap(flow.decode, in_axes=(0, 0, None)))(seeds, latents, states)
    np.testing.assert_allclose(decoded, jnp.broadcast_to(actions, decoded.shape), atol=1e-4)


def test_frozen_flow_gets_no_gradient(key):
    flow, params, actions, states = _random_flow(key, 2)
    latents = jax.random.uniform(key, actions.shape, minval=-0.5, maxval=0.5)
    grads = jax.grad(lambda p: flow.decode(flow.freeze(p), latents, states).sum())(params)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(grads))
    z_grad = jax.grad(lambda z: flow.decode(flow.freeze(params), z, states).sum())(latents)
    assert float(jnp.abs(z_grad).max()) > 0.0


def test_odd_action_dim_pads_and_drops(key):
    flow, params, actions, states = _random_flow(key, 3)
    latents = jax.random.uniform(key, (BATCH, 4), minval=-0.9, maxval=0.9)
    assert flow.decode(params, latents, states).shape == (BATCH, 3)
    assert flow.bijector(params, states).forward(jnp.pad(actions, ((0, 0), (0, 1)))).shape == (BATCH, 4)


def test_shape_mismatch_is_reported(key):
    flow, params, actions, states = _random_flow(key, 2)
    with pytest.raises(AssertionError):
        flow.log_prob(params, actions, states[:, :2])
    with pytest.raises(AssertionError):
        flow.log_prob(params, actions[:5], states)
    with pytest.raises(ValueError, match="positive"):
        make_flow(0, 3)


def test_flow_is_hashable_static_config():
    assert isinstance(make_flow(2, 4), ConditionalFlow)
    assert hash(make_flow(2, 4)) == hash(make_flow(2, 4))
