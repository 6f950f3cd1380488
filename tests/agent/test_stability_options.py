"""The critics' stability options (AWACConfig: critic_layer_norm, num_critics, td_target_clip,
tau_final / tau_half_life): off, the update is the paper's to the bit; on, each does what it
says on hand-made inputs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ScaleFlow, Transitions, random_transitions
from reference_update import reference_update_step

from lfjax.agent import (
    AWACConfig,
    TanhGaussianActor,
    TwinCritic,
    make_act,
    make_init,
    make_train,
    make_update_step,
    stack_hyperparams,
)
from lfjax.agent.losses import actor_loss, actor_q_term, td_target_bounds
from lfjax.agent.networks import sample_latents
from lfjax.agent.train import target_step_size
from lfjax.configs import quick_preset
from lfjax.flows import make_flow
from lfjax.networks import MLP


def _paper_sized(config: AWACConfig) -> AWACConfig:
    # The paper's update, small enough for a test: only the sizes differ.
    return dataclasses.replace(config, batch_size=64, hidden_dims=(32, 32, 32))


@pytest.mark.parametrize("preset", ["paper", "quick"])
def test_with_every_option_off_the_update_is_the_papers_to_the_bit(preset):
    """make_update_step with the options off equals the update as it was before them
    (tests/agent/reference_update.py, kept verbatim), on a real 2-block flow, for five
    consecutive updates: every parameter, optimizer moment and metric, bit for bit."""
    if preset == "paper":
        config = AWACConfig()
    else:  # the quick preset's rates with its stability options turned off
        config = dataclasses.replace(quick_preset("maze2d-umaze").agent, critic_layer_norm=False,
                                     tau_final=None, tau_half_life=None, actor_ema=None, n_step=1,
                                     actor_regression="l1")
    config = _paper_sized(config)
    flow = make_flow(action_dim=2, state_dim=4, num_blocks=2, hidden_dims=(16, 16))
    data = random_transitions(jax.random.PRNGKey(0), 512, obs_dim=4)
    data = data.replace(actions=jnp.clip(data.actions, -0.95, 0.95),
                        rewards=(data.rewards > 1.0).astype(jnp.float32))
    frozen = flow.freeze(flow.init(jax.random.PRNGKey(1), data.actions, data.observations))
    ours, reference = jax.jit(make_update_step(config, flow)), jax.jit(reference_update_step(config, flow))
    a = b = make_init(config, flow, 4)(jax.random.PRNGKey(2))
    for i in range(5):
        key = jax.random.PRNGKey(10 + i)
        a, metrics_a = ours(a, frozen, data, key)
        b, metrics_b = reference(b, frozen, data, key)
        jax.tree.map(np.testing.assert_array_equal, a, b)
        for name, value in metrics_b.items():
            np.testing.assert_array_equal(metrics_a[name], value, err_msg=name)
    assert metrics_a["tau"] == np.float32(config.tau)  # the schedule's value without decay: tau itself


def test_td_target_bounds_cover_both_signs_and_terminals():
    lo, hi = td_target_bounds(jnp.float32(0.0), jnp.float32(1.0), 0.99)
    np.testing.assert_allclose([lo, hi], [0.0, 100.0], rtol=1e-6)
    # A positive minimum: one step then a terminal gives r_min itself, below r_min / (1 - gamma).
    lo, hi = td_target_bounds(jnp.float32(0.5), jnp.float32(2.0), 0.9)
    np.testing.assert_allclose([lo, hi], [0.5, 20.0], rtol=1e-6)
    # A negative maximum: likewise r_max is the highest a terminal allows.
    lo, hi = td_target_bounds(jnp.float32(-3.0), jnp.float32(-1.0), 0.9)
    np.testing.assert_allclose([lo, hi], [-30.0, -1.0], rtol=1e-6)


def _constant_target(state, value: float):
    """The state with target critics that output `value` everywhere (last layer zero but its
    bias)."""
    params = state.target_critic_params
    last = max(k for k in params["params"]["VmapMLP_0"] if k.startswith("Dense_"))
    layer = params["params"]["VmapMLP_0"][last]
    layer = {"kernel": jnp.zeros_like(layer["kernel"]), "bias": jnp.full_like(layer["bias"], value)}
    new = {"params": {"VmapMLP_0": {**params["params"]["VmapMLP_0"], last: layer}}}
    return state.replace(target_critic_params=new)


@pytest.mark.parametrize("target_q, expected", [(500.0, 100.0), (-500.0, 0.0), (20.0, None)])
def test_td_target_clip_on_a_hand_made_batch(target_q, expected):
    """Rewards in {0, 1}, gamma 0.99: targets r + 0.99 * Q' are held in [0, 100]. With target
    critics at 500 every target is clipped to 100, at -500 to 0; at 20 none is (21 or 19.8)."""
    config = AWACConfig(batch_size=8, hidden_dims=(8, 8), td_target_clip=True)
    flow = ScaleFlow(action_dim=2, latent_dim=2)
    data = Transitions(
        observations=jnp.array([[0.5, -1.0, 2.0], [1.0, 0.0, 0.0]]),
        actions=jnp.array([[0.9, -0.2], [0.1, 0.3]]),
        rewards=jnp.array([0.0, 1.0]),
        next_observations=jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
        terminals=jnp.array([0.0, 0.0]),
    )
    state = _constant_target(make_init(config, flow, obs_dim=3)(jax.random.PRNGKey(0)), target_q)
    key = jax.random.PRNGKey(1)
    _, metrics = jax.jit(make_update_step(config, flow))(state, {"scale": jnp.asarray(1.0)}, data, key)
    # The batch the step drew (its first key), and the online critics there.
    idx = jax.random.randint(jax.random.split(key, 3)[0], (8,), 0, 2)
    q = TwinCritic((8, 8)).apply(state.critic_params, data.observations[idx], data.actions[idx])
    unclipped = data.rewards[idx] + 0.99 * target_q
    y = unclipped if expected is None else jnp.full_like(unclipped, expected)
    np.testing.assert_allclose(metrics["critic_loss"], jnp.sum(jnp.mean((q - y) ** 2, axis=1)), rtol=1e-5)
    assert float(metrics["target_clipped_frac"]) == (0.0 if expected is None else 1.0)
    # The same update without the clip regresses onto the raw targets.
    plain = dataclasses.replace(config, td_target_clip=False)
    _, raw = jax.jit(make_update_step(plain, flow))(state, {"scale": jnp.asarray(1.0)}, data, key)
    np.testing.assert_allclose(raw["critic_loss"], jnp.sum(jnp.mean((q - unclipped) ** 2, axis=1)), rtol=1e-5)
    assert "target_clipped_frac" not in raw


def test_tau_decays_toward_tau_final_with_its_half_life():
    config = AWACConfig(tau=0.01, tau_final=0.002, tau_half_life=1000.0)
    hp = stack_hyperparams([config])
    hp = jax.tree.map(lambda x: x[0], hp)
    taus = [float(target_step_size(hp, jnp.asarray(t))) for t in (0, 1000, 2000, 100_000)]
    np.testing.assert_allclose(taus, [0.01, 0.006, 0.004, 0.002], rtol=1e-5)
    # A member without decay in the same grid: tau_final = tau, a decay rate of 0 (every
    # hyperparameter finite: a train state's leaves are checked for that).
    mixed = stack_hyperparams([config, AWACConfig(tau=0.01)])
    np.testing.assert_array_equal(mixed.tau_final, np.float32([0.002, 0.01]))
    np.testing.assert_array_equal(mixed.tau_decay_rate, np.float32([1e-3, 0.0]))


def test_the_target_update_uses_the_decayed_tau():
    """After 1000 updates with tau 0.01 -> 0.002 (half-life 1000), update 1001's Polyak step is
    0.006: target' = 0.994 target + 0.006 critics."""
    config = AWACConfig(batch_size=8, hidden_dims=(8, 8), tau=0.01, tau_final=0.002,
                        tau_half_life=1000.0)
    flow = ScaleFlow(action_dim=2, latent_dim=2)
    data = random_transitions(jax.random.PRNGKey(0), 64)
    state = make_init(config, flow, obs_dim=3)(jax.random.PRNGKey(0)).replace(step=jnp.int32(1000))
    new, metrics = jax.jit(make_update_step(config, flow))(state, {"scale": jnp.asarray(1.0)}, data,
                                                           jax.random.PRNGKey(1))
    np.testing.assert_allclose(metrics["tau"], 0.006, rtol=1e-5)
    expected = jax.tree.map(lambda t, c: 0.994 * t + 0.006 * c, state.target_critic_params,
                            new.critic_params)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7),
                 new.target_critic_params, expected)


