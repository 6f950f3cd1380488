"""Latent AWAC training: a pure update step, scanned in chunks, vmapped over members.

Shapes: N members (seeds, or configs x seeds of a hyperparameter grid), B batch, S state dim,
A action dim, L latent dim (A padded to even). Every array in a `TrainState` and in the frozen
flow parameters carries a leading member axis [N, ...] when it goes through `make_train`; the
dataset has none and is shared by all members.

The scalar hyperparameters (gamma, tau, lambda, weight clip, learning rates) travel in the
train state (`Hyperparams`) rather than in the compiled program, so members of one program
can differ in them: a grid over them is one `jit(vmap(...))`. Settings that change shapes
(batch size, network sizes) are static and shared by all members.
"""

import functools
from typing import Any, Callable, Protocol

import chex
import flax
import jax
import jax.numpy as jnp
import optax

from lfjax.agent import losses
from lfjax.agent.networks import TanhGaussianActor, TwinCritic, sample_latents
from lfjax.configs import SWEEPABLE, AWACConfig


class LatentDecoder(Protocol):
    """What the agent needs from a flow (satisfied by `lfjax.flows.make_flow(...)`)."""

    action_dim: int
    latent_dim: int

    def decode(self, params: Any, latents: jax.Array, states: jax.Array) -> jax.Array:
        """latents [B, L], normalized states [B, S] -> actions [B, A]."""

    def encode(self, params: Any, actions: jax.Array, states: jax.Array) -> jax.Array:
        """actions [B, A], normalized states [B, S] -> latents [B, L] (AWACConfig.latent_actor_loss)."""


@flax.struct.dataclass
class Hyperparams:
    """One member's scalar hyperparameters, float32 [] each ([N] for N members): the
    SWEEPABLE settings of AWACConfig, with the decay of tau as tau_final and a rate
    1 / tau_half_life (tau_final = tau and rate 0 when tau does not decay: the schedule then
    gives tau itself, exactly, `target_step_size`). When a member sets
    AWACConfig.actor_q_weight, `WithQWeight` carries it as well."""

    awac_lambda: jax.Array
    tau: jax.Array
    actor_lr: jax.Array
    critic_lr: jax.Array
    gamma: jax.Array
    weight_clip: jax.Array
    tau_final: jax.Array
    tau_decay_rate: jax.Array


@flax.struct.dataclass
class WithQWeight(Hyperparams):
    """Hyperparams with every member's AWACConfig.actor_q_weight (0.0 for a member that sets
    none), used when some member sets one: the update's actor loss then has the Q term. A
    subclass rather than an optional field, so that without the option the pytree, and with
    it every checkpoint, is the one written before it existed (orbax restores a None field of
    the target against an old checkpoint as a missing entry, and refuses)."""

    actor_q_weight: jax.Array


def _hparam_values(config: AWACConfig, with_q_weight: bool) -> dict[str, float]:
    values = {k: getattr(config, k) for k in SWEEPABLE if k not in ("tau_half_life", "actor_q_weight")}
    if config.tau_final is None:  # no decay, whatever the half-life
        values.update(tau_final=config.tau, tau_decay_rate=0.0)
    else:
        values["tau_decay_rate"] = 1.0 / config.tau_half_life
    if with_q_weight:
        values["actor_q_weight"] = config.actor_q_weight or 0.0
    return values


def hyperparams(config: AWACConfig) -> Hyperparams:
    """config's sweepable scalars as float32 arrays []."""
    return jax.tree.map(lambda x: x[0], stack_hyperparams([config]))


def stack_hyperparams(configs: list[AWACConfig]) -> Hyperparams:
    """One Hyperparams with a leading member axis [len(configs)]."""
    with_q_weight = any(c.actor_q_weight is not None for c in configs)
    values = [_hparam_values(c, with_q_weight) for c in configs]
    cls = WithQWeight if with_q_weight else Hyperparams
    return cls(**{k: jnp.asarray([v[k] for v in values], jnp.float32) for k in values[0]})


