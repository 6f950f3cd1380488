"""D4RL's maze2d collection recipe (lfjax.datagen.maze2d): planner, controller, stream, references."""

import numpy as np
import pytest

from lfjax.datagen import maze2d
from lfjax.envs import maze2d as maze_env

MAZES = ["umaze", "medium", "large"]


@pytest.mark.parametrize("maze", MAZES)
def test_planner_paths_are_shortest_and_connected(maze):
    layout = maze_env.get_layout(maze)
    planner = maze2d.MazePlanner(layout)
    dist = planner.distances_to(layout.goal_cell)
    assert set(dist) == set(layout.free_cells)  # The maze is connected.
    for start in layout.free_cells:
        path = planner.path_centres(start, layout.goal_cell)
        assert len(path) == max(dist[start], 1)
        np.testing.assert_allclose(path[-1], layout.goal)
        steps = np.abs(np.diff(np.vstack([maze_env.cell_center(layout, start), path]), axis=0))
        if start != layout.goal_cell:
            np.testing.assert_allclose(steps.sum(axis=1), 1.0)  # One cell at a time.


@pytest.mark.parametrize("maze", MAZES)
def test_noise_free_controller_reaches_goal_from_every_start(maze):
    """From every free cell and from seeded random starts, within the episode length."""
    layout = maze_env.get_layout(maze)
    env = maze_env.make_eval_env(maze, seed=0)
    policy = maze2d.ControllerPolicy(layout)
    starts = [{"start_cell": cell} for cell in layout.free_cells] + [None] * 5
    for options in starts:
        obs, _ = env.reset(options=options)
        policy.reset()
        rewards = []
        truncated = False
        while not truncated:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            assert not terminated
            rewards.append(reward)
        assert len(rewards) == layout.max_episode_steps
        first = rewards.index(1.0)  # ValueError if the goal was never reached.
        # Once there it stays: the rest of the episode is all reward.
        assert all(r == 1.0 for r in rewards[first + 20:]), (options, first)
    env.close()


def test_eval_env_reward_is_goal_reward_of_next_position():
    env = maze_env.make_eval_env("umaze", seed=1)
    obs, _ = env.reset()
    policy = maze2d.ControllerPolicy(env.unwrapped.layout)
    total = 0.0
    for _ in range(300):
        obs, reward, *_ = env.step(policy(obs))
        assert reward == maze_env.goal_reward(obs[:2], env.unwrapped.layout.goal)
        total += reward
    assert total > 0


def test_fast_physics_matches_point_env_step():
    """collect_stream steps MuJoCo directly; replaying its actions through PointEnv.step
    (the evaluation env's physics) gives bit-identical observations, wall contacts included."""
    layout = maze_env.get_layout("medium")
    stream = maze2d.collect_stream("medium", 3000, seed=3)
    sim = maze_env.make_point_maze(layout)
    obs = maze_env.reset_physics(sim, stream.observations[0, :2], stream.observations[0, 2:])
    replay = [obs]
    for action in stream.actions:
        obs, *_ = sim.point_env.step(action.astype(np.float64))
        replay.append(obs)
    np.testing.assert_array_equal(np.array(replay), stream.observations)
    sim.close()


def test_stream_deterministic_given_seed():
    a = maze2d.collect_stream("umaze", 2000, seed=5)
    b = maze2d.collect_stream("umaze", 2000, seed=5)
    c = maze2d.collect_stream("umaze", 2000, seed=6)
    for field in ("observations", "actions", "goals", "rewards"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.actions, c.actions)


def test_stream_resamples_goals():
    stream = maze2d.collect_stream("large", 5000, seed=0)
    changes = np.any(np.diff(stream.goals, axis=0) != 0, axis=1).sum()
    assert changes >= 10  # Goals are reached (or time out) and get redrawn.
    assert np.all(np.abs(stream.actions) <= 1.0)