def test_more_critics_are_one_ensemble_and_the_target_takes_their_minimum():
    config = AWACConfig(batch_size=8, hidden_dims=(8, 8), num_critics=5)
    flow = ScaleFlow(action_dim=2, latent_dim=2)
    state = make_init(config, flow, obs_dim=3)(jax.random.PRNGKey(0))
    assert all(x.shape[0] == 5 for x in jax.tree.leaves(state.critic_params))
    # One of five target critics far below the others: the target follows it.
    params = state.target_critic_params
    last = params["params"]["VmapMLP_0"]["Dense_2"]
    bias = jnp.full_like(last["bias"], 10.0).at[3].set(-10.0)
    low = {"params": {"VmapMLP_0": {**params["params"]["VmapMLP_0"],
                                    "Dense_2": {"kernel": jnp.zeros_like(last["kernel"]), "bias": bias}}}}
    state = state.replace(target_critic_params=low)
    data = random_transitions(jax.random.PRNGKey(1), 64).replace(terminals=jnp.zeros(64))
    key = jax.random.PRNGKey(2)
    _, metrics = jax.jit(make_update_step(config, flow))(state, {"scale": jnp.asarray(1.0)}, data, key)
    idx = jax.random.randint(jax.random.split(key, 3)[0], (8,), 0, 64)
    q = TwinCritic((8, 8), num_critics=5).apply(state.critic_params, data.observations[idx],
                                                 data.actions[idx])
    y = data.rewards[idx] - 0.99 * 10.0
    np.testing.assert_allclose(metrics["critic_loss"], jnp.sum(jnp.mean((q - y) ** 2, axis=1)), rtol=1e-5)


