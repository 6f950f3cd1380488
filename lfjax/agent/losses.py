"""The losses of latent AWAC, one small function per line of SPEC.md section 4.

Everything here is array math on already computed Q-values and actions; the networks, the
sampling and the frozen decoder are wired together in `lfjax.agent.train`.
"""

import chex
import jax
import jax.numpy as jnp


def td_target(
    rewards: jnp.ndarray,
    terminals: jnp.ndarray,
    next_q: jnp.ndarray,
    gamma: float,
) -> jnp.ndarray:
    """y = r + gamma (1 - d) min(Q1', Q2')(s', a'): rewards, terminals [B], next_q [C, B] -> [B].

    `next_q` holds the target critics at (s', decode(z', s')) with z' ~ pi(s'); the target is a
    constant for the critic step, so no gradient flows through it.
    """
    chex.assert_rank([rewards, terminals, next_q], [1, 1, 2])
    chex.assert_equal_shape([rewards, terminals, next_q[0]])
    y = rewards + gamma * (1.0 - terminals) * jnp.min(next_q, axis=0)
    return jax.lax.stop_gradient(y)


def td_target_bounds(
    reward_min: jnp.ndarray, reward_max: jnp.ndarray, gamma: float
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The range every true return lies in, given the data's reward range: scalars -> (lo, hi).

    Forever at the lowest reward gives r_min / (1 - gamma), one step and a terminal gives r_min
    (the lower of the two when r_min > 0); likewise for the highest. The TD-target clip
    (AWACConfig.td_target_clip) holds targets inside it.
    """
    lo = jnp.minimum(reward_min, reward_min / (1.0 - gamma))
    hi = jnp.maximum(reward_max, reward_max / (1.0 - gamma))
    return lo, hi


def critic_loss(q: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """MSE(Q1(s,a), y) + MSE(Q2(s,a), y): q [C, B], target [B] -> scalar.

    A sum over critics of per-critic means, as the official code adds two mse_loss values.
    """
    chex.assert_rank([q, target], [2, 1])
    chex.assert_equal_shape([q[0], target])
    return jnp.sum(jnp.mean(jnp.square(q - target[None]), axis=1))


def advantage_weights(
    q: jnp.ndarray,
    v: jnp.ndarray,
    awac_lambda: float,
    weight_clip: float,
) -> jnp.ndarray:
    """w = min(exp((q - v) / lambda), clip), no gradient: q = min Q(s, a), v = min Q(s, a_pi), both [B] -> [B].

    The clip applies to the exponential (as torch.clamp_max does), so exp may overflow to inf
    before it and still give a finite, clipped weight.
    """
    chex.assert_rank([q, v], 1)
    chex.assert_equal_shape([q, v])
    w = jnp.minimum(jnp.exp((q - v) / awac_lambda), weight_clip)
    return jax.lax.stop_gradient(w)


def actor_loss(
    weights: jnp.ndarray,
    policy_actions: jnp.ndarray,
    actions: jnp.ndarray,
    regression: str = "l1",
) -> jnp.ndarray:
    """mean(w * |decode(z, s) - a|): weights [B], policy_actions and actions [B, A] -> scalar.

    An L1 regression in action space, weighted by the advantage. The mean runs over batch and
    action dimensions together, as torch's l1_loss(reduction='none') times w[:, None] then
    .mean() does; `policy_actions` carry the gradient back through the frozen decoder.
    regression="l2" squares the error instead (AWACConfig.actor_regression): at one state
    the L1 pulls toward the weighted median of the data's actions, the L2 toward their
    weighted mean.
    """
    chex.assert_rank([weights, policy_actions, actions], [1, 2, 2])
    chex.assert_equal_shape([policy_actions, actions])
    chex.assert_equal_shape_prefix([weights, actions], 1)
    if regression == "l1":
        error = jnp.abs(policy_actions - actions)
    elif regression == "l2":
        error = jnp.square(policy_actions - actions)
    else:
        raise ValueError(f"unknown actor regression {regression!r}; choose l1 or l2")
    return jnp.mean(weights[:, None] * error)


def actor_q_term(q_pi: jnp.ndarray) -> jnp.ndarray:
    """-mean(Q) / mean|Q| with the denominator held constant: q_pi [B] -> scalar.

    min Q(s, decode(z, s)) at the actor's own latents (AWACConfig.actor_q_weight); TD3+BC's
    normalization, so that the term's gradient does not grow with the scale of the returns.
    The floor of 1e-3 keeps it finite while untrained critics give Q ~ 0.
    """
    chex.assert_rank(q_pi, 1)
    scale = jax.lax.stop_gradient(jnp.maximum(jnp.mean(jnp.abs(q_pi)), 1e-3))
    return -jnp.mean(q_pi) / scale
