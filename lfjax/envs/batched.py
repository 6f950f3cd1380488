"""Many copies of one evaluation environment behind one reset / step, for `lfjax.evaluation`.

    envs = make_batched_env(get_env_spec("maze2d-large"), num_envs=K)   # None if unsupported
    obs = envs.reset(seeds)                         # seeds [K] -> obs [K, S] float64
    obs, reward, terminated, truncated = envs.step(actions, active)
        # actions [K, A], active [K] bool -> obs [K, S] float64, reward [K] float64,
        # terminated [K] bool, truncated [K] bool

Copy k after reset(seeds) is the env after ``env.reset(seed=seeds[k])``; a step moves only the
active copies, and the inactive ones return their last observation, reward 0 and neither flag
(evaluation never steps a finished copy, so there are no autoresets). Two implementations:

- `BatchedEnv`: all copies in one MuJoCo call per step (`mujoco.batch.Batch`, C threads), with
  every number bit-identical to stepping K gymnasium envs one by one
  (tests/envs/test_batched.py): MuJoCo's batch keeps each copy's integration state (qpos,
  qvel, ctrl, warmstart, time, ...) and its mj_step is bit-identical to mj_step on one MjData
  per copy; the resets are the env's own (one reference env is reset with each seed and its
  MuJoCo state copied into the copy's row, so no RNG use is reproduced here); what the env's
  step does around mj_step (action clip, maze2d's speed clip, frame skip, reward, health,
  observation) is written out below in numpy over the copies with the same float operations
  and dtypes as the env's code, so every number rounds the same way; truncation is the
  TimeLimit's. Supported: maze2d (`lfjax.envs.maze2d.Maze2dEnv`), HalfCheetah-v5, Hopper-v5,
  Walker2d-v5, as `make_eval_env` of the registry builds them.
- `EnvLoop`: any gymnasium envs, one ``env.step`` each per step (the fallback).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable, Protocol, Sequence

import gymnasium
import mujoco
import mujoco.batch
import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv


# Everything mj_step reads from MjData: a copy of it is a copy of the simulation.
_INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION
# Wrappers of gymnasium.make that leave observations, rewards and actions as they are; with
# any other wrapper the env's step is not what the rules below reproduce.
_TRANSPARENT_WRAPPERS = (
    gymnasium.wrappers.TimeLimit,
    gymnasium.wrappers.OrderEnforcing,
    gymnasium.wrappers.PassiveEnvChecker,
)
# Where Maze2dEnv lives.
_MAZE2D_MODULE = "lfjax.envs.maze2d"
# Hopper-v5 and Walker2d-v5 clip the velocities in their observation to this (a literal there).
_LOCOMOTION_OBS_VELOCITY_CLIP = 10.0
# MuJoCo's batch threads pay off only with many copies per thread: on a 2-core machine, 640
# maze2d copies step 16 % faster on 2 threads, 80 copies 25 % slower.
_COPIES_PER_THREAD = 256


@dataclasses.dataclass(frozen=True)
class StepRule:
    """What one ``env.step`` does around its MuJoCo steps, over k copies at once.

    Attributes:
        frame_skip: mj_step calls per env step.
        controls: actions [k, A] -> ctrl [k, nu] float64, as the env sets data.ctrl.
        outcome: (qpos_before [k, nq], qpos [k, nq], qvel [k, nv], actions [k, A]) ->
            (obs [k, S] float64, reward [k] float64, terminated [k] bool) after the step.
        max_speed: when set, |qvel| is clipped to it before each step (PointEnv does).
    """

    frame_skip: int
    controls: Callable[[np.ndarray], np.ndarray]
    outcome: Callable[
        [np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        tuple[np.ndarray, np.ndarray, np.ndarray],
    ]
    max_speed: float | None = None


def _maze2d_rule(env) -> StepRule:
    """Maze2dEnv.step: float64 actions clipped to [-1, 1] (PointEnv.step), qvel clipped to
    ±MAX_SPEED, one mj_step; obs (qpos, qvel); reward goal_reward of the new position."""
    maze2d = sys.modules[_MAZE2D_MODULE]  # loaded: env is one of its Maze2dEnvs

    goal = env.layout.goal

    def controls(actions):
        return np.clip(np.asarray(actions, np.float64), -1.0, 1.0)

    def outcome(qpos_before, qpos, qvel, actions):
        obs = np.concatenate([qpos, qvel], axis=1)
        # The env returns float(goal_reward) per copy: the same {0, 1} as float64.
        reward = maze2d.goal_reward(qpos, goal).astype(np.float64)
        return obs, reward, np.zeros(len(qpos), bool)

    return StepRule(env.point_env.frame_skip, controls, outcome, maze2d.MAX_SPEED)


def _z_and_angle_healthy(env, qpos):
    # Walker2dEnv.is_healthy, and part of Hopper's; min < x < max is (min < x) and (x < max),
    # so NaN is unhealthy in both.
    z, angle = qpos[:, 1], qpos[:, 2]
    min_z, max_z = env._healthy_z_range
    min_angle, max_angle = env._healthy_angle_range
    return (min_z < z) & (z < max_z) & (min_angle < angle) & (angle < max_angle)


def _hopper_healthy(env, qpos, qvel):
    # HopperEnv.is_healthy: state_vector()[2:] inside the state range, z and angle in range.
    state = np.concatenate([qpos, qvel], axis=1)[:, 2:]
    min_state, max_state = env._healthy_state_range
    healthy_state = np.all(np.logical_and(min_state < state, state < max_state), axis=1)
    return healthy_state & _z_and_angle_healthy(env, qpos)


def _walker_healthy(env, qpos, qvel):
    return _z_and_angle_healthy(env, qpos)


# Exact classes, not subclasses: a subclass may step differently.
_LOCOMOTION = {
    # env class: (healthy(env, qpos, qvel) or None, clip of the observed velocities or None)
    HalfCheetahEnv: (None, None),
    HopperEnv: (_hopper_healthy, _LOCOMOTION_OBS_VELOCITY_CLIP),
    Walker2dEnv: (_walker_healthy, _LOCOMOTION_OBS_VELOCITY_CLIP),
}


def _locomotion_rule(env) -> StepRule:
    """The v5 step: ctrl = action, frame_skip mj_steps; reward forward_reward_weight * x
    velocity (+ healthy_reward while healthy) - ctrl_cost_weight * sum(action²); terminated when
    unhealthy (if terminate_when_unhealthy). The constants are the env's own attributes."""
    healthy, velocity_clip = _LOCOMOTION[type(env)]
    dt = env.dt
    first = 1 if env._exclude_current_positions_from_observation else 0

    def controls(actions):
        return np.asarray(actions, np.float64)

    def outcome(qpos_before, qpos, qvel, actions):
        x_velocity = (qpos[:, 0] - qpos_before[:, 0]) / dt
        forward_reward = env._forward_reward_weight * x_velocity
        # In the actions' own dtype (float32 from a policy), as the env: the cost is rounded to
        # float32 before it is subtracted from the float64 forward reward.
        ctrl_cost = env._ctrl_cost_weight * np.sum(np.square(actions), axis=-1)
        velocity = qvel if velocity_clip is None else np.clip(qvel, -velocity_clip, velocity_clip)
        obs = np.concatenate([qpos[:, first:], velocity], axis=1)
        if healthy is None:
            return obs, forward_reward - ctrl_cost, np.zeros(len(qpos), bool)
        is_healthy = healthy(env, qpos, qvel)
        reward = (forward_reward + is_healthy * env._healthy_reward) - ctrl_cost
        return obs, reward, ~is_healthy & bool(env._terminate_when_unhealthy)

    return StepRule(env.frame_skip, controls, outcome)