def target_step_size(hp: Hyperparams, step: jax.Array) -> jax.Array:
    """The Polyak step of update ``step``: tau_final + (tau - tau_final) * 0.5 ** (step /
    tau_half_life), float32 []. Without decay (tau_final = tau, rate 0) it is tau to the bit:
    tau + 0 * 1."""
    decay = jnp.exp2(-step.astype(jnp.float32) * hp.tau_decay_rate)
    return hp.tau_final + (hp.tau - hp.tau_final) * decay


@flax.struct.dataclass
class TrainState:
    """Everything one member's training carries from update to update.

    critic_params and target_critic_params hold both critics with a leading axis of 2; all
    three critic fields are None for behaviour cloning, which trains no critics. hparams are
    the member's own scalar hyperparameters (fixed during training; saved with the state).
    averaged_actor_params: the Polyak average of the actor that acts (AWACConfig.actor_ema);
    None without one (`acting_params` picks).
    """

    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    rng: jax.Array
    step: jax.Array
    hparams: Hyperparams
    averaged_actor_params: Any = None


def acting_params(state: TrainState) -> Any:
    """The actor parameters that act: the averaged ones when the config keeps an average
    (AWACConfig.actor_ema), else the trained ones. Any leading member axis is kept."""
    return state.actor_params if state.averaged_actor_params is None else state.averaged_actor_params


def _averaged(config: AWACConfig, actor_params: Any, averaged: Any) -> Any:
    """The averaged actor after an update (None without actor_ema)."""
    if config.actor_ema is None:
        return None
    return optax.incremental_update(actor_params, averaged, config.actor_ema)


def _networks(config: AWACConfig, flow: LatentDecoder) -> tuple[TanhGaussianActor, TwinCritic]:
    actor = TanhGaussianActor(
        latent_dim=flow.latent_dim,
        hidden_dims=config.hidden_dims,
        log_std_min=config.log_std_min,
        log_std_max=config.log_std_max,
    )
    critic = TwinCritic(hidden_dims=config.hidden_dims, num_critics=config.num_critics,
                        layer_norm=config.critic_layer_norm)
    return actor, critic


def _optimizers() -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """Adam without its learning rate: ``adam(lr) = chain(scale_by_adam(), scale(-lr))``, and
    the step applies each member's own -lr from its hparams (`_apply`)."""
    return optax.scale_by_adam(), optax.scale_by_adam()


def _apply(params: Any, updates: Any, learning_rate: jax.Array) -> Any:
    """params - learning_rate * updates: optax.adam's last step, with a per-member rate."""
    return optax.apply_updates(params, jax.tree.map(lambda u: -learning_rate * u, updates))


def make_init(
    config: AWACConfig, flow: LatentDecoder, obs_dim: int, *, behaviour_cloning: bool = False
) -> Callable[[jax.Array], TrainState]:
    """Returns init(key, hparams=None) -> TrainState for one member; `jax.vmap(init)(keys [N])`
    gives N seeds of config, `jax.vmap(init)(keys [N], stack_hyperparams(configs))` N members
    with their own scalar hyperparameters (default: config's).
    behaviour_cloning: no critics (their fields are None)."""
    actor, critic = _networks(config, flow)
    actor_opt, critic_opt = _optimizers()

    def init(key: jax.Array, hparams: Hyperparams | None = None) -> TrainState:
        actor_key, critic_key, rng = jax.random.split(key, 3)
        obs = jnp.zeros((1, obs_dim), jnp.float32)
        actions = jnp.zeros((1, flow.action_dim), jnp.float32)
        actor_params = actor.init(actor_key, obs)
        critic_params = None if behaviour_cloning else critic.init(critic_key, obs, actions)
        return TrainState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            actor_opt_state=actor_opt.init(actor_params),
            critic_opt_state=None if behaviour_cloning else critic_opt.init(critic_params),
            rng=rng,
            step=jnp.zeros((), jnp.int32),
            hparams=hyperparams(config) if hparams is None else hparams,
            averaged_actor_params=None if config.actor_ema is None else actor_params,
        )

    return init


