"""update_step order and math, seeds as a leading axis, determinism, learning signal.

Uses the ScaleFlow double from conftest.py (decode = scale * z); the real flow is in
test_agent_with_flow.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import ScaleFlow, Transitions

from lfjax.agent import (
    AWACConfig,
    IdentityDecoder,
    TanhGaussianActor,
    TwinCritic,
    make_act,
    make_init,
    make_train,
    make_update_step,
)

SMALL = AWACConfig(batch_size=32, hidden_dims=(16, 16))
STEPS = 3  # one chunk length for every test below: each new length compiles anew


@pytest.fixture(scope="module")
def train(scale_flow, small_dataset):
    train_chunk = make_train(SMALL, scale_flow)
    return lambda states, flow_params, n: train_chunk(states, flow_params, small_dataset, n)


@pytest.fixture(scope="module")
def init(scale_flow):
    return jax.jit(jax.vmap(make_init(SMALL, scale_flow, 3)))


def _close(a, b, **kw):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **kw), a, b)


def test_update_step_order_critic_then_actor_with_new_critics_then_target():
    # One transition repeated: the batch is known. log_std pinned at -20: z = tanh(mean).
    cfg = AWACConfig(
        batch_size=4, hidden_dims=(8, 8), critic_lr=0.05, tau=0.1,
        log_std_min=-20.0, log_std_max=-20.0,
    )
    flow = ScaleFlow(action_dim=2, latent_dim=2)
    flow_params = {"scale": jnp.asarray(0.5)}
    ds = Transitions(
        observations=jnp.array([[0.5, -1.0, 2.0]]),
        actions=jnp.array([[0.9, -0.2]]),
        rewards=jnp.array([1.5]),
        next_observations=jnp.array([[1.0, 0.0, -1.0]]),
        terminals=jnp.array([0.0]),
    )
    state = make_init(cfg, flow, obs_dim=3)(jax.random.PRNGKey(0))
    new, metrics = jax.jit(make_update_step(cfg, flow))(state, flow_params, ds, jax.random.PRNGKey(1))

    actor = TanhGaussianActor(2, (8, 8), -20.0, -20.0)
    critic = TwinCritic((8, 8))
    s, a, s2 = (jnp.repeat(x, 4, axis=0) for x in (ds.observations, ds.actions, ds.next_observations))

    def policy(params, obs):  # decode(tanh(mean)) through the double
        return 0.5 * jnp.tanh(actor.apply(params, obs)[0])

    # 1. Critics: y from the min of the *target* critics at (s', pi(s')).
    y = 1.5 + 0.99 * jnp.min(critic.apply(state.target_critic_params, s2, policy(state.actor_params, s2)), 0)
    critic_loss, g = jax.value_and_grad(
        lambda p: jnp.sum(jnp.mean((critic.apply(p, s, a) - y) ** 2, axis=1))
    )(state.critic_params)
    upd, _ = optax.adam(0.05).update(g, optax.adam(0.05).init(state.critic_params))
    _close(new.critic_params, optax.apply_updates(state.critic_params, upd), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["critic_loss"], critic_loss, rtol=1e-5)

    # 2. Actor: weights from the *updated* critics, L1 through the decoder.
    def weight(critic_params):
        q = jnp.min(critic.apply(critic_params, s, a), 0)
        v = jnp.min(critic.apply(critic_params, s, policy(state.actor_params, s)), 0)
        return jnp.minimum(jnp.exp(3.0 * (q - v)), 100.0)

    w_new, w_old = weight(new.critic_params), weight(state.critic_params)
    assert not np.allclose(w_new, w_old, rtol=1e-3)  # the test can tell them apart
    np.testing.assert_allclose(metrics["weight_mean"], w_new.mean(), rtol=1e-4)
    actor_loss, g = jax.value_and_grad(
        lambda p: jnp.mean(w_new[:, None] * jnp.abs(policy(p, s) - a))
    )(state.actor_params)
    np.testing.assert_allclose(metrics["actor_loss"], actor_loss, rtol=1e-4)
    upd, _ = optax.adam(3e-4).update(g, optax.adam(3e-4).init(state.actor_params))
    _close(new.actor_params, optax.apply_updates(state.actor_params, upd), rtol=1e-4, atol=1e-7)

    # 3. Targets: Polyak step towards the critics after their update.
    expected = jax.tree.map(lambda t, c: 0.9 * t + 0.1 * c, state.target_critic_params, new.critic_params)
    _close(new.target_critic_params, expected, rtol=1e-5, atol=1e-7)
    assert int(new.step) == 1 and bool(metrics["finite"])


def test_td_target_bootstraps_from_the_target_critics_at_the_next_state():
    """y = r + gamma (1 - d) min(Q1', Q2')(s', decode(z', s')), by hand, with target critics
    that differ from the online ones (a fresh state's are equal, so a target computed from the
    online critics would pass), gamma = 0.99, and one non-terminal and one terminal transition."""
    cfg = AWACConfig(batch_size=4, hidden_dims=(8, 8), log_std_min=-20.0, log_std_max=-20.0)
    assert cfg.gamma == 0.99
    flow = ScaleFlow(action_dim=2, latent_dim=2)
    flow_params = {"scale": jnp.asarray(0.5)}
    actor = TanhGaussianActor(2, (8, 8), -20.0, -20.0)
    critic = TwinCritic((8, 8))
    state = make_init(cfg, flow, obs_dim=3)(jax.random.PRNGKey(0))
    leaves, treedef = jax.tree.flatten(state.critic_params)
    keys = jax.random.split(jax.random.PRNGKey(7), len(leaves))
    perturbed = jax.tree.unflatten(
        treedef, [x + 0.5 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    )
    state = state.replace(target_critic_params=perturbed)
    step = jax.jit(make_update_step(cfg, flow))

    def policy(params, obs):  # decode(tanh(mean)) through the double: log_std is pinned at -20
        return 0.5 * jnp.tanh(actor.apply(params, obs)[0])

    obs, action, next_obs = jnp.array([[0.5, -1.0, 2.0]]), jnp.array([[0.9, -0.2]]), jnp.array([[1.0, 0.0, -1.0]])
    s, a, s2 = (jnp.repeat(x, 4, axis=0) for x in (obs, action, next_obs))
    q_data = critic.apply(state.critic_params, s, a)  # [2, B]: the online critics at (s, a)

    def loss_for(y):
        return float(jnp.sum(jnp.mean((q_data - y) ** 2, axis=1)))

    for done in (0.0, 1.0):
        ds = Transitions(obs, action, jnp.array([1.5]), next_obs, jnp.array([done]))
        _, metrics = step(state, flow_params, ds, jax.random.PRNGKey(1))
        next_q = critic.apply(perturbed, s2, policy(state.actor_params, s2))  # [2, B]
        y = 1.5 + 0.99 * (1.0 - done) * jnp.min(next_q, axis=0)
        np.testing.assert_allclose(metrics["critic_loss"], loss_for(y), rtol=1e-5)
        # What a wrong target would give, each far from the right one: so the check above
        # tells them apart.
        online_q = critic.apply(state.critic_params, s2, policy(state.actor_params, s2))
        wrong = {
            "bootstraps through a terminal": 1.5 + 0.99 * jnp.min(next_q, axis=0),
            "online critics": 1.5 + 0.99 * (1.0 - done) * jnp.min(online_q, axis=0),
            "max of the critics": 1.5 + 0.99 * (1.0 - done) * jnp.max(next_q, axis=0),
            "policy at s, not s'": 1.5 + 0.99 * (1.0 - done) * jnp.min(
                critic.apply(perturbed, s2, policy(state.actor_params, s)), axis=0),
        }
        for name, wrong_y in wrong.items():
            if (name == "bootstraps through a terminal") != (done == 1.0):
                continue  # the same target as the right one for this transition
            assert abs(loss_for(wrong_y) - loss_for(y)) > 1e-2 * loss_for(y), name


def test_no_gradient_reaches_flow_params(scale_flow, small_dataset):
    state = make_init(SMALL, scale_flow, 3)(jax.random.PRNGKey(0))
    step = make_update_step(SMALL, scale_flow)

    def out(flow_params):
        new, metrics = step(state, flow_params, small_dataset, jax.random.PRNGKey(1))
        return sum(jnp.sum(x) for x in jax.tree.leaves(new.actor_params)) + metrics["actor_loss"]

    g = jax.jit(jax.grad(out))({"scale": jnp.asarray(0.7)})
    assert float(g["scale"]) == 0.0


def test_seed_axis_shapes_and_metrics(train, init):
    n = 2
    states = init(jax.random.split(jax.random.PRNGKey(0), n))
    flow_params = {"scale": jnp.ones((n,))}
    states, metrics = train(states, flow_params, STEPS)
    assert set(metrics) == {
        "critic_loss", "actor_loss", "q_mean", "weight_mean", "weight_clipped_frac", "tau", "finite",
    }
    assert all(v.shape == (n, STEPS) for v in metrics.values())
    assert np.all(metrics["finite"])
    assert all(leaf.shape[0] == n for leaf in jax.tree.leaves(states))
    np.testing.assert_array_equal(states.step, [STEPS] * n)
    # A NaN in one seed's parameters shows up in that seed's flag only.
    bad = states.replace(actor_params=jax.tree.map(lambda p: p.at[1].set(jnp.nan), states.actor_params))
    _, metrics = train(bad, flow_params, STEPS)
    np.testing.assert_array_equal(metrics["finite"][:, 0], [True, False])


def test_vmap_over_seeds_equals_each_seed_alone(train, init):
    states = init(jax.random.split(jax.random.PRNGKey(0), 2))
    # Different flows per seed: each seed must decode with its own.
    flow_params = {"scale": jnp.array([1.0, 0.6])}
    both, m_both = train(states, flow_params, STEPS)
    for i in range(2):
        one = jax.tree.map(lambda x: x[i : i + 1], (states, flow_params))
        alone, m_alone = train(*one, STEPS)
        _close(jax.tree.map(lambda x: x[i], both), jax.tree.map(lambda x: x[0], alone), rtol=1e-4, atol=1e-6)
        _close(jax.tree.map(lambda x: x[i], m_both), jax.tree.map(lambda x: x[0], m_alone), rtol=1e-4, atol=1e-6)


def test_deterministic_given_keys_and_chunks_continue(train, init):
    flow_params = {"scale": jnp.ones((2,))}
    states = init(jax.random.split(jax.random.PRNGKey(0), 2))
    a, _ = train(states, flow_params, STEPS)
    b, _ = train(states, flow_params, STEPS)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    c, _ = train(a, flow_params, STEPS)  # continues from a's rng, a different stream
    assert not np.allclose(c.actor_params["params"]["MLP_0"]["Dense_0"]["kernel"],
                           a.actor_params["params"]["MLP_0"]["Dense_0"]["kernel"])
    np.testing.assert_array_equal(c.step, [2 * STEPS] * 2)
    other = init(jax.random.split(jax.random.PRNGKey(1), 2))
    d, _ = train(other, flow_params, STEPS)
    assert not np.allclose(d.critic_params["params"]["VmapMLP_0"]["Dense_0"]["kernel"],
                           a.critic_params["params"]["VmapMLP_0"]["Dense_0"]["kernel"])


def test_act_decodes_and_clips(init, scale_flow, small_dataset):
    params = init(jax.random.split(jax.random.PRNGKey(0), 2)).actor_params
    act = jax.jit(jax.vmap(make_act(SMALL, scale_flow)))
    obs = jnp.stack([small_dataset.observations[:10]] * 2)
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    actions = act(params, {"scale": jnp.array([1.0, 50.0])}, obs, keys)
    assert actions.shape == (2, 10, 2)
    assert np.all(np.abs(actions[0]) < 1.0)
    assert np.all(np.abs(actions) <= 1.0) and np.any(np.abs(actions[1]) == 1.0)


def _two_step_chain(key, num=2048, best=0.6):
    """A two-step chain where behaviour cloning cannot succeed. From s0 = (1, 0) the action a
    moves to s1 = (0, a) with reward 0 (not terminal); from s1 any action ends the episode
    with reward -2 (a - best)^2. So Q(s0, a) = gamma * R(a) is learnt only by bootstrapping
    through the target critics, and the best first action is `best`. 80 % of the dataset's
    first actions are bad (around -0.6), 20 % uniform: cloning them gives about -0.57."""
    k = jax.random.split(key, 4)
    bad = jnp.clip(-0.6 + 0.1 * jax.random.normal(k[0], (num,)), -1.0, 1.0)
    anywhere = jax.random.uniform(k[1], (num,), minval=-1.0, maxval=1.0)
    first = jnp.where(jax.random.uniform(k[2], (num,)) < 0.8, bad, anywhere)[:, None]
    second = jax.random.uniform(k[3], (num, 1), minval=-1.0, maxval=1.0)
    s0 = jnp.tile(jnp.array([[1.0, 0.0]]), (num, 1))
    s1 = jnp.concatenate([jnp.zeros((num, 1)), first], axis=1)
    reward = lambda a: -2.0 * (a - best) ** 2
    data = Transitions(
        observations=jnp.concatenate([s0, s1]),
        actions=jnp.concatenate([first, second]),
        rewards=jnp.concatenate([jnp.zeros(num), reward(first[:, 0])]),
        next_observations=jnp.concatenate([s1, s1]),
        terminals=jnp.concatenate([jnp.zeros(num), jnp.ones(num)]),
    )
    return data, reward


def test_awac_beats_behaviour_cloning_where_cloning_fails():
    """On the two-step chain, AWAC's first action reaches the optimum while the behaviour
    cloning baseline (the same actor and batches, every weight 1) copies the bad data. Only
    advantage weights that favour the better actions, learnt by bootstrapping, can do that:
    weights all 1, or exp(-(q - v) / lambda), fail here."""
    data, reward = _two_step_chain(jax.random.PRNGKey(0))
    # A tiny network and a fast target (tau 0.05) so that the reward reaches s0 within a few
    # hundred updates; gamma, lambda and the weight clip are the paper's.
    cfg = AWACConfig(batch_size=128, hidden_dims=(32, 32), actor_lr=1e-3, critic_lr=1e-3, tau=0.05)
    decoder = IdentityDecoder(action_dim=1)
    keys = jax.random.split(jax.random.PRNGKey(1), 2)  # two seeds
    act = make_act(cfg, decoder, deterministic=True)
    first_state = jnp.array([[1.0, 0.0]])
    first_action = {}
    for name, bc in (("awac", False), ("bc", True)):
        states = jax.vmap(make_init(cfg, decoder, 2, behaviour_cloning=bc))(keys)
        states, metrics = make_train(cfg, decoder, behaviour_cloning=bc)(states, decoder.params(2), data, 300)
        assert np.all(metrics["finite"])
        first_action[name] = np.array([
            act(jax.tree.map(lambda x: x[i], states.actor_params), {}, first_state, None)[0, 0]
            for i in range(2)
        ])
    awac, bc = reward(first_action["awac"]), reward(first_action["bc"])
    assert np.all(first_action["bc"] < -0.4), first_action  # cloning copies the bad actions
    assert np.all(awac > -0.2), first_action  # |a - 0.6| < 0.32: near the optimum
    assert np.all(awac > bc + 1.0), (awac, bc)
