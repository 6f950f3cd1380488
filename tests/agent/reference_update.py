"""The paper's latent AWAC update as it was before the stability options (commit 56c6bdc),
kept verbatim as the reference that `make_update_step` with every option off must equal bit
for bit (tests/agent/test_stability_options.py). Not for use outside the tests."""

import chex
import jax
import jax.numpy as jnp
import optax

from lfjax.agent import losses
from lfjax.agent.networks import TanhGaussianActor, TwinCritic, sample_latents


def _apply(params, updates, learning_rate):
    return optax.apply_updates(params, jax.tree.map(lambda u: -learning_rate * u, updates))


def _all_finite(tree):
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def reference_update_step(config, flow):
    """Returns update_step(state, flow_params, dataset, key) -> (state, metrics) for one seed.

    flow_params: the frozen flow's parameters (`flow.freeze(params)`); never differentiated.
    dataset: transitions with fields observations [M, S], actions [M, A], rewards [M],
        next_observations [M, S], terminals [M] (normalized states, float32).
    key: randomness of this update (batch indices and the three policy samples).
    metrics: scalars critic_loss, actor_loss, q_mean, weight_mean, weight_clipped_frac, finite.
    """
    actor = TanhGaussianActor(flow.latent_dim, config.hidden_dims, config.log_std_min,
                              config.log_std_max)
    critic = TwinCritic(hidden_dims=config.hidden_dims)
    actor_opt, critic_opt = optax.scale_by_adam(), optax.scale_by_adam()

    def update_step(state, flow_params, dataset, key):
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
        target = losses.td_target(rewards, terminals, next_q, hp.gamma)

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

        def actor_loss_fn(actor_params):
            mean, log_std = actor.apply(actor_params, obs)
            latents = sample_latents(mean, log_std, actor_key)
            policy_actions = flow.decode(flow_params, latents, obs)
            return losses.actor_loss(weights, policy_actions, actions)

        actor_loss, actor_grads = jax.value_and_grad(actor_loss_fn)(state.actor_params)
        actor_updates, actor_opt_state = actor_opt.update(actor_grads, state.actor_opt_state)
        actor_params = _apply(state.actor_params, actor_updates, hp.actor_lr)

        target_critic_params = optax.incremental_update(
            critic_params, state.target_critic_params, hp.tau
        )

        new_state = state.replace(
            actor_params=actor_params,
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
            "finite": finite,
        }
        return new_state, metrics

    return update_step
