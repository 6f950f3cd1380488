"""Hyperparameters of latent AWAC (SPEC.md section 4)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class AWACConfig:
    """Latent AWAC settings; the defaults are the official single-run config (configs/run_rl.py).

    Attributes:
        batch_size: transitions per update (the paper's sweep also tried 256 and 1024).
        gamma: discount.
        tau: Polyak step of the target critics.
        awac_lambda: temperature of the advantage weights exp((q - v) / lambda).
        weight_clip: upper bound on the advantage weights.
        actor_lr: Adam learning rate of the actor.
        critic_lr: Adam learning rate of the twin critics (one Adam over both: Adam is
            elementwise, so this equals the official code's two optimizers).
        hidden_dims: hidden widths of actor and critic MLPs (4 Linear layers in all).
        log_std_min: lower clip of the actor's log standard deviation.
        log_std_max: upper clip of the actor's log standard deviation.
    """

    batch_size: int = 512
    gamma: float = 0.99
    tau: float = 2e-3
    awac_lambda: float = 1.0 / 3.0
    weight_clip: float = 100.0
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if self.awac_lambda <= 0.0:
            raise ValueError(f"awac_lambda must be positive, got {self.awac_lambda}")
        if self.log_std_min > self.log_std_max:
            raise ValueError("log_std_min must not exceed log_std_max")
        # A list would make the config unhashable, and jit needs it hashable.
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))

    @classmethod
    def quick(cls) -> "AWACConfig":
        """The CPU preset: learns maze2d-umaze in 6-8k updates instead of ~30k+.

        3 Linear layers and batch 256 (the paper sweep's smaller net and batch), and a 5x
        faster target (tau 1e-2) with lr 1e-3 for actor and critics. Measured (BUILD_NOTES.md,
        quick preset): clear learning by 6-10k updates, but the critics then overestimate
        (mean Q far above 1/(1-gamma)) and the score collapses after ~15k updates, so this
        preset is for short runs; use the paper defaults for long ones.
        """
        return cls(batch_size=256, tau=1e-2, actor_lr=1e-3, critic_lr=1e-3, hidden_dims=(256, 256))
