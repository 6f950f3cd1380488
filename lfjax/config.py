"""The configuration of a whole CNF run: dataset, flow pretraining, latent AWAC, schedule."""

import dataclasses
from typing import Any

from lfjax.agent import AWACConfig
from lfjax.pretraining import FlowTrainConfig


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Defaults are the paper's sweep protocol (SPEC.md 4): 1M updates, evaluated every 5,000
    with 10 episodes, seeds 0, 1, 2.

    Attributes:
        env: registry name of the dataset and evaluation environment.
        flow: flow-pretraining settings (num_epochs None: the dataset's own count).
        agent: latent AWAC settings.
        num_updates: AWAC updates per seed.
        eval_every: updates between evaluations (and checkpoints).
        eval_episodes: evaluation episodes per seed.
        num_seeds: seeds trained at once (vmapped); seed i uses PRNG seed ``seed + i``.
        seed: base seed.
        flow_per_seed: pretrain one flow per seed (seed i's agent uses flow i). False, the
            official code's protocol, pretrains one flow that every seed's agent shares.
    """

    env: str = "maze2d-umaze"
    flow: FlowTrainConfig = FlowTrainConfig()
    agent: AWACConfig = AWACConfig()
    num_updates: int = 1_000_000
    eval_every: int = 5_000
    eval_episodes: int = 10
    num_seeds: int = 3
    seed: int = 0
    flow_per_seed: bool = False

    @property
    def num_flows(self) -> int:
        return self.num_seeds if self.flow_per_seed else 1

    def validate(self) -> None:
        """Raises ValueError naming the first invalid setting and what to pass instead."""
        for name in ("num_updates", "eval_every", "eval_episodes", "num_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"--seed must be non-negative, got {self.seed}")
        self.flow.validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        flow = FlowTrainConfig(**{**d["flow"], "hidden_dims": tuple(d["flow"]["hidden_dims"])})
        agent = AWACConfig(**{**d["agent"], "hidden_dims": tuple(d["agent"]["hidden_dims"])})
        return cls(**{**d, "flow": flow, "agent": agent})


def paper_preset(env: str) -> RunConfig:
    return RunConfig(env=env)


def quick_preset(env: str) -> RunConfig:
    """Minutes on a 2-core CPU; the choices and the measurements behind them are in
    BUILD_NOTES.md ("quick preset")."""
    return RunConfig(
        env=env,
        flow=FlowTrainConfig.quick(),
        agent=AWACConfig.quick(),
        num_updates=8_000,
        eval_every=2_000,
        eval_episodes=10,
        num_seeds=3,
    )


PRESETS = {"paper": paper_preset, "quick": quick_preset}
