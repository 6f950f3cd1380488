"""maze2d's evaluation environment on gymnasium-robotics PointMaze: maze geometry, the relabeled
sparse reward, D4RL's starts, and the gymnasium ids lfjax/maze2d-<maze>-v0.

Coordinates are gymnasium-robotics': cell (row, col) of the layout (outer wall included) has its
centre at x = col + 0.5 - width / 2, y = height / 2 - (row + 0.5) (maze_size_scaling = 1), so x grows
with the column and y shrinks as the row grows. D4RL's own maze2d used x = row, y = col.

What deliberately differs from gymnasium-robotics' PointMaze task (SPEC.md 6):
- the goal is the exact centre of the evaluation goal cell (PointMaze adds ±0.25 noise to it);
- the reward is 1.0 when the position is within GOAL_RADIUS = 0.5 of it, as D4RL (PointMaze: 0.45);
- starts are drawn uniformly over all free cells, the goal cell included, with ±0.1 position noise
  and N(0, 0.1²) velocity, as D4RL's maze2d (PointMaze: ±0.25 and never the goal cell).

The datasets are made by D4RL's collection recipe in `lfjax.datagen.maze2d`, on this physics.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Sequence

import farama_notifications
import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces

# gymnasium_robotics prints a notice about its Adroit envs' rewards on import; lfjax never
# uses those envs, and the notice reads like a problem with the user's run.
farama_notifications.notifications.pop("gymnasium_robotics", None)

from gymnasium_robotics.envs.maze import maps  # noqa: E402
from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv  # noqa: E402

Cell = tuple[int, int]

GOAL_RADIUS = 0.5  # D4RL's sparse radius; gymnasium-robotics' PointMaze uses 0.45.
START_POSITION_NOISE = 0.1  # D4RL maze2d reset: ±0.1 (PointMaze: ±0.25).
START_VELOCITY_STD = 0.1  # D4RL maze2d reset: N(0, 0.1²) velocity.
# PointEnv clips |qvel| to this before every step.
MAX_SPEED = 5.0


@dataclasses.dataclass(frozen=True)
class MazeLayout:
    """One maze: the grid (1 = wall, 0 = free, outer wall included) and its evaluation task.

    Attributes:
        name: "umaze" | "medium" | "large".
        grid: rows of the layout, identical to gymnasium-robotics' map (and to D4RL's string).
        goal_cell: (row, col) of the evaluation goal, D4RL's 'G'.
        max_episode_steps: evaluation episode length (D4RL: 300 / 600 / 800).
        d4rl_num_steps: size of D4RL's dataset for this maze (1M / 2M / 4M).
    """

    name: str
    grid: tuple[tuple[int, ...], ...]
    goal_cell: Cell
    max_episode_steps: int
    d4rl_num_steps: int

    @property
    def height(self) -> int:
        return len(self.grid)

    @property
    def width(self) -> int:
        return len(self.grid[0])

    @property
    def free_cells(self) -> tuple[Cell, ...]:
        """Free cells in row-major order."""
        return tuple(
            (r, c) for r in range(self.height) for c in range(self.width) if self.grid[r][c] == 0
        )

    @property
    def goal(self) -> np.ndarray:
        """[2] (x, y) of the evaluation goal: the exact centre of goal_cell."""
        return cell_center(self, self.goal_cell)

    @property
    def gym_id(self) -> str:
        """The gymnasium id of this maze's evaluation environment (registered below)."""
        return f"lfjax/maze2d-{self.name}-v0"


def _grid(rows: Sequence[Sequence[Any]]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v) for v in row) for row in rows)


MAZES: dict[str, MazeLayout] = {
    "umaze": MazeLayout("umaze", _grid(maps.U_MAZE), (1, 1), 300, 1_000_000),
    "medium": MazeLayout("medium", _grid(maps.MEDIUM_MAZE), (6, 6), 600, 2_000_000),
    "large": MazeLayout("large", _grid(maps.LARGE_MAZE), (7, 9), 800, 4_000_000),
}


def get_layout(maze_name: str) -> MazeLayout:
    if maze_name not in MAZES:
        raise ValueError(f"unknown maze {maze_name!r}; known: {', '.join(MAZES)}")
    return MAZES[maze_name]


def cell_center(layout: MazeLayout, cell: Cell) -> np.ndarray:
    """(row, col) -> [2] (x, y) of the cell's centre."""
    row, col = cell
    return np.array([col + 0.5 - layout.width / 2, layout.height / 2 - (row + 0.5)])


def position_to_cell(layout: MazeLayout, x: float, y: float) -> Cell:
    """(x, y) -> (row, col) of the cell containing it, clamped to the grid."""
    row = math.floor(layout.height / 2 - y)
    col = math.floor(x + layout.width / 2)
    return min(max(row, 0), layout.height - 1), min(max(col, 0), layout.width - 1)


