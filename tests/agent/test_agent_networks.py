"""Actor and twin-critic shapes, clips and independence."""

import jax
import jax.numpy as jnp
import numpy as np

from lfjax.agent import TanhGaussianActor, TwinCritic, sample_latents


def test_actor_shapes_and_log_std_clip():
    actor = TanhGaussianActor(latent_dim=4, hidden_dims=(16, 16))
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    params = actor.init(jax.random.PRNGKey(1), obs)
    mean, log_std = actor.apply(params, obs)
    assert mean.shape == log_std.shape == (5, 4)
    # Blow the weights up: log_std must stay in [-20, 2] whatever the net says.
    big = jax.tree.map(lambda p: 1e3 * p, params)
    _, log_std = actor.apply(big, 1e3 * obs)
    assert float(log_std.min()) >= -20.0 and float(log_std.max()) <= 2.0
    assert float(log_std.min()) == -20.0 or float(log_std.max()) == 2.0


def test_sample_latents_is_tanh_of_reparameterized_gaussian():
    mean = jnp.array([[0.3, -2.0]])
    log_std = jnp.array([[-1.0, 0.5]])
    key = jax.random.PRNGKey(3)
    eps = jax.random.normal(key, mean.shape)
    z = sample_latents(mean, log_std, key)
    np.testing.assert_allclose(z, np.tanh(mean + np.exp(log_std) * eps), rtol=1e-6)
    assert np.all(np.abs(z) < 1.0)
    g = jax.grad(lambda m: sample_latents(m, log_std, key).sum())(mean)
    assert np.all(g > 0)  # reparameterized: differentiable in the mean


def test_twin_critic_is_two_independent_mlps():
    critic = TwinCritic(hidden_dims=(16, 16))
    obs = jax.random.normal(jax.random.PRNGKey(0), (7, 3))
    act = jax.random.uniform(jax.random.PRNGKey(1), (7, 2))
    params = critic.init(jax.random.PRNGKey(2), obs, act)
    q = critic.apply(params, obs, act)
    assert q.shape == (2, 7)
    assert all(leaf.shape[0] == 2 for leaf in jax.tree.leaves(params))
    assert not np.allclose(q[0], q[1])  # different initializations
    # Critic 0 depends only on slice 0 of the parameters.
    zeroed = jax.tree.map(lambda p: p.at[1].set(0.0), params)
    np.testing.assert_allclose(critic.apply(zeroed, obs, act)[0], q[0], rtol=1e-6)