def _all_finite(tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def make_update_step(
    config: AWACConfig, flow: LatentDecoder, *, behaviour_cloning: bool = False
) -> Callable[[TrainState, Any, Any, jax.Array], tuple[TrainState, dict[str, jax.Array]]]:
    """Returns update_step(state, flow_params, dataset, key, reward_range=None) -> (state,
    metrics) for one seed.

    flow_params: the frozen flow's parameters (`flow.freeze(params)`); never differentiated.
    dataset: transitions with fields observations [M, S], actions [M, A], rewards [M],
        next_observations [M, S], terminals [M] (normalized states, float32); with a field
        discounts [M] as well (`lfjax.data.returns.NStepTransitions`), the target bootstraps
        with each row's own discount instead of gamma (1 - terminal).
    key: randomness of this update (batch indices and the three policy samples).
    reward_range: (min, max) of dataset.rewards, for config.td_target_clip; computed from the
        dataset when None (`make_train` computes it once per chunk instead of per update).
    metrics: scalars critic_loss, actor_loss, q_mean, weight_mean, weight_clipped_frac, finite,
        tau (this update's Polyak step); with td_target_clip also target_clipped_frac.

    behaviour_cloning: the actor's loss with every weight 1 and no critics (the BC baseline):
    update_step then draws the same batch and actor sample as AWAC's and its metrics are
    actor_loss and finite.
    """
    if behaviour_cloning:
        return _make_bc_update_step(config, flow)
    actor, critic = _networks(config, flow)
    actor_opt, critic_opt = _optimizers()

    def update_step(state, flow_params, dataset, key, reward_range=None):
        flow_params = jax.lax.stop_gradient(flow_params)
        hp = state.hparams
        batch_key, sample_key, actor_key = jax.random.split(key, 3)

        idx = jax.random.randint(batch_key, (config.batch_size,), 0, dataset.rewards.shape[0])
        obs = dataset.observations[idx]
        actions = dataset.actions[idx]
        rewards = dataset.rewards[idx]
        next_obs = dataset.next_observations[idx]
        terminals = dataset.terminals[idx]
        chex.assert_rank([obs, actions, rewards, next_obs, terminals], [2, 2, 1, 2, 1])

        # The target's z' ~ pi(s') and the value baseline's z_pi ~ pi(s) need no gradient and
        # come from the actor before this update, so they share one actor call and one batched
        # decode. (Pairing the two samples at s instead would push the no-gradient half through
        # the decoder's backward pass as well: see BUILD_NOTES.md.)
        both_obs = jnp.concatenate([next_obs, obs], axis=0)
        mean, log_std = actor.apply(state.actor_params, both_obs)
        both_latents = sample_latents(mean, log_std, sample_key)
        both_actions = jax.lax.stop_gradient(flow.decode(flow_params, both_latents, both_obs))
        next_pi_actions, pi_actions = jnp.split(both_actions, 2, axis=0)

        # Critic step.
        next_q = critic.apply(state.target_critic_params, next_obs, next_pi_actions)
        if hasattr(dataset, "discounts"):  # n-step targets: r_t + ... + gamma^K min Q'(s_{t+K})
            target = losses.td_target(rewards, terminals, next_q, dataset.discounts[idx])
        else:
            target = losses.td_target(rewards, terminals, next_q, hp.gamma)
        if config.td_target_clip:
            if reward_range is None:
                reward_range = (jnp.min(dataset.rewards), jnp.max(dataset.rewards))
            lo, hi = losses.td_target_bounds(*reward_range, hp.gamma)
            clipped = jnp.clip(target, lo, hi)
            target_clipped_frac = jnp.mean(clipped != target)
            target = clipped

        def critic_loss_fn(critic_params):
            q = critic.apply(critic_params, obs, actions)
            return losses.critic_loss(q, target), q

        (critic_loss, q_data), critic_grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
            state.critic_params
        )
        critic_updates, critic_opt_state = critic_opt.update(critic_grads, state.critic_opt_state)
        critic_params = _apply(state.critic_params, critic_updates, hp.critic_lr)

        # Actor step, weighted by the critics just updated.
        q = jnp.min(critic.apply(critic_params, obs, actions), axis=0)
        v = jnp.min(critic.apply(critic_params, obs, pi_actions), axis=0)
        weights = losses.advantage_weights(q, v, hp.awac_lambda, hp.weight_clip)

        if config.latent_actor_loss:  # the data's actions as latents: no gradient through the flow
            data_latents = jax.lax.stop_gradient(flow.encode(flow_params, actions, obs))

        q_weighted = isinstance(hp, WithQWeight)  # AWACConfig.actor_q_weight

        def actor_loss_fn(actor_params):
            mean, log_std = actor.apply(actor_params, obs)
            latents = sample_latents(mean, log_std, actor_key)
            if q_weighted or not config.latent_actor_loss:
                policy_actions = flow.decode(flow_params, latents, obs)
            if config.latent_actor_loss:
                loss = losses.actor_loss(weights, latents, data_latents, config.actor_regression)
            else:
                loss = losses.actor_loss(weights, policy_actions, actions, config.actor_regression)
            if q_weighted:
                q_pi = jnp.min(critic.apply(critic_params, obs, policy_actions), axis=0)
                loss = loss + hp.actor_q_weight * losses.actor_q_term(q_pi)
            return loss

        actor_loss, actor_grads = jax.value_and_grad(actor_loss_fn)(state.actor_params)
        actor_updates, actor_opt_state = actor_opt.update(actor_grads, state.actor_opt_state)
        actor_params = _apply(state.actor_params, actor_updates, hp.actor_lr)

        # Computed for every member: without decay it is hp.tau to the bit, and a grid may mix
        # members with and without it.
        tau = target_step_size(hp, state.step)
        target_critic_params = optax.incremental_update(
            critic_params, state.target_critic_params, tau
        )

        new_state = state.replace(
            actor_params=actor_params,
            averaged_actor_params=_averaged(config, actor_params, state.averaged_actor_params),
            critic_params=critic_params,
            target_critic_params=target_critic_params,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            step=state.step + 1,
        )
        finite = (
            jnp.isfinite(critic_loss)
            & jnp.isfinite(actor_loss)
            & _all_finite((actor_params, critic_params))
        )
        metrics = {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "q_mean": jnp.mean(q_data),
            "weight_mean": jnp.mean(weights),
            "weight_clipped_frac": jnp.mean(weights >= hp.weight_clip),
            "tau": tau,
            "finite": finite,
        }
        if config.td_target_clip:
            metrics["target_clipped_frac"] = target_clipped_frac
        return new_state, metrics

    return update_step


