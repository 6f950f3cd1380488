"""Each loss of SPEC.md section 4 against a case small enough to compute by hand."""

import jax
import jax.numpy as jnp
import numpy as np

from lfjax.agent import losses


def test_td_target_uses_min_of_target_critics_and_terminals():
    rewards = jnp.array([1.0, 2.0])
    terminals = jnp.array([0.0, 1.0])
    next_q = jnp.array([[3.0, 5.0], [4.0, 1.0]])  # [critic, batch]
    y = losses.td_target(rewards, terminals, next_q, gamma=0.99)
    # min over critics = [3, 1]; the second transition is terminal.
    np.testing.assert_allclose(y, [1.0 + 0.99 * 3.0, 2.0], rtol=1e-6)


def test_critic_loss_is_sum_of_per_critic_mse():
    q = jnp.array([[1.0, 2.0], [0.0, 4.0]])
    target = jnp.array([1.0, 1.0])
    # critic 1: mean(0, 1) = 0.5; critic 2: mean(1, 9) = 5.
    np.testing.assert_allclose(losses.critic_loss(q, target), 5.5, rtol=1e-6)


def test_advantage_weights_exponentiate_with_lambda_and_clip_at_100():
    q = jnp.array([1.0, 0.0, 2.0, -1.0])
    v = jnp.array([0.0, 0.0, 0.0, 0.0])
    w = losses.advantage_weights(q, v, awac_lambda=1 / 3, weight_clip=100.0)
    # exp(3) = 20.09 passes; exp(6) = 403 is clipped; exp(-3) passes.
    np.testing.assert_allclose(w, [np.exp(3.0), 1.0, 100.0, np.exp(-3.0)], rtol=1e-5)
    # A huge advantage overflows exp to inf before the clip: still exactly 100.
    big = losses.advantage_weights(jnp.array([1e4]), jnp.array([0.0]), 1 / 3, 100.0)
    np.testing.assert_array_equal(big, [100.0])


def test_advantage_weights_carry_no_gradient():
    def f(q, v):
        return jnp.sum(losses.advantage_weights(q, v, 1 / 3, 100.0))

    gq, gv = jax.grad(f, argnums=(0, 1))(jnp.array([0.1, 0.2]), jnp.array([0.0, 0.0]))
    np.testing.assert_array_equal(gq, 0.0)
    np.testing.assert_array_equal(gv, 0.0)


def test_actor_loss_is_weighted_l1_mean_over_batch_and_action_dims():
    weights = jnp.array([1.0, 2.0])
    policy_actions = jnp.array([[0.0, 0.0], [1.0, 1.0]])
    actions = jnp.array([[1.0, -1.0], [0.0, 0.5]])
    # |diff| = [[1, 1], [1, .5]]; weighted [[1, 1], [2, 1]]; mean over 4 entries = 1.25.
    np.testing.assert_allclose(losses.actor_loss(weights, policy_actions, actions), 1.25, rtol=1e-6)
    # The gradient reaches the policy actions (sign of the L1), not the weights.
    g = jax.grad(losses.actor_loss, argnums=1)(weights, policy_actions, actions)
    np.testing.assert_allclose(g, np.array([[-1.0, 1.0], [2.0, 2.0]]) / 4)
