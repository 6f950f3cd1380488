"""Evaluation environments that lfjax defines itself, and the batched stepping of many copies:

- `maze2d`: maze2d on gymnasium-robotics' PointMaze physics with D4RL's task (gymnasium ids
  lfjax/maze2d-<maze>-v0). The locomotion environments are gymnasium's own (HalfCheetah-v5,
  Hopper-v5, Walker2d-v5); `lfjax.data`'s registry builds whichever a dataset needs.
- `batched`: every evaluation copy stepped in one MuJoCo call per policy step, bit-identical to
  stepping the gymnasium envs one by one:

    envs = make_batched_env(get_env_spec("maze2d-large"), num_envs=640)   # or None
    obs = envs.reset(seeds)                       # [K, S]
    obs, reward, terminated, truncated = envs.step(actions, active)
"""

from lfjax.envs.batched import BatchedEnv, EnvLoop, StepRule, make_batched_env, step_rule

__all__ = ["BatchedEnv", "EnvLoop", "StepRule", "make_batched_env", "step_rule"]