def _make_bc_update_step(config: AWACConfig, flow: LatentDecoder):
    """Behaviour cloning through the decoder: mean |decode(z, s) - a| with z ~ pi(s)."""
    actor, _ = _networks(config, flow)
    actor_opt, _ = _optimizers()

    def update_step(state, flow_params, dataset, key, reward_range=None):
        del reward_range  # no critics
        flow_params = jax.lax.stop_gradient(flow_params)
        # Same key split as AWAC's update, so the batch and the actor's sample line up.
        batch_key, _, actor_key = jax.random.split(key, 3)
        idx = jax.random.randint(batch_key, (config.batch_size,), 0, dataset.rewards.shape[0])
        obs = dataset.observations[idx]
        actions = dataset.actions[idx]
        chex.assert_rank([obs, actions], [2, 2])
        weights = jnp.ones((config.batch_size,), jnp.float32)

        def actor_loss_fn(actor_params):
            mean, log_std = actor.apply(actor_params, obs)
            latents = sample_latents(mean, log_std, actor_key)
            policy_actions = flow.decode(flow_params, latents, obs)
            return losses.actor_loss(weights, policy_actions, actions)

        actor_loss, actor_grads = jax.value_and_grad(actor_loss_fn)(state.actor_params)
        actor_updates, actor_opt_state = actor_opt.update(actor_grads, state.actor_opt_state)
        actor_params = _apply(state.actor_params, actor_updates, state.hparams.actor_lr)
        new_state = state.replace(
            actor_params=actor_params, actor_opt_state=actor_opt_state, step=state.step + 1,
            averaged_actor_params=_averaged(config, actor_params, state.averaged_actor_params),
        )
        finite = jnp.isfinite(actor_loss) & _all_finite(actor_params)
        return new_state, {"actor_loss": actor_loss, "finite": finite}

    return update_step