def test_critic_layer_norm_normalizes_every_hidden_layer():
    """With LayerNorm, scaling a hidden Dense layer's kernel and bias changes nothing after it
    (LayerNorm is scale-invariant); without it, it does."""
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 5))
    for layer_norm in (True, False):
        mlp = MLP((8, 8), 1, layer_norm=layer_norm)
        params = mlp.init(jax.random.PRNGKey(1), x)
        names = set(params["params"])
        assert ({"LayerNorm_0", "LayerNorm_1"} <= names) == layer_norm
        for layer in ("Dense_0", "Dense_1"):
            scaled = jax.tree.map(lambda p: p, params)
            scaled["params"][layer] = jax.tree.map(lambda p: 7.0 * p, params["params"][layer])
            same = np.allclose(mlp.apply(scaled, x), mlp.apply(params, x), rtol=1e-4, atol=1e-5)
            assert same == layer_norm, (layer, layer_norm)
    critic = TwinCritic((8, 8), layer_norm=True)
    params = critic.init(jax.random.PRNGKey(2), x[:, :3], x[:, 3:])
    assert "LayerNorm_0" in params["params"]["VmapMLP_0"]


def test_options_train_finite_for_several_members():
    config = AWACConfig(batch_size=16, hidden_dims=(16, 16), critic_layer_norm=True, num_critics=4,
                        td_target_clip=True, tau_final=0.001, tau_half_life=10.0)
    flow = ScaleFlow(action_dim=2, latent_dim=2)
    states = jax.vmap(make_init(config, flow, 3))(jax.random.split(jax.random.PRNGKey(0), 2))
    data = random_transitions(jax.random.PRNGKey(1), 128)
    states, metrics = make_train(config, flow)(states, {"scale": jnp.ones(2)}, data, 20)
    assert np.all(metrics["finite"]) and metrics["tau"].shape == (2, 20)
    assert np.all(np.diff(metrics["tau"], axis=1) < 0)  # decaying every update


def test_options_are_validated():
    with pytest.raises(ValueError, match="num_critics"):
        AWACConfig(num_critics=0)
    with pytest.raises(ValueError, match="tau_final needs tau_half_life"):
        AWACConfig(tau_final=0.001)
    # A half-life alone decays nothing (a grid may sweep tau_final over it).
    assert float(stack_hyperparams([AWACConfig(tau_half_life=100.0)]).tau_decay_rate[0]) == 0.0
    with pytest.raises(ValueError, match="tau_half_life must be positive"):
        AWACConfig(tau_final=0.001, tau_half_life=0.0)


