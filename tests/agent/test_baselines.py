"""The baselines in the same code: the identity decoder (AWAC in action space) and behaviour
cloning (weights 1, no critics)."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import Transitions

from lfjax.agent import (
    AWACConfig,
    IdentityDecoder,
    TanhGaussianActor,
    make_act,
    make_init,
    make_train,
    make_update_step,
    sample_latents,
)

CFG = AWACConfig(batch_size=64, hidden_dims=(32, 32), actor_lr=3e-3)


def test_identity_decoder_decodes_to_the_latent_itself():
    decoder = IdentityDecoder(3)
    assert decoder.latent_dim == 3  # no padding: the actor acts on the actions themselves
    params = decoder.params(4)
    assert jax.tree.leaves(params)[0].shape == (4, 0)
    z = jnp.array([[0.1, -0.5, 0.99]])
    np.testing.assert_array_equal(decoder.decode(decoder.freeze(params), z, jnp.zeros((1, 5))), z)
    sample = decoder.sample(params, jax.random.PRNGKey(0), jnp.zeros((500, 5)))
    assert sample.shape == (500, 3) and np.all(np.abs(sample) <= 1.0) and sample.std() > 0.5


def test_bc_update_is_the_unweighted_l1_and_trains_no_critics():
    decoder = IdentityDecoder(2)
    ds = Transitions(
        observations=jax.random.normal(jax.random.PRNGKey(1), (50, 3)),
        actions=jax.random.uniform(jax.random.PRNGKey(2), (50, 2), minval=-1.0, maxval=1.0),
        rewards=jnp.zeros(50), next_observations=jnp.zeros((50, 3)), terminals=jnp.zeros(50),
    )
    state = make_init(CFG, decoder, 3, behaviour_cloning=True)(jax.random.PRNGKey(0))
    assert state.critic_params is None and state.target_critic_params is None
    key = jax.random.PRNGKey(7)
    step = jax.jit(make_update_step(CFG, decoder, behaviour_cloning=True))
    new, metrics = step(state, decoder.params(1)["none"][0], ds, key)
    assert set(metrics) == {"actor_loss", "finite"} and bool(metrics["finite"])
    # By hand: the same batch and sample as AWAC's update would draw, every weight 1.
    batch_key, _, actor_key = jax.random.split(key, 3)
    idx = jax.random.randint(batch_key, (CFG.batch_size,), 0, 50)
    actor = TanhGaussianActor(latent_dim=2, hidden_dims=CFG.hidden_dims)
    mean, log_std = actor.apply(state.actor_params, ds.observations[idx])
    expected = jnp.mean(jnp.abs(sample_latents(mean, log_std, actor_key) - ds.actions[idx]))
    np.testing.assert_allclose(metrics["actor_loss"], expected, rtol=1e-6)
    assert new.critic_params is None and int(new.step) == 1


def test_bc_imitates_a_deterministic_behaviour_policy():
    """Actions that are a fixed function of the state: cloning must recover it."""
    obs = jax.random.normal(jax.random.PRNGKey(3), (2000, 3))
    actions = jnp.tanh(obs[:, :2] * jnp.array([0.8, -0.6]))
    ds = Transitions(obs, actions, jnp.zeros(2000), obs, jnp.zeros(2000))
    decoder = IdentityDecoder(2)
    states = jax.vmap(make_init(CFG, decoder, 3, behaviour_cloning=True))(
        jax.random.split(jax.random.PRNGKey(4), 2))
    act = jax.jit(jax.vmap(make_act(CFG, decoder, deterministic=True), in_axes=(0, 0, None, None)))
    params = decoder.params(2)
    before = np.abs(act(states.actor_params, params, obs[:200], None) - actions[:200]).mean()
    states, metrics = make_train(CFG, decoder, behaviour_cloning=True)(states, params, ds, 1500)
    after = np.abs(act(states.actor_params, params, obs[:200], None) - actions[:200]).mean()
    assert after < 0.06 and after < before / 4, (before, after)
    assert metrics["actor_loss"].shape == (2, 1500)


def test_awac_in_action_space_is_latent_awac_with_the_identity():
    """Same init and update as latent AWAC; the actor's latent is the action."""
    decoder = IdentityDecoder(2)
    ds = Transitions(
        observations=jax.random.normal(jax.random.PRNGKey(5), (64, 3)),
        actions=jax.random.uniform(jax.random.PRNGKey(6), (64, 2), minval=-1.0, maxval=1.0),
        rewards=jnp.ones(64), next_observations=jax.random.normal(jax.random.PRNGKey(8), (64, 3)),
        terminals=jnp.zeros(64),
    )
    state = make_init(CFG, decoder, 3)(jax.random.PRNGKey(0))
    new, metrics = jax.jit(make_update_step(CFG, decoder))(
        state, decoder.params(1)["none"][0], ds, jax.random.PRNGKey(9))
    assert {"critic_loss", "actor_loss", "q_mean", "weight_mean"} <= set(metrics)
    assert bool(metrics["finite"]) and new.critic_params is not None
