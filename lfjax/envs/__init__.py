"""Evaluation environments stepped many copies at a time.

    envs = make_batched_env(get_env_spec("maze2d-large"), num_envs=640)   # or None
    obs = envs.reset(seeds)                       # [K, S]
    obs, reward, terminated, truncated = envs.step(actions, active)
"""

from lfjax.envs.batched import BatchedEnv, EnvLoop, StepRule, make_batched_env, step_rule

__all__ = ["BatchedEnv", "EnvLoop", "StepRule", "make_batched_env", "step_rule"]