@pytest.mark.parametrize("behaviour_cloning", [False, True])
def test_the_averaged_actor_follows_by_its_polyak_step_and_is_the_one_that_acts(behaviour_cloning):
    """actor_ema = 0.1: after each update the averaged actor is 0.9 of itself plus 0.1 of the
    trained actor (starting from the initial actor), training is unchanged, and acting_params
    picks the average; without the option there is none and the trained actor acts."""
    from lfjax.agent import acting_params

    config = AWACConfig(batch_size=8, hidden_dims=(8, 8), actor_ema=0.1)
    flow = ScaleFlow(action_dim=2, latent_dim=2)
    data = random_transitions(jax.random.PRNGKey(0), 64)
    step = jax.jit(make_update_step(config, flow, behaviour_cloning=behaviour_cloning))
    plain_step = jax.jit(make_update_step(dataclasses.replace(config, actor_ema=None), flow,
                                          behaviour_cloning=behaviour_cloning))
    init = make_init(config, flow, 3, behaviour_cloning=behaviour_cloning)
    state = init(jax.random.PRNGKey(1))
    plain = make_init(dataclasses.replace(config, actor_ema=None), flow, 3,
                      behaviour_cloning=behaviour_cloning)(jax.random.PRNGKey(1))
    assert plain.averaged_actor_params is None and acting_params(plain) is plain.actor_params
    jax.tree.map(np.testing.assert_array_equal, state.averaged_actor_params, state.actor_params)
    expected = state.actor_params
    for i in range(3):
        key = jax.random.PRNGKey(10 + i)
        state, _ = step(state, {"scale": jnp.asarray(1.0)}, data, key)
        plain, _ = plain_step(plain, {"scale": jnp.asarray(1.0)}, data, key)
        jax.tree.map(np.testing.assert_array_equal, state.actor_params, plain.actor_params)
        expected = jax.tree.map(lambda avg, new: 0.9 * avg + 0.1 * new, expected, state.actor_params)
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-8),
                     state.averaged_actor_params, expected)
    assert acting_params(state) is state.averaged_actor_params
    assert not np.allclose(state.averaged_actor_params["params"]["MLP_0"]["Dense_0"]["kernel"],
                           state.actor_params["params"]["MLP_0"]["Dense_0"]["kernel"])


def test_n_step_targets_bootstrap_with_each_rows_own_discount():
    """With NStepTransitions the target is r + discount_row * min Q'(s_{t+K}): target critics at
    20, discounts 0.25 and 0 (a terminal within the n steps) give 1 + 5 and 3 + 0."""
    from lfjax.data.returns import NStepTransitions

    config = AWACConfig(batch_size=8, hidden_dims=(8, 8), n_step=3)
    flow = ScaleFlow(action_dim=2, latent_dim=2)
    data = NStepTransitions(
        observations=jnp.array([[0.5, -1.0, 2.0], [1.0, 0.0, 0.0]]),
        actions=jnp.array([[0.9, -0.2], [0.1, 0.3]]),
        rewards=jnp.array([1.0, 3.0]),
        next_observations=jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
        terminals=jnp.zeros(2),
        discounts=jnp.array([0.25, 0.0]),
    )
    state = _constant_target(make_init(config, flow, obs_dim=3)(jax.random.PRNGKey(0)), 20.0)
    key = jax.random.PRNGKey(1)
    _, metrics = jax.jit(make_update_step(config, flow))(state, {"scale": jnp.asarray(1.0)}, data, key)
    idx = jax.random.randint(jax.random.split(key, 3)[0], (8,), 0, 2)
    assert len(set(np.asarray(idx).tolist())) == 2  # both rows drawn: both discounts matter
    q = TwinCritic((8, 8)).apply(state.critic_params, data.observations[idx], data.actions[idx])
    y = jnp.array([6.0, 3.0])[idx]
    np.testing.assert_allclose(metrics["critic_loss"], jnp.sum(jnp.mean((q - y) ** 2, axis=1)), rtol=1e-5)


class SaturatedFlow:
    """A decoder as flat as a flow's spike at a saturated action: decode(z) = clip(1e4 z, -1, 1)
    has zero gradient wherever |z| > 1e-4; encode(a) = a / 1e4 inverts its steep middle."""

    action_dim = latent_dim = 2

    def decode(self, params, latents, states):
        return jnp.clip(1e4 * latents, -1.0, 1.0)

    def encode(self, params, actions, states):
        return actions / 1e4