def _wrappers(env: gymnasium.Env) -> list[gymnasium.Wrapper]:
    """The wrapper chain of env, outermost first."""
    chain = []
    while isinstance(env, gymnasium.Wrapper):
        chain.append(env)
        env = env.env
    return chain


def _time_limit(env: gymnasium.Env) -> int | None:
    """max_episode_steps of env's TimeLimit, or None."""
    limits = [w._max_episode_steps for w in _wrappers(env)
              if isinstance(w, gymnasium.wrappers.TimeLimit)]
    return min(limits) if limits else None


def _mujoco_of(env) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """The model and data an unwrapped supported env steps."""
    point = getattr(env, "point_env", None)  # Maze2dEnv
    owner = env if point is None else point
    return owner.model, owner.data


class BatchedEnv:
    """K copies of one MuJoCo evaluation env stepped in one call (module docstring).

    Build it with `make_batched_env`. Not thread-safe; `close` releases the reference env.
    """

    def __init__(self, env: gymnasium.Env, rule: StepRule, num_envs: int,
                 nthread: int | None = None):
        """env: the reference env (as make_eval_env builds it) whose resets the copies take;
        rule: what its step does around mj_step; nthread: MuJoCo batch threads (default: one
        per _COPIES_PER_THREAD copies, at most the CPUs this process may use)."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        if any(not isinstance(w, _TRANSPARENT_WRAPPERS) for w in _wrappers(env)):
            raise ValueError(f"{env} has a wrapper that may change what a step returns")
        self.num_envs = num_envs
        self.max_episode_steps = _time_limit(env)
        self._env = env
        self._rule = rule
        self._model, self._data = _mujoco_of(env.unwrapped)
        if nthread is None:
            cpus = len(os.sched_getaffinity(0))
            nthread = max(1, min(cpus, num_envs // _COPIES_PER_THREAD))
        self._batch = mujoco.batch.Batch(self._model, num_envs, nthread=nthread)
        if self._batch.nstate != mujoco.mj_stateSize(self._model, _INTEGRATION):
            raise ValueError("MuJoCo's batch rows are not the model's integration state")
        self._qpos = self._batch.bind("qpos")  # [K, nq], live views of the state rows
        self._qvel = self._batch.bind("qvel")
        self._ctrl = self._batch.bind("ctrl")
        self._elapsed = np.zeros(num_envs, np.int64)
        self._obs: np.ndarray | None = None

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """seeds [K] -> obs [K, S] float64; copy k as after ``env.reset(seed=seeds[k])``."""
        seeds = np.asarray(seeds)
        if seeds.shape != (self.num_envs,):
            raise ValueError(f"need {self.num_envs} seeds, got shape {seeds.shape}")
        obs = []
        for k, seed in enumerate(seeds):
            obs.append(self._env.reset(seed=int(seed))[0])
            mujoco.mj_getState(self._model, self._data, self._batch.state[k], _INTEGRATION)
        self._elapsed[:] = 0
        self._obs = np.stack(obs).astype(np.float64)
        return self._obs.copy()

    def step(self, actions: np.ndarray, active: np.ndarray | None = None):
        """actions [K, A], active [K] bool (default all) -> obs [K, S] float64, reward [K]
        float64, terminated [K] bool, truncated [K] bool; inactive copies are not stepped."""
        if self._obs is None:
            raise RuntimeError("reset before step")
        active = np.ones(self.num_envs, bool) if active is None else np.asarray(active, bool)
        ids = np.flatnonzero(active)
        obs = self._obs.copy()
        reward = np.zeros(self.num_envs, np.float64)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        if ids.size:
            rule = self._rule
            actions = np.asarray(actions)[ids]
            if rule.max_speed is not None:
                self._qvel[ids] = np.clip(self._qvel[ids], -rule.max_speed, rule.max_speed)
            self._ctrl[ids] = rule.controls(actions)
            qpos_before = self._qpos[ids]  # a copy (fancy indexing)
            # None: all copies, which spares the batch checking the ids.
            self._batch.step(None if ids.size == self.num_envs else ids, nstep=rule.frame_skip)
            obs[ids], reward[ids], terminated[ids] = rule.outcome(
                qpos_before, self._qpos[ids], self._qvel[ids], actions
            )
            self._elapsed[ids] += 1
            if self.max_episode_steps is not None:
                truncated[ids] = self._elapsed[ids] >= self.max_episode_steps
        self._obs = obs
        return obs.copy(), reward, terminated, truncated

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> BatchedEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def step_rule(env: gymnasium.Env) -> StepRule | None:
    """The StepRule of an unwrapped env that BatchedEnv reproduces exactly, or None."""
    if type(env) in _LOCOMOTION:
        return _locomotion_rule(env)
    # A Maze2dEnv exists only once its module is loaded: no gymnasium-robotics import here.
    maze2d = sys.modules.get(_MAZE2D_MODULE)
    if maze2d is not None and type(env) is maze2d.Maze2dEnv:
        return _maze2d_rule(env)
    return None


class MakesEvalEnv(Protocol):
    """What make_batched_env needs of a spec (lfjax.data.registry.EnvSpec is one): typed
    structurally so that envs/, below the data stack, never names it."""

    def make_eval_env(self) -> gymnasium.Env: ...


def make_batched_env(spec: MakesEvalEnv, num_envs: int,
                     nthread: int | None = None) -> BatchedEnv | None:
    """spec.make_eval_env() as num_envs copies stepped together, or None when its env is not
    one BatchedEnv reproduces exactly (then step envs one by one: `EnvLoop`)."""
    env = spec.make_eval_env()
    rule = step_rule(env.unwrapped)
    if rule is None or any(not isinstance(w, _TRANSPARENT_WRAPPERS) for w in _wrappers(env)):
        env.close()
        return None
    return BatchedEnv(env, rule, num_envs, nthread)


class EnvLoop:
    """K gymnasium envs stepped one by one, with BatchedEnv's reset / step (any env)."""

    def __init__(self, envs: Sequence[gymnasium.Env]):
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self._obs: np.ndarray | None = None

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """seeds [K] -> obs [K, S], in the envs' observation dtype."""
        if len(seeds) != self.num_envs:
            raise ValueError(f"need {self.num_envs} seeds, got {len(seeds)}")
        self._obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(self.envs, seeds)])
        return self._obs.copy()

    def step(self, actions: np.ndarray, active: np.ndarray | None = None):
        """As BatchedEnv.step; obs in the envs' observation dtype."""
        if self._obs is None:
            raise RuntimeError("reset before step")
        active = np.ones(self.num_envs, bool) if active is None else np.asarray(active, bool)
        obs = self._obs.copy()
        reward = np.zeros(self.num_envs, np.float64)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        for i in np.flatnonzero(active):
            obs[i], r, terminated[i], truncated[i], _ = self.envs[i].step(actions[i])
            reward[i] = float(r)
        self._obs = obs
        return obs.copy(), reward, terminated, truncated

    def close(self) -> None:
        for env in self.envs:
            env.close()
