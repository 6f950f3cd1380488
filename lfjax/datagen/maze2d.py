"""D4RL's maze2d collection recipe (SPEC.md 6) on lfjax's maze2d physics: shortest paths over
the cells, the waypoint controller, the noisy behaviour actions, the collection stream and the
reference returns. `lfjax.datagen.generate` stores the stream as a Minari dataset.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Callable, Iterator

import numpy as np
from gymnasium import spaces

from lfjax.envs.maze2d import (
    START_POSITION_NOISE,
    START_VELOCITY_STD,
    Cell,
    MazeLayout,
    cell_center,
    get_layout,
    goal_reward,
    make_eval_env,
    make_point_maze,
    physics_step,
    position_to_cell,
    reset_physics,
)

P_GAIN = 10.0
D_GAIN = -1.0
SWITCH_RADIUS = 0.1  # D4RL's solve_thresh: next waypoint (and "goal reached") within this.
ACTION_NOISE_STD = 0.5
# D4RL offsets intermediate waypoints by -U(0, 0.2) per coordinate; we use a symmetric
# U(-0.1, 0.1) so the jitter has no preferred direction. The final waypoint is exact.
WAYPOINT_JITTER = 0.1
# Bump when the stream's recipe changes so that datasets record which one made them, and bump
# registry.MAZE2D_DATASET_VERSION and loading.MAZE2D_RECIPE_VERSION with it, so that a dataset
# of an older recipe is never loaded as a current one.
# 1 (dataset v0, 2026-11-26): noise added to the unclipped PD output, ties broken in another
#   order: 51 % of action entries at exactly ±1 instead of D4RL's 31 %.
# 2 (dataset v1, 2026-11-30): D4RL's order (clip, noise, clip) and D4RL's tie order.
RECIPE_VERSION = 2


class MazePlanner:
    """Shortest paths over the free cells of a layout (4-connected moves).

    D4RL runs 50 sweeps of value iteration with discount 0.99 on the cell grid and follows the
    greedy action; on a grid whose only reward is the goal that is a shortest path, which a
    breadth-first search from the goal gives exactly. Paths are cached per (start, goal).

    Ties between equally short paths break as D4RL's ``np.argmax`` over its Q-values does:
    the first best action in its order NOOP, UP, DOWN, LEFT, RIGHT, where on D4RL's grid
    (indexed [row, col] of the layout string, d4rl/pointmaze/gridcraft/grid_env.py) UP is
    (0, -1), DOWN (0, +1), LEFT (-1, 0) and RIGHT (+1, 0) in (row, col). Equally distant
    cells get bit-identical values there (the same products of 0.99), so these ties are exact.
    NOOP is never best away from the goal.
    """

    # (drow, dcol) in D4RL's action order; `min` keeps the first of equal keys, as argmax.
    MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))

    def __init__(self, layout: MazeLayout):
        self.layout = layout
        self._free = set(layout.free_cells)
        self._distances: dict[Cell, dict[Cell, int]] = {}
        self._paths: dict[tuple[Cell, Cell], np.ndarray] = {}

    def _neighbours(self, cell: Cell) -> Iterator[Cell]:
        for dr, dc in self.MOVES:
            nxt = (cell[0] + dr, cell[1] + dc)
            if nxt in self._free:
                yield nxt

    def distances_to(self, goal: Cell) -> dict[Cell, int]:
        """Number of moves from every free cell to goal."""
        if goal not in self._distances:
            if goal not in self._free:
                raise ValueError(f"goal cell {goal} is not a free cell of {self.layout.name}")
            dist = {goal: 0}
            queue = collections.deque([goal])
            while queue:
                cell = queue.popleft()
                for nxt in self._neighbours(cell):
                    if nxt not in dist:
                        dist[nxt] = dist[cell] + 1
                        queue.append(nxt)
            self._distances[goal] = dist
        return self._distances[goal]

    def path_centres(self, start: Cell, goal: Cell) -> np.ndarray:
        """Cell centres [L, 2] along a shortest path, start excluded and goal included
        (just the goal when start == goal). A start off the free cells (inside a wall's
        margin) plans from its nearest free neighbour."""
        key = (start, goal)
        if key not in self._paths:
            dist = self.distances_to(goal)
            cell = start if start in dist else self._nearest_free(start, dist)
            cells = [] if cell == start else [cell]
            while cell != goal:
                cell = min(self._neighbours(cell), key=lambda c: dist.get(c, math.inf))
                cells.append(cell)
            if not cells:
                cells = [goal]
            self._paths[key] = np.stack([cell_center(self.layout, c) for c in cells])
        return self._paths[key]

    def _nearest_free(self, cell: Cell, dist: dict[Cell, int]) -> Cell:
        return min(dist, key=lambda c: (abs(c[0] - cell[0]) + abs(c[1] - cell[1]), dist[c]))


class WaypointController:
    """D4RL's maze2d waypoint controller: PD control towards the next waypoint of a planned path.

    action = clip(P (waypoint - position) + D velocity, -1, 1) with P = 10, D = -1 (D4RL's
    ``get_action`` ends with the clip, before any noise is added); the
    waypoint advances once the position is within 0.1 of it; the goal counts as reached within
    0.1 of the goal cell's centre, after which the controller holds the point there.
    D4RL also requires the per-step displacement to be under 0.1 to advance; PointEnv clips the
    speed to 5 with dt = 0.01, so that condition always holds and is left out.

    Works on Python floats: the collection stream calls it a million times.
    """

    def __init__(
        self,
        planner: MazePlanner,
        waypoint_jitter: float = 0.0,
        rng: np.random.Generator | None = None,
    ):
        self.planner = planner
        self.waypoint_jitter = waypoint_jitter
        self._rng = rng if rng is not None else np.random.default_rng(0)
        self._waypoints: list[tuple[float, float]] = []
        self._index = 0
        self.goal_cell: Cell | None = None
        self._gx = self._gy = 0.0

    def set_goal(self, goal_cell: Cell, x: float, y: float) -> None:
        """Plans from the cell containing (x, y) to goal_cell."""
        start = position_to_cell(self.planner.layout, x, y)
        centres = self.planner.path_centres(start, goal_cell).copy()
        if self.waypoint_jitter > 0 and len(centres) > 1:
            jitter = self._rng.uniform(-1.0, 1.0, size=(len(centres) - 1, 2))
            centres[:-1] += self.waypoint_jitter * jitter
        self._waypoints = [(float(wx), float(wy)) for wx, wy in centres]
        self._index = 0
        self.goal_cell = goal_cell
        self._gx, self._gy = (float(v) for v in centres[-1])

    def act(self, x: float, y: float, vx: float, vy: float) -> tuple[float, float, bool]:
        """One control step -> (ax, ay, goal_reached), the action clipped to [-1, 1] as D4RL's
        ``get_action`` returns it."""
        gx, gy = self._gx, self._gy
        reached = (x - gx) ** 2 + (y - gy) ** 2 < SWITCH_RADIUS**2
        if reached:
            wx, wy = gx, gy
        else:
            wx, wy = self._waypoints[self._index]
            close = (x - wx) ** 2 + (y - wy) ** 2 < SWITCH_RADIUS**2
            if close and self._index < len(self._waypoints) - 1:
                self._index += 1
        ax = _clip1(P_GAIN * (wx - x) + D_GAIN * vx)
        ay = _clip1(P_GAIN * (wy - y) + D_GAIN * vy)
        return ax, ay, reached


def _clip1(v: float) -> float:
    return -1.0 if v < -1.0 else (1.0 if v > 1.0 else v)


def behaviour_action(controller_action: float, noise: float) -> float:
    """One entry of a stored action: D4RL's generation script adds the noise to the
    controller's already clipped action and clips again, clip(clip(pd) + noise). Rounded to
    float32 so that the stored action is exactly the applied one.

    The order matters: far from a waypoint the PD output is about ±10, and noise added before
    the first clip would almost never move it off ±1 (51 % of entries saturated instead of
    D4RL's 31 %, measured)."""
    return float(np.float32(_clip1(controller_action + noise)))


class ControllerPolicy:
    """The noise-free waypoint controller as a policy obs [4] -> action [2] float32, driving
    to the evaluation goal (the ref_max_score policy). Call reset() at every episode start.

    replan_each_episode=False reproduces D4RL's reference script: its controller replans only
    when the target changes, which on the fixed evaluation goal means once, so from the second
    episode on it follows the finished plan's last waypoint (the goal) in a straight line and
    often stalls against a wall. That is why D4RL's maze2d ref_max_scores are low.
    """

    def __init__(self, layout: MazeLayout, replan_each_episode: bool = True):
        self.layout = layout
        self.replan_each_episode = replan_each_episode
        self._controller = WaypointController(MazePlanner(layout))
        self._planned = False

    def reset(self) -> None:
        if self.replan_each_episode:
            self._planned = False

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x, y, vx, vy = (float(v) for v in obs[:4])
        if not self._planned:
            self._controller.set_goal(self.layout.goal_cell, x, y)
            self._planned = True
        ax, ay, _ = self._controller.act(x, y, vx, vy)
        return np.array([ax, ay], np.float32)


@dataclasses.dataclass(frozen=True)
class Stream:
    """One continuous collection stream of N steps.

    observations [N+1, 4] float64: observations[t] before action t, observations[t+1] after.
    actions [N, 2] float32: the applied (noisy, clipped) actions.
    goals [N+1, 2] float64: the behaviour goal in force when observations[t] was recorded
        (the controller's goal-cell centre, not the evaluation goal).
    rewards [N] float32: relabeled to the evaluation goal from observations[t+1].
    """

    observations: np.ndarray
    actions: np.ndarray
    goals: np.ndarray
    rewards: np.ndarray


def collect_stream(
    maze_name: str,
    num_steps: int,
    seed: int = 0,
    action_noise_std: float = ACTION_NOISE_STD,
    progress: Callable[[int], None] | None = None,
) -> Stream:
    """D4RL's maze2d collection as one continuous stream (SPEC.md 6).

    The point starts in a random free cell; the waypoint controller drives to a random goal
    cell, each of its (clipped) actions gets N(0, action_noise_std²) noise and is clipped
    again (`behaviour_action`, D4RL's order); a new random goal
    cell is drawn when the goal is reached or after max_episode_steps steps on one goal (as
    D4RL's generator). The physics is never reset. Deterministic given seed.
    progress(k) is called with the number of steps done since its last call.
    """
    layout = get_layout(maze_name)
    goal_rng, noise_rng, jitter_rng, start_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    sim = make_point_maze(layout)
    model, data = sim.point_env.model, sim.point_env.data
    controller = WaypointController(MazePlanner(layout), WAYPOINT_JITTER, jitter_rng)
    free_cells = layout.free_cells
    goal_draws = goal_rng.integers(len(free_cells), size=num_steps // 10 + 16).tolist()

    start = free_cells[int(start_rng.integers(len(free_cells)))]
    noise = start_rng.uniform(-START_POSITION_NOISE, START_POSITION_NOISE, size=2)
    qvel0 = START_VELOCITY_STD * start_rng.standard_normal(2)
    obs0 = reset_physics(sim, cell_center(layout, start) + noise, qvel0)

    observations = np.empty((num_steps + 1, 4), np.float64)
    actions = np.empty((num_steps, 2), np.float32)
    goals = np.empty((num_steps + 1, 2), np.float64)
    observations[0] = obs0
    qpos, qvel = data.qpos, data.qvel

    def next_goal() -> Cell:
        nonlocal goal_draws
        if not goal_draws:
            goal_draws = goal_rng.integers(len(free_cells), size=num_steps // 10 + 16).tolist()
        return free_cells[goal_draws.pop()]

    controller.set_goal(next_goal(), float(obs0[0]), float(obs0[1]))
    gx, gy = cell_center(layout, controller.goal_cell)
    steps_on_goal = 0
    block = 20_000
    t = 0
    while t < num_steps:
        end = min(t + block, num_steps)
        noise = (action_noise_std * noise_rng.standard_normal((end - t, 2))).tolist()
        for i in range(end - t):
            x, y, vx, vy = qpos[0], qpos[1], qvel[0], qvel[1]
            ax, ay, reached = controller.act(x, y, vx, vy)
            nx, ny = noise[i]
            ax, ay = behaviour_action(ax, nx), behaviour_action(ay, ny)
            actions[t + i] = (ax, ay)
            goals[t + i] = (gx, gy)
            physics_step(model, data, ax, ay)
            observations[t + i + 1] = (qpos[0], qpos[1], qvel[0], qvel[1])
            steps_on_goal += 1
            if reached or steps_on_goal >= layout.max_episode_steps:
                controller.set_goal(next_goal(), qpos[0], qpos[1])
                gx, gy = cell_center(layout, controller.goal_cell)
                steps_on_goal = 0
        if progress is not None:
            progress(end - t)
        t = end
    goals[num_steps] = (gx, gy)
    sim.close()
    rewards = goal_reward(observations[1:, :2], layout.goal)
    return Stream(observations, actions, goals, rewards)


@dataclasses.dataclass(frozen=True)
class ReferenceReturns:
    """Mean undiscounted returns on the evaluation env.

    random: uniform random actions (ref_min_score). controller: the noise-free waypoint
    controller, replanned every episode (ref_max_score). controller_d4rl_style: the same
    controller replanned only once, as D4RL's reference script did (ControllerPolicy), kept
    for comparison with D4RL-normalized numbers only.
    """

    random: float
    controller: float
    controller_d4rl_style: float
    num_episodes: int
    seed: int


def reference_returns(maze_name: str, num_episodes: int = 100, seed: int = 0) -> ReferenceReturns:
    """Random-action policy and noise-free waypoint controller, num_episodes each, on the
    evaluation env (full max_episode_steps episodes). Deterministic given seed."""
    layout = get_layout(maze_name)

    def mean_return(policy: Callable[[np.ndarray], np.ndarray], reset: Callable[[], None], s: int):
        env = make_eval_env(maze_name, seed=s)
        returns = []
        for _ in range(num_episodes):
            obs, _ = env.reset()
            reset()
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy(obs))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        env.close()
        return float(np.mean(returns))

    # One env seed per policy, so each reference is reproducible on its own.
    action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    action_space.seed(seed)
    random_mean = mean_return(lambda _: action_space.sample(), lambda: None, seed)
    controller = ControllerPolicy(layout)
    controller_mean = mean_return(controller, controller.reset, seed + 1)
    stale = ControllerPolicy(layout, replan_each_episode=False)
    stale_mean = mean_return(stale, stale.reset, seed + 1)
    return ReferenceReturns(random_mean, controller_mean, stale_mean, num_episodes, seed)
