"""The agent on the real conditional flow (2 small blocks): no gradient reaches the flow, an
odd action dimension (latent padded) works end to end, and the policy learns on a bandit."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import Transitions

from lfjax.agent import AWACConfig, make_act, make_init, make_train, make_update_step
from lfjax.flows import make_flow

BEST = jnp.array([0.5, -0.5, 0.0])


def bandit(key, num=4096):
    """s ~ N(0, I) [2], a ~ U(-1, 1)^3, r = -|a - a*|^2, every step terminal."""
    k_obs, k_act = jax.random.split(key)
    obs = jax.random.normal(k_obs, (num, 2))
    actions = jax.random.uniform(k_act, (num, 3), minval=-1.0, maxval=1.0)
    rewards = -jnp.sum((actions - BEST) ** 2, axis=1)
    return Transitions(obs, actions, rewards, obs, jnp.ones((num,)))


def test_agent_learns_through_real_flow_and_never_moves_it():
    flow = make_flow(action_dim=3, state_dim=2, num_blocks=2, hidden_dims=(32, 32))
    assert flow.latent_dim == 4
    ds = bandit(jax.random.PRNGKey(0))
    cfg = AWACConfig(batch_size=256, hidden_dims=(64, 64), actor_lr=1e-3, critic_lr=1e-3)
    n = 2
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    flow_params = jax.jit(jax.vmap(lambda k: flow.init(k, ds.actions[:1024], ds.observations[:1024])))(keys)
    frozen = jax.jit(jax.vmap(flow.freeze))(flow_params)

    # No gradient reaches the flow: d(anything the update produces) / d(flow params) = 0,
    # through freeze and through the agent's own stop_gradient.
    state = make_init(cfg, flow, 2)(keys[0])
    step = make_update_step(cfg, flow)
    one_flow = jax.tree.map(lambda x: x[0], flow_params)

    def out(params):
        new, metrics = step(state, flow.freeze(params), ds, jax.random.PRNGKey(2))
        leaves = jax.tree.leaves(new.actor_params)
        return metrics["actor_loss"] + sum(jnp.sum(x) for x in leaves)

    grads = jax.jit(jax.grad(out))(one_flow)
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(grads))

    states = jax.vmap(make_init(cfg, flow, 2))(jax.random.split(jax.random.PRNGKey(3), n))
    states, metrics = make_train(cfg, flow)(states, frozen, ds, 250)
    assert np.all(metrics["finite"])

    act = jax.jit(jax.vmap(make_act(cfg, flow, deterministic=True)))
    obs = jnp.stack([ds.observations[:512]] * n)
    actions = act(states.actor_params, frozen, obs, jax.random.split(jax.random.PRNGKey(4), n))
    assert actions.shape == (n, 512, 3)
    scores = jnp.mean(-jnp.sum((actions - BEST) ** 2, axis=-1), axis=-1)
    # Behaviour cloning (the median action) scores -0.5, uniform actions -1.5.
    assert np.all(scores > -0.2), scores