def test_latent_actor_loss_regresses_latents_onto_the_encoded_data_actions():
    """Through a saturated decoder the paper's actor loss gives the actor no gradient: Adam
    leaves it where it is. With latent_actor_loss the loss is mean(w |z - encode(a)|) (every
    weight at its clip of 0.5 here: lambda so large that exp((q - v) / lambda) ~ 1) and the
    actor moves."""
    config = AWACConfig(batch_size=8, hidden_dims=(8, 8), awac_lambda=1e6, weight_clip=0.5)
    flow = SaturatedFlow()
    data = random_transitions(jax.random.PRNGKey(0), 64)
    state = make_init(config, flow, 3)(jax.random.PRNGKey(1))
    key = jax.random.PRNGKey(2)
    paper, _ = jax.jit(make_update_step(config, flow))(state, {}, data, key)
    jax.tree.map(np.testing.assert_array_equal, paper.actor_params, state.actor_params)

    latent = dataclasses.replace(config, latent_actor_loss=True)
    new, metrics = jax.jit(make_update_step(latent, flow))(state, {}, data, key)
    batch_key, _, actor_key = jax.random.split(key, 3)
    idx = jax.random.randint(batch_key, (8,), 0, 64)
    mean, log_std = TanhGaussianActor(2, (8, 8)).apply(state.actor_params, data.observations[idx])
    z = sample_latents(mean, log_std, actor_key)
    expected = 0.5 * jnp.mean(jnp.abs(z - data.actions[idx] / 1e4))
    np.testing.assert_allclose(metrics["actor_loss"], expected, rtol=1e-6)
    assert float(metrics["weight_mean"]) == 0.5
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), new.actor_params, state.actor_params)
    assert all(jax.tree.leaves(moved))
    # The critics' step does not depend on the actor's loss.
    jax.tree.map(np.testing.assert_array_equal, new.critic_params, paper.critic_params)


def test_latent_actor_loss_is_the_papers_loss_in_action_space():
    """For the action-space agent (awac: the identity decoder) latents are actions, so the
    option changes nothing, to the bit."""
    from lfjax.agent.decoders import IdentityDecoder

    config = AWACConfig(batch_size=16, hidden_dims=(16, 16))
    flow = IdentityDecoder(action_dim=2)
    data = random_transitions(jax.random.PRNGKey(0), 64)
    params = jax.tree.map(lambda x: x[0], flow.params())
    a = b = make_init(config, flow, 3)(jax.random.PRNGKey(1))
    plain = jax.jit(make_update_step(config, flow))
    latent = jax.jit(make_update_step(dataclasses.replace(config, latent_actor_loss=True), flow))
    for i in range(3):
        a, metrics_a = plain(a, params, data, jax.random.PRNGKey(10 + i))
        b, metrics_b = latent(b, params, data, jax.random.PRNGKey(10 + i))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    np.testing.assert_array_equal(metrics_a["actor_loss"], metrics_b["actor_loss"])


def test_actor_q_term_is_minus_mean_q_over_a_constant_mean_abs_q():
    q = jnp.array([2.0, -4.0])
    np.testing.assert_allclose(actor_q_term(q), -(-1.0) / 3.0, rtol=1e-6)
    # The denominator carries no gradient: d/dq_i = -1 / (B mean|q|) for every i.
    np.testing.assert_allclose(jax.grad(actor_q_term)(q), [-1.0 / 6.0, -1.0 / 6.0], rtol=1e-6)
    assert np.isfinite(actor_q_term(jnp.zeros(3)))  # untrained critics: Q ~ 0