def test_controller_clips_before_the_noise_is_added():
    """D4RL's get_action returns clip(PD, -1, 1); the generation script then adds the noise and
    clips again. Far from its waypoint the PD output is ~±10: noise added before the first clip
    (the v0 recipe) would leave the action at ±1."""
    layout = maze_env.get_layout("umaze")
    controller = maze2d.WaypointController(maze2d.MazePlanner(layout))
    start = maze_env.cell_center(layout, (3, 1))
    controller.set_goal((1, 1), *start)
    waypoint = maze_env.cell_center(layout, (3, 2))  # the first step of the path: one cell right
    ax, ay, reached = controller.act(*start, 0.0, 0.0)
    assert not reached
    assert 10 * (waypoint[0] - start[0]) == 10.0  # the unclipped PD output
    assert (ax, ay) == (1.0, 0.0)  # returned clipped
    assert maze2d.behaviour_action(ax, -0.5) == 0.5  # D4RL: clip(clip(10) - 0.5) = 0.5
    assert maze2d.behaviour_action(ax, 0.7) == 1.0
    assert maze2d.behaviour_action(-1.0, -0.3) == -1.0
    assert maze2d.behaviour_action(0.25, 0.1) == np.float32(0.35)  # stored as float32


def test_stream_saturation_matches_d4rl_recipe():
    """With D4RL's order about 31 % of action entries (54 % of rows) sit at exactly ±1 on
    umaze (SPEC.md 6); noise before the first clip gives 51 % (85 % of rows)."""
    stream = maze2d.collect_stream("umaze", 30_000, seed=0)
    saturated = np.abs(stream.actions) == 1.0
    assert 0.27 <= saturated.mean() <= 0.35, saturated.mean()
    assert 0.48 <= saturated.any(axis=1).mean() <= 0.60


def _d4rl_waypoint_cells(grid, start, goal):
    """D4RL's WaypointController._new_target on its grid: 50 sweeps of Q-iteration (discount
    0.99, reward 1 in the target cell) over the actions NOOP, UP, DOWN, LEFT, RIGHT =
    (0,0), (0,-1), (0,+1), (-1,0), (+1,0) in (row, col), then a greedy rollout with np.argmax
    (the first best action wins). Returns the cells visited after start."""
    grid = np.asarray(grid)
    rows, cols = grid.shape
    moves = [(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)]
    index = lambda cell: cell[0] * cols + cell[1]
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    nxt = np.zeros((len(cells), len(moves)), int)
    for i, (r, c) in enumerate(cells):
        for a, (dr, dc) in enumerate(moves):
            rr, cc = r + dr, c + dc
            legal = 0 <= rr < rows and 0 <= cc < cols and grid[rr, cc] == 0
            nxt[i, a] = index((rr, cc)) if legal else i
    reward = np.zeros(len(cells))
    reward[index(goal)] = 1.0
    q = np.zeros((len(cells), len(moves)))
    for _ in range(50):
        q = reward[:, None] + 0.99 * q.max(axis=1)[nxt]
    s, visited = index(start), []
    for _ in range(100):
        s = nxt[s, int(np.argmax(q[s]))]
        visited.append(cells[s])
        if s == index(goal):
            break
    return visited


@pytest.mark.parametrize("maze", MAZES)
def test_planner_breaks_ties_like_d4rl_value_iteration(maze):
    """Every (start, goal) pair of free cells takes D4RL's path, not just a shortest one
    (another tie order changes ~18 % of medium's pairs and ~8 % of large's)."""
    layout = maze_env.get_layout(maze)
    planner = maze2d.MazePlanner(layout)
    for goal in layout.free_cells:
        for start in layout.free_cells:
            expected = _d4rl_waypoint_cells(layout.grid, start, goal)
            centres = np.stack([maze_env.cell_center(layout, c) for c in expected])
            np.testing.assert_array_equal(planner.path_centres(start, goal), centres)


def test_reference_returns_expert_above_random():
    refs = maze2d.reference_returns("umaze", num_episodes=4, seed=0)
    assert refs.controller > refs.random >= 0
    assert refs == maze2d.reference_returns("umaze", num_episodes=4, seed=0)
