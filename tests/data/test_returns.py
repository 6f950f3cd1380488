"""The data's discounted Monte-Carlo returns: trajectories follow the stored rows, break at
terminals and wherever the next row does not start where this one ended."""

import numpy as np
import pytest

from lfjax.data import Transitions
from lfjax.data.returns import continues, discounted_returns, mean_discounted_return


def _episode_rows(positions, rewards, terminals):
    """Rows of consecutive positions: row t goes from positions[t] to positions[t + 1]."""
    obs = np.asarray(positions[:-1], np.float32)[:, None].repeat(2, axis=1)
    nxt = np.asarray(positions[1:], np.float32)[:, None].repeat(2, axis=1)
    return obs, nxt, np.asarray(rewards, np.float32), np.asarray(terminals, np.float32)


def test_returns_of_a_hand_made_episode():
    # One episode of four steps, rewards 0, 0, 1, 1, gamma 0.5, no terminal at the end:
    # G3 = 1, G2 = 1 + 0.5, G1 = 0.5 * 1.5, G0 = 0.5 * 0.75.
    obs, nxt, r, d = _episode_rows([0, 1, 2, 3, 4], [0, 0, 1, 1], [0, 0, 0, 0])
    goes_on = continues(obs, nxt, d)
    np.testing.assert_array_equal(goes_on, [True, True, True, False])
    np.testing.assert_allclose(discounted_returns(r, d, goes_on, 0.5), [0.375, 0.75, 1.5, 1.0])


def test_a_terminal_and_a_jump_between_episodes_break_the_return():
    # Episode A: 2 steps ending in a terminal; episode B starts elsewhere (a jump, no flag):
    # 2 steps; episode C starts where B ended (a stream cut without a flag): it continues B.
    a = _episode_rows([0, 1, 2], [5, 5], [0, 1])
    b = _episode_rows([10, 11, 12], [1, 1], [0, 0])
    c = _episode_rows([12, 13], [4], [0])
    obs, nxt, r, d = (np.concatenate(parts) for parts in zip(a, b, c))
    goes_on = continues(obs, nxt, d)
    np.testing.assert_array_equal(goes_on, [True, False, True, True, False])
    g = discounted_returns(r, d, goes_on, 0.9)
    # A: 5 + 0.9 * 5, then 5 (its terminal stops B's return from leaking in).
    # B + C: 1 + 0.9 * (1 + 0.9 * 4), 1 + 0.9 * 4, 4.
    np.testing.assert_allclose(g, [9.5, 5.0, 1 + 0.9 * 4.6, 4.6, 4.0], rtol=1e-6)
    transitions = Transitions.from_numpy(obs, np.zeros((5, 2)), r, nxt, d)
    assert mean_discounted_return(transitions, 0.9) == pytest.approx(g.mean(), rel=1e-6)


def test_long_streams_are_scanned_not_recursed():
    # A 200k-row constant-reward stream: the return converges to r / (1 - gamma).
    n = 200_000
    pos = np.arange(n + 1, dtype=np.float32)
    obs, nxt = pos[:-1, None], pos[1:, None]
    d = np.zeros(n, np.float32)
    g = discounted_returns(np.ones(n, np.float32), d, continues(obs, nxt, d), 0.99)
    np.testing.assert_allclose(g[:1000], 100.0, rtol=1e-4)
    assert g[-1] == 1.0


def test_n_step_targets_sum_along_the_trajectory_and_bootstrap_where_it_stops():
    from lfjax.data.returns import n_step_transitions

    # Episode A: 2 steps ending in a terminal; B: 2 steps after a jump; C continues B.
    a = _episode_rows([0, 1, 2], [5, 5], [0, 1])
    b = _episode_rows([10, 11, 12], [1, 2], [0, 0])
    c = _episode_rows([12, 13], [4], [0])
    obs, nxt, r, d = (np.concatenate(parts) for parts in zip(a, b, c))
    data = Transitions.from_numpy(obs, np.zeros((5, 2)), r, nxt, d)
    out = n_step_transitions(data, 3, 0.5)
    # Row 0: 5 + 0.5 * 5, then the terminal: discount 0. Row 1: the terminal itself.
    # Row 2: 1 + 0.5 * 2 + 0.25 * 4, bootstrapping from C's next observation with 0.125.
    # Row 3: 2 + 0.5 * 4, then the data ends: 0.25. Row 4: 4, 0.5.
    np.testing.assert_allclose(out.rewards, [7.5, 5.0, 3.0, 4.0, 4.0])
    np.testing.assert_allclose(out.discounts, [0.0, 0.0, 0.125, 0.25, 0.5])
    np.testing.assert_array_equal(out.next_observations[:, 0], [2, 2, 13, 13, 13])
    np.testing.assert_array_equal(out.terminals, 0.0)
    # n = 1: the stored one-step targets, with gamma (1 - d) as the discount.
    one = n_step_transitions(data, 1, 0.5)
    np.testing.assert_array_equal(one.rewards, r)
    np.testing.assert_array_equal(one.next_observations, nxt)
    np.testing.assert_array_equal(one.discounts, 0.5 * (1 - d))