def test_actor_q_weight_adds_the_q_term_of_the_updated_critics_to_the_actor_loss():
    """The actor's loss with actor_q_weight=beta is the paper's weighted L1 plus beta times
    -mean Q / mean|Q|, Q the minimum of the critics just updated at the actor's own decoded
    sample; with beta 0 the update is the paper's."""
    config = AWACConfig(batch_size=16, hidden_dims=(16, 16))
    flow = ScaleFlow(action_dim=2, latent_dim=2)
    params = {"scale": jnp.asarray(0.7)}
    data = random_transitions(jax.random.PRNGKey(0), 64)
    key = jax.random.PRNGKey(2)
    beta = 0.8
    with_q = dataclasses.replace(config, actor_q_weight=beta)

    def initial(cfg):
        # Critics whose minimum takes both signs on the batch: with one sign only, the term
        # would be -1 or +1 whichever critic parameters gave it.
        state = make_init(cfg, flow, 3)(jax.random.PRNGKey(1))
        shifted = jax.tree_util.tree_map_with_path(
            lambda path, x: x + 0.25 if "Dense_2" in str(path) and "bias" in str(path) else x,
            state.critic_params)
        return state.replace(critic_params=shifted)

    state = initial(config)
    new, metrics = jax.jit(make_update_step(with_q, flow))(initial(with_q), params, data, key)

    batch_key, sample_key, actor_key = jax.random.split(key, 3)
    idx = jax.random.randint(batch_key, (16,), 0, 64)
    obs, actions = data.observations[idx], data.actions[idx]
    actor, critic = TanhGaussianActor(2, (16, 16)), TwinCritic((16, 16))
    # The value baseline's sample, drawn as the update draws it (next states first).
    mean, log_std = actor.apply(state.actor_params, jnp.concatenate([data.next_observations[idx], obs]))
    pi_actions = 0.7 * sample_latents(mean, log_std, sample_key)[16:]
    q = jnp.min(critic.apply(new.critic_params, obs, actions), axis=0)
    v = jnp.min(critic.apply(new.critic_params, obs, pi_actions), axis=0)
    w = jnp.minimum(jnp.exp((q - v) / config.awac_lambda), config.weight_clip)
    mean, log_std = actor.apply(state.actor_params, obs)
    policy_actions = 0.7 * sample_latents(mean, log_std, actor_key)
    q_pi = jnp.min(critic.apply(new.critic_params, obs, policy_actions), axis=0)
    assert np.any(q_pi > 0) and np.any(q_pi < 0), q_pi
    paper_loss = jnp.mean(w[:, None] * jnp.abs(policy_actions - actions))
    expected = paper_loss - beta * jnp.mean(q_pi) / jnp.mean(jnp.abs(q_pi))
    np.testing.assert_allclose(metrics["actor_loss"], expected, rtol=1e-5)

    paper, paper_metrics = jax.jit(make_update_step(config, flow))(state, params, data, key)
    np.testing.assert_allclose(paper_metrics["actor_loss"], paper_loss, rtol=1e-5)
    zero = dataclasses.replace(config, actor_q_weight=0.0)
    new_zero, _ = jax.jit(make_update_step(zero, flow))(initial(zero), params, data, key)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8),
                 new_zero.actor_params, paper.actor_params)


def _bandit(n: int = 1000) -> Transitions:
    """A one-step bandit with reward = a: 90 % of the data's actions are -0.5, 10 % +0.5."""
    k = jax.random.split(jax.random.PRNGKey(0), 2)
    actions = jnp.where(jnp.arange(n) % 10 == 0, 0.5, -0.5)[:, None]
    return Transitions(observations=jax.random.normal(k[0], (n, 2)), actions=actions,
                       rewards=actions[:, 0], next_observations=jax.random.normal(k[1], (n, 2)),
                       terminals=jnp.ones(n))


def _bandit_medians(config: AWACConfig, num_updates: int) -> list[float]:
    """Two seeds trained on _bandit() with ``config`` in action space: each seed's median
    deterministic action over 64 states."""
    from lfjax.agent.decoders import IdentityDecoder

    decoder = IdentityDecoder(action_dim=1)
    states = jax.vmap(make_init(config, decoder, 2))(jax.random.split(jax.random.PRNGKey(1), 2))
    states, metrics = make_train(config, decoder)(states, decoder.params(2), _bandit(), num_updates)
    assert np.all(metrics["finite"])
    act = make_act(config, decoder, deterministic=True)
    observations = jax.random.normal(jax.random.PRNGKey(3), (64, 2))
    return [float(jnp.median(act(jax.tree.map(lambda x: x[i], states.actor_params), {},
                                 observations, None))) for i in range(2)]


def test_actor_q_weight_leaves_the_datas_majority_where_the_critic_disagrees():
    """A one-step bandit, reward = a: 90 % of the data's actions are -0.5, 10 % are +0.5. With
    weights ~ 1 (lambda huge) the weighted L1 is the data's median, -0.5, whatever the critic
    says; the Q term moves the policy up the critic's slope, above +0.3."""
    config = AWACConfig(batch_size=128, hidden_dims=(32, 32), actor_lr=1e-3, critic_lr=1e-3,
                        awac_lambda=1e3)
    for beta, check in ((None, lambda a: a < -0.3), (1.0, lambda a: a > 0.3)):
        medians = _bandit_medians(dataclasses.replace(config, actor_q_weight=beta), 400)
        for i, median in enumerate(medians):
            assert check(median), (beta, i, median)