def where_episodes_end(maze_name: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Final positions [..., 2] -> (distance to the evaluation goal [...], cell (row, col)
    [..., 2] int): where a policy's episodes stop, to tell a seed that waits in a corner from
    one that circles the goal."""
    layout = get_layout(maze_name)
    positions = np.asarray(positions, np.float64)
    distance = np.linalg.norm(positions - layout.goal, axis=-1)
    flat = positions.reshape(-1, 2)
    cells = np.array([position_to_cell(layout, x, y) for x, y in flat], np.int64)
    return distance, cells.reshape(*positions.shape[:-1], 2)


def goal_reward(positions: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Sparse relabeled reward: positions [..., 2], goal [2] -> [...] float32 in {0, 1}."""
    distance = np.linalg.norm(np.asarray(positions, np.float64) - goal, axis=-1)
    return (distance <= GOAL_RADIUS).astype(np.float32)


def make_point_maze(layout: MazeLayout, render_mode: str | None = None) -> PointMazeEnv:
    sim = PointMazeEnv(
        maze_map=[list(row) for row in layout.grid],
        render_mode=render_mode,
        continuing_task=True,
        reset_target=False,
    )
    # The model is compiled; the maze XML it leaves in the temp directory is no longer needed.
    try:
        os.remove(sim.tmp_xml_file_path)
    except OSError:
        pass
    # Put the red target marker on our exact goal (rendering only).
    sim.goal = layout.goal.copy()
    sim.update_target_site_pos()
    return sim


def physics_step(model: mujoco.MjModel, data: mujoco.MjData, ax: float, ay: float) -> None:
    """PointEnv.step without its Python overhead: clip the velocity, apply the (already
    clipped) action, one MuJoCo step. tests/envs checks it matches PointEnv.step exactly."""
    qvel = data.qvel
    qvel[0] = min(max(qvel[0], -MAX_SPEED), MAX_SPEED)
    qvel[1] = min(max(qvel[1], -MAX_SPEED), MAX_SPEED)
    data.ctrl[0] = ax
    data.ctrl[1] = ay
    mujoco.mj_step(model, data)


def reset_physics(sim: PointMazeEnv, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    point = sim.point_env
    mujoco.mj_resetData(point.model, point.data)
    point.set_state(np.asarray(qpos, np.float64), np.asarray(qvel, np.float64))
    return np.concatenate([point.data.qpos, point.data.qvel])


class Maze2dEnv(gymnasium.Env):
    """maze2d evaluation environment: PointMaze physics with D4RL's task (module docstring).

    Observation: Box [4] float64 = (x, y, vx, vy). Action: Box [2] float32 in [-1, 1].
    Reward: 1.0 when the position after the step is within 0.5 of the evaluation goal-cell
    centre, else 0.0 (exactly the generated datasets' reward). Never terminates; the
    registered ids (lfjax/maze2d-<maze>-v0) truncate at the maze's max_episode_steps.
    reset(options={"start_cell": (row, col)}) picks the start cell.
    """

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 100}

    def __init__(self, maze_name: str = "umaze", render_mode: str | None = None):
        self.layout = get_layout(maze_name)
        self.render_mode = render_mode
        self._sim = make_point_maze(self.layout, render_mode)
        self._goal = self.layout.goal
        self._free_cells = self.layout.free_cells
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if options.get("start_cell") is not None:
            start = tuple(int(v) for v in options["start_cell"])
            if start not in self._free_cells:
                raise ValueError(f"start_cell {start} is not a free cell of {self.layout.name}")
        else:
            start = self._free_cells[int(self.np_random.integers(len(self._free_cells)))]
        noise = self.np_random.uniform(-START_POSITION_NOISE, START_POSITION_NOISE, size=2)
        qvel = START_VELOCITY_STD * self.np_random.standard_normal(2)
        obs = reset_physics(self._sim, cell_center(self.layout, start) + noise, qvel)
        return obs, {"success": bool(goal_reward(obs[:2], self._goal) > 0)}

    def step(self, action):
        obs, _, _, _, _ = self._sim.point_env.step(np.asarray(action, np.float64))
        reward = float(goal_reward(obs[:2], self._goal))
        return obs, reward, False, False, {"success": reward > 0}

    @property
    def point_env(self):
        """The gymnasium-robotics PointEnv whose MuJoCo model and data this env steps (what
        `lfjax.envs.batched` copies)."""
        return self._sim.point_env

    def render(self):
        return self._sim.render()

    def close(self):
        self._sim.close()


for _layout in MAZES.values():
    if _layout.gym_id not in gymnasium.registry:
        gymnasium.register(
            id=_layout.gym_id,
            entry_point="lfjax.envs.maze2d:Maze2dEnv",
            kwargs={"maze_name": _layout.name},
            max_episode_steps=_layout.max_episode_steps,
        )


def make_eval_env(maze_name: str, seed: int | None = None) -> gymnasium.Env:
    """The registered evaluation env, truncated at max_episode_steps; seeded when seed is
    given (its first reset and its action space), so later unseeded resets are reproducible."""
    env = gymnasium.make(get_layout(maze_name).gym_id)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