def make_train(
    config: AWACConfig, flow: LatentDecoder, *, behaviour_cloning: bool = False
) -> Callable[[TrainState, Any, Any, int], tuple[TrainState, dict[str, jax.Array]]]:
    """Returns the jitted train_chunk(states [N], flow_params [N], data, num_updates)
    -> (states [N], metrics).

    Each call runs `num_updates` updates per seed inside one `lax.scan`, all seeds at once
    (vmap over the leading axis of states and flow_params). The dataset (`make_update_step`'s
    fields, normalized states) is an argument shared by all seeds (vmap in_axes=None): it is
    neither baked into the program as a constant nor copied per seed. num_updates is static:
    a new value compiles anew. `lfjax.pretraining.make_train` has the same form for the flow.

    metrics: dict of arrays [N, num_updates], one entry per update (see `make_update_step`).
    Each seed's randomness continues from its state's rng, so two chunks of k updates equal
    the same calls again; a chunk of 2k draws different keys than two chunks of k.
    Inputs placed with `lfjax.sharding` (states and flow_params split over seeds, dataset
    replicated) give outputs split the same way: jit propagates the shardings.
    behaviour_cloning: the BC baseline's update (`make_update_step`).
    """
    update_step = make_update_step(config, flow, behaviour_cloning=behaviour_cloning)

    def run_chunk(state, flow_params, dataset, num_updates):
        rng, chunk_key = jax.random.split(state.rng)
        keys = jax.random.split(chunk_key, num_updates)
        # Once per chunk rather than once per update (a pass over every reward).
        reward_range = (jnp.min(dataset.rewards), jnp.max(dataset.rewards)) if config.td_target_clip else None

        def body(state, key):
            return update_step(state, flow_params, dataset, key, reward_range)

        state, metrics = jax.lax.scan(body, state.replace(rng=rng), keys)
        return state, metrics

    @functools.partial(jax.jit, static_argnames="num_updates")
    def train_chunk(states, flow_params, dataset, num_updates):
        chunk = functools.partial(run_chunk, num_updates=num_updates)
        return jax.vmap(chunk, in_axes=(0, 0, None))(states, flow_params, dataset)

    return train_chunk


def make_q(config: AWACConfig, flow: LatentDecoder) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
    """Returns q(critic_params, observations [B, S] (normalized), actions [B, A]) -> [B], the
    minimum over the critics, as the update's targets and advantages use them. One member per
    call; vmap it for many."""
    _, critic = _networks(config, flow)

    def q(critic_params, observations, actions):
        return jnp.min(critic.apply(critic_params, observations, actions), axis=0)

    return q


def make_act(
    config: AWACConfig, flow: LatentDecoder, deterministic: bool = False
) -> Callable[[Any, Any, jax.Array, jax.Array], jax.Array]:
    """Returns act(actor_params, flow_params, observations [B, S], key) -> actions [B, A].

    Samples z ~ pi(s) (the official code acts with a sample at evaluation too), decodes it
    through the frozen flow and clips to [-1, 1]. deterministic=True uses z = tanh(mean)
    instead. One seed per call; vmap it for many (as `lfjax.evaluation.evaluate` does).
    """
    actor, _ = _networks(config, flow)

    def act(actor_params, flow_params, observations, key):
        chex.assert_rank(observations, 2)
        mean, log_std = actor.apply(actor_params, observations)
        if deterministic:
            latents = jnp.tanh(mean)
        else:
            latents = sample_latents(mean, log_std, key)
        actions = flow.decode(flow_params, latents, observations)
        return jnp.clip(actions, -1.0, 1.0)

    return act