def test_actor_regression_l2_squares_the_weighted_error():
    w = jnp.array([1.0, 3.0])
    pi, a = jnp.array([[0.5, -1.0], [0.0, 0.2]]), jnp.array([[0.0, 1.0], [1.0, 0.2]])
    # mean over batch and action entries: (1 * (0.25 + 4) + 3 * (1 + 0)) / 4
    np.testing.assert_allclose(actor_loss(w, pi, a, "l2"), (4.25 + 3.0) / 4, rtol=1e-6)
    np.testing.assert_allclose(actor_loss(w, pi, a), (1 * 2.5 + 3 * 1.0) / 4, rtol=1e-6)
    with pytest.raises(ValueError, match="l1 or l2"):
        actor_loss(w, pi, a, "huber")
    with pytest.raises(ValueError, match="actor_regression must be 'l1'"):
        AWACConfig(actor_regression="L2")


def test_actor_regression_l2_is_the_weighted_mean_where_l1_is_the_weighted_median():
    """A one-step bandit, reward = a: 90 % of the data's actions are -0.5, 10 % +0.5, and
    lambda = 1, so the rare rows weigh e^1 = 2.7 times the common ones (the weights' ratio
    e^((q_i - q_j) / lambda) does not depend on the baseline v). Their weighted median stays at
    -0.5 (0.27 < 0.9), which the paper's L1 finds; the weighted mean is
    (0.9 (-0.5) + 0.1 e (0.5)) / (0.9 + 0.1 e) = -0.27, which the L2 finds."""
    config = AWACConfig(batch_size=256, hidden_dims=(32, 32), actor_lr=1e-3, critic_lr=1e-3,
                        awac_lambda=1.0)
    e = np.e
    weighted_mean = (0.9 * -0.5 + 0.1 * e * 0.5) / (0.9 + 0.1 * e)
    for regression, target in (("l1", -0.5), ("l2", weighted_mean)):
        medians = _bandit_medians(dataclasses.replace(config, actor_regression=regression), 1500)
        for i, median in enumerate(medians):
            assert abs(median - target) < 0.08, (regression, i, median)


def test_a_grid_over_actor_q_weight_gives_every_member_its_weight():
    hp = stack_hyperparams([AWACConfig(), AWACConfig(actor_q_weight=0.5)])
    np.testing.assert_array_equal(hp.actor_q_weight, np.float32([0.0, 0.5]))
    # Without the option the hyperparameters are the class without the field (so old
    # checkpoints still restore: the test below).
    assert not hasattr(stack_hyperparams([AWACConfig()]), "actor_q_weight")
    with pytest.raises(ValueError, match="actor_q_weight must be non-negative"):
        AWACConfig(actor_q_weight=-1.0)


def test_a_train_state_saved_before_actor_q_weight_existed_still_restores(tmp_path):
    """Checkpoints written before the option hold hyperparameters of exactly these eight fields;
    a run without the option must restore them (the option's field is in another class, not a
    None field, which orbax would refuse against such a checkpoint)."""
    import flax

    from lfjax.checkpoints import restore_tree, save_tree

    @flax.struct.dataclass
    class Hyperparams:  # as lfjax.agent.train defined it before actor_q_weight
        awac_lambda: jax.Array
        tau: jax.Array
        actor_lr: jax.Array
        critic_lr: jax.Array
        gamma: jax.Array
        weight_clip: jax.Array
        tau_final: jax.Array
        tau_decay_rate: jax.Array

    config = AWACConfig(batch_size=8, hidden_dims=(8, 8))
    state = make_init(config, ScaleFlow(action_dim=2, latent_dim=2), 3)(jax.random.PRNGKey(0))
    old = state.replace(hparams=Hyperparams(**{
        f: getattr(state.hparams, f) for f in Hyperparams.__dataclass_fields__}))
    save_tree(tmp_path / "state", old)
    restored = restore_tree(tmp_path / "state", state)
    jax.tree.map(np.testing.assert_array_equal, restored, state)
