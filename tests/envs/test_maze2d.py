"""maze2d's evaluation environment (lfjax.envs.maze2d): layouts, frame, reward, starts."""

import gymnasium
import numpy as np
import pytest

from lfjax.envs import maze2d

# D4RL's layouts (d4rl/pointmaze/maze_model.py), outer wall included; G = evaluation goal.
D4RL_LAYOUTS = {
    "umaze": ["#####", "#GOO#", "###O#", "#OOO#", "#####"],
    "medium": ["########", "#OO##OO#", "#OO#OOO#", "##OOO###", "#OO#OOO#", "#O#OO#O#",
               "#OOO#OG#", "########"],
    "large": ["############", "#OOOO#OOOOO#", "#O##O#O#O#O#", "#OOOOOO#OOO#", "#O####O###O#",
              "#OO#O#OOOOO#", "##O#O#O#O###", "#OO#OOO#OGO#", "############"],
}
MAZES = list(D4RL_LAYOUTS)


@pytest.mark.parametrize("maze", MAZES)
def test_layouts_match_d4rl(maze):
    layout = maze2d.get_layout(maze)
    rows = D4RL_LAYOUTS[maze]
    assert layout.grid == tuple(tuple(int(ch == "#") for ch in row) for row in rows)
    (goal,) = [(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "G"]
    assert layout.goal_cell == goal


@pytest.mark.parametrize("maze", MAZES)
def test_cell_centres_match_gymnasium_robotics(maze):
    layout = maze2d.get_layout(maze)
    sim = maze2d.make_point_maze(layout)
    for cell in layout.free_cells:
        centre = maze2d.cell_center(layout, cell)
        np.testing.assert_allclose(centre, sim.maze.cell_rowcol_to_xy(np.array(cell)))
        assert maze2d.position_to_cell(layout, *centre) == cell
        assert maze2d.position_to_cell(layout, *(centre + 0.45)) == cell
    sim.close()


def test_reward_is_one_exactly_within_goal_radius():
    env = maze2d.Maze2dEnv("medium")
    env.reset(seed=0)
    goal = env.layout.goal
    direction = np.array([-1.0, 0.0])  # Towards the free cell (6, 5), away from walls.
    for distance, expected in ((0.0, 1.0), (0.499, 1.0), (0.501, 0.0), (0.8, 0.0)):
        # At rest with zero force the point does not move during the step.
        env._sim.point_env.set_state(goal + distance * direction, np.zeros(2))
        obs, reward, *_ = env.step(np.zeros(2, np.float32))
        np.testing.assert_allclose(obs[:2], goal + distance * direction, atol=1e-9)
        assert reward == expected
    positions = goal + np.array([[0.5, 0.0], [0.0, -0.5], [0.3, 0.4], [0.3, 0.41]])
    np.testing.assert_array_equal(maze2d.goal_reward(positions, goal), [1, 1, 1, 0])


def test_starts_cover_free_cells_with_small_noise():
    env = maze2d.Maze2dEnv("umaze")
    layout = env.layout
    cells = set()
    for seed in range(60):
        obs, _ = env.reset(seed=seed)
        cell = maze2d.position_to_cell(layout, obs[0], obs[1])
        cells.add(cell)
        offset = obs[:2] - maze2d.cell_center(layout, cell)
        assert np.all(np.abs(offset) <= maze2d.START_POSITION_NOISE)
    assert cells == set(layout.free_cells)  # The goal cell included, as D4RL.


def test_sync_vector_env_autoresets_and_is_deterministic():
    def rollout():
        envs = gymnasium.vector.SyncVectorEnv(
            [lambda s=s: maze2d.make_eval_env("umaze", seed=s) for s in (0, 1)]
        )
        envs.action_space.seed(0)
        obs, _ = envs.reset()
        trace, truncations = [obs], 0
        for _ in range(2 * 300 + 5):
            obs, _, terminated, truncated, _ = envs.step(envs.action_space.sample())
            assert not terminated.any()
            truncations += int(truncated.sum())
            trace.append(obs)
        envs.close()
        return np.array(trace), truncations

    first, truncations = rollout()
    second, _ = rollout()
    assert truncations == 4
    np.testing.assert_array_equal(first, second)
    assert first.shape == (606, 2, 4)
