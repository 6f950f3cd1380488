"""Every configuration of lfjax in one place: flow pretraining, latent AWAC, a whole run, and
the presets table. Frozen dataclasses (hashable, so jit can take them as static arguments)
whose defaults are the paper's values (SPEC.md 3-4); `PRESETS` maps a preset name to the
RunConfig it builds for an environment.
"""

import dataclasses
import itertools
from typing import Any, ClassVar

from lfjax.flows import ConditionalFlow, make_flow


@dataclasses.dataclass(frozen=True)
class FlowTrainConfig:
    """Flow-pretraining hyperparameters; defaults are the paper's (SPEC.md 2-3)."""

    num_blocks: int = 12
    hidden_dims: tuple[int, ...] = (256, 256)
    learning_rate: float = 5e-4
    weight_decay: float = 1e-4
    batch_size: int = 1024
    max_grad_norm: float = 0.1
    # None: the dataset's own count (100 medium and maze, 350 medium-replay, 50 medium-expert).
    num_epochs: int | None = None
    validation_fraction: float = 0.1
    # Validation runs in chunks of this many rows to bound memory on large datasets.
    validation_chunk: int = 8192
    # 0: the paper. d > 0: every saturated action entry (|a| = 1, ~30 % of maze2d's) is
    # replaced once, before training, by sign(a) (1 - d u) with u ~ U(0, 1), so the flow learns
    # a band of width d instead of a point mass it keeps sharpening. A point mass maps a
    # region of latents onto one action, where the decoder's Jacobian, the only path of the
    # paper's actor loss to the actor, is ~0 (BUILD_NOTES.md, "The stalled seed"; on
    # maze2d-umaze, d = 0.1 removed that and learned less; d = 0.01 is its quick preset's).
    saturation_noise: float = 0.0

    @classmethod
    def quick(cls) -> "FlowTrainConfig":
        """The paper's 12 blocks with half-width coupling nets (128) and 4 epochs instead of
        100. Measured on maze2d-umaze (BUILD_NOTES.md, quick preset): the agent learns as well
        through it as through the 256-wide flow trained 7 epochs, at about a third of its
        cost; fewer blocks measurably stop the agent from learning."""
        return cls(hidden_dims=(128, 128), num_epochs=4)

    def record(self) -> dict[str, Any]:
        """The settings as flow.json records them; saturation_noise only when set, so that a
        flow saved before the option existed is still recognised as made with these settings."""
        settings = dataclasses.asdict(self)
        if not self.saturation_noise:
            del settings["saturation_noise"]
        return settings

    def make_flow(self, action_dim: int, state_dim: int) -> ConditionalFlow:
        return make_flow(action_dim, state_dim, self.num_blocks, self.hidden_dims)

    def validate(self) -> None:
        """Raises ValueError naming the first invalid setting."""
        positive = ("num_blocks", "batch_size", "validation_chunk")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"flow config: {name} must be positive, got {getattr(self, name)}")
        if self.num_epochs is not None and self.num_epochs < 1:
            raise ValueError(f"flow config: num_epochs must be positive, got {self.num_epochs}")
        if not 0.0 <= self.saturation_noise < 1.0:
            raise ValueError(f"flow config: saturation_noise must be in [0, 1), got {self.saturation_noise}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"flow config: validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )


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

    Stability options (SPEC.md 8; all off by default, and off the update is the paper's to the
    bit). The sweepable ones are scalars that members of one program may set each for itself:
        critic_layer_norm: LayerNorm after every hidden Dense of the critics, before the ReLU
            (ReBRAC's and RLPD's critics); it bounds how fast Q can extrapolate.
        num_critics: critics in the ensemble (the paper: 2); targets, values and the advantage
            use the minimum over all of them.
        td_target_clip: clip TD targets to the returns the data's reward range allows,
            [min(r_min, r_min / (1 - gamma)), max(r_max, r_max / (1 - gamma))] ([0, 100] on
            maze2d), so no critic is regressed onto an impossible value.
        tau_final: when set, tau decays from `tau` toward it with half-life `tau_half_life`
            updates: tau_t = tau_final + (tau - tau_final) * 0.5 ** (t / tau_half_life); a fast
            target early propagates the sparse reward, a slow one later keeps it steady.
        tau_half_life: updates per halving of tau - tau_final (unused while tau_final is None,
            so that a grid can sweep tau_final over one half-life).
        n_step: TD targets that sum n rewards along the stored trajectory before bootstrapping
            (`lfjax.data.returns.n_step_transitions`; 1: the paper's one-step targets). A sparse
            reward then needs about n times fewer backups to reach the states far from it.
        actor_ema: when set, a Polyak average of the actor's parameters (this step per update)
            is kept beside it and is the policy that acts (evaluation, experiments.evaluate);
            training is unchanged. Adam keeps moving a converged actor by about its learning
            rate per step, driven by minibatch noise; the average does not follow that walk.
        latent_actor_loss: measure the actor's weighted L1 regression in latent space,
            mean(w * |z - encode(a, s)|) with the data's action encoded by the frozen flow,
            instead of the paper's mean(w * |decode(z, s) - a|) in action space. The
            paper's loss reaches the actor only through the decoder's Jacobian, which is
            near zero wherever the flow maps a region of latents onto a saturated action (the
            spikes at ±1 that hold ~30 % of maze2d's action entries): an actor whose latent
            drifts there stops moving whatever the advantages say. In latent space the
            gradient does not pass through the flow. Identical to the paper's loss for the
            action-space baselines (their decoder is the identity). On maze2d-umaze it learns
            the way to the goal sooner and not to stay there (BUILD_NOTES.md).
        actor_q_weight: when set (beta), the actor's loss also climbs the critics: it adds
            -beta * mean(Q(s, decode(z, s))) / mean|Q(s, decode(z, s))| (the minimum over the
            critics; the denominator without gradient, TD3+BC's normalization, so beta is
            unitless). The advantage-weighted L1 alone is a weighted median of the data's
            actions, which follows their majority where the critics prefer a rare action (at
            maze2d's goal the data mostly leaves, the critics prefer staying); the bounded
            latent keeps the decoded action on the data's support either way. 0 or None:
            the paper's loss (None leaves the term out of the program).
        actor_regression: "l1" (the paper's) or "l2": the actor's advantage-weighted
            regression onto the data's actions with the error squared, mean(w * (decode(z, s)
            - a)^2). At one state the L1 is minimized by the weighted median of the data's
            actions, which stays with their majority until the rarer actions' weights outgrow
            it, and (a third of maze2d's action entries being exactly +-1) is mostly a
            saturated action; the L2 by their weighted mean, which moves by every weight
            (CORL's AWAC, a Gaussian's log-likelihood, is such a weighted L2). Applies in latent
            space too with latent_actor_loss.
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
    critic_layer_norm: bool = False
    num_critics: int = 2
    td_target_clip: bool = False
    tau_final: float | None = None
    tau_half_life: float | None = None
    n_step: int = 1
    actor_ema: float | None = None
    latent_actor_loss: bool = False
    actor_q_weight: float | None = None
    actor_regression: str = "l1"

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if self.awac_lambda <= 0.0:
            raise ValueError(f"awac_lambda must be positive, got {self.awac_lambda}")
        if self.log_std_min > self.log_std_max:
            raise ValueError("log_std_min must not exceed log_std_max")
        if self.num_critics < 1:
            raise ValueError(f"num_critics must be positive, got {self.num_critics}")
        if self.tau_final is not None and not 0.0 < self.tau_final <= 1.0:
            raise ValueError(f"tau_final must be in (0, 1], got {self.tau_final}")
        if self.tau_half_life is not None and self.tau_half_life <= 0.0:
            raise ValueError(f"tau_half_life must be positive, got {self.tau_half_life}")
        if self.n_step < 1:
            raise ValueError(f"n_step must be positive, got {self.n_step}")
        if self.actor_q_weight is not None and not self.actor_q_weight >= 0.0:
            raise ValueError(f"actor_q_weight must be non-negative, got {self.actor_q_weight}")
        if self.actor_regression not in ("l1", "l2"):
            raise ValueError(f"actor_regression must be 'l1' (the paper's) or 'l2', got "
                             f"{self.actor_regression!r}")
        if self.actor_ema is not None and not 0.0 < self.actor_ema <= 1.0:
            raise ValueError(f"actor_ema must be in (0, 1], got {self.actor_ema}")
        if self.tau_final is not None and self.tau_half_life is None:
            raise ValueError("tau_final needs tau_half_life: set both to decay tau (a half-life "
                             "alone, e.g. for a grid over tau_final, decays nothing)")
        # A list would make the config unhashable, and jit needs it hashable.
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))

    def record(self) -> dict[str, Any]:
        """The settings as config.json records them; latent_actor_loss, actor_q_weight and
        actor_regression only when set (runs saved before the options existed then compare
        equal)."""
        settings = dataclasses.asdict(self)
        if not self.latent_actor_loss:
            del settings["latent_actor_loss"]
        if self.actor_regression == "l1":
            del settings["actor_regression"]
        if self.actor_q_weight is None:
            del settings["actor_q_weight"]
        return settings

    @classmethod
    def quick(cls) -> "AWACConfig":
        """The CPU preset: ~10k updates on maze2d-umaze instead of ~30k.

        3 Linear layers and batch 256 (the paper sweep's smaller net and batch), critics at lr
        1e-3, the actor at the paper's 3e-4, and three stability options (BUILD_NOTES.md,
        "Learning that holds"): LayerNorm in the critics (without it their Q overestimates and
        the score collapses after ~8k updates), a target that starts 5x faster than the
        paper's (tau 1e-2, for the speed) and decays to 2e-3 with a half-life of 3k updates,
        and an averaged actor (Polyak step 2e-3) that acts. Chosen on seeds 0-4: critic lr
        1e-3 scored 88.8 at 12k updates against 71.0 for 3e-4. On fresh seeds (100-104) it
        learns on most, not all (46.1 +- 30.6 at 10k), and run 4x as long it ends lower (39.1
        on seeds 100-102, against 68.4 at 10k): episodes reach the goal and do not stay.
        3-step targets (n_step=3) learned twice as fast on seeds 0-4 (91.2 at 5k, 88.5 at 20k)
        and not on fresh seeds (100-102: 0.1 at 5k, 51.3 at 10k), so they are not in it.
        """
        return cls(batch_size=256, tau=1e-2, actor_lr=3e-4, critic_lr=1e-3, hidden_dims=(256, 256),
                   critic_layer_norm=True, tau_final=2e-3, tau_half_life=3_000, actor_ema=2e-3)


# The AWACConfig fields that members of one jitted program may set each for itself: scalars that
# change no shape (lfjax.agent carries them per member in its train state).
SWEEPABLE = ("awac_lambda", "tau", "actor_lr", "critic_lr", "gamma", "weight_clip", "tau_final",
             "tau_half_life", "actor_q_weight")
# Of those, the ones behaviour cloning uses (it has no critics and no advantage weights).
SWEEPABLE_BC = ("actor_lr",)

# What an experiment trains (RunConfig.algo):
# latent_awac: the paper's method, AWAC in the latent space of the pretrained flow;
# awac: the same agent and losses in action space (identity decoder, tanh-Gaussian actor over
#   actions), no flow;
# bc: behaviour cloning in action space: that actor with every advantage weight 1, no critics,
#   no flow.
ALGOS = ("latent_awac", "awac", "bc")


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
        eval_episodes: evaluation episodes per seed at every evaluation but the last.
        final_eval_episodes: evaluation episodes per seed at the last evaluation, the one that
            gives the run's final score: more than the others, so that one lucky start (in
            maze2d, a start inside the goal cell) cannot carry a seed.
        num_seeds: seeds trained at once (vmapped); seed i uses PRNG seed ``seed + i``.
        seed: base seed.
        flow_per_seed: pretrain one flow per seed (seed i's agent uses flow i). False, the
            official code's protocol, pretrains one flow that every seed's agent shares.
        algo: one of ALGOS: the paper's latent AWAC, or a baseline in the same code.
        sweep: a hyperparameter grid trained in the same program: ((name, (v1, v2, ...)), ...)
            over SWEEPABLE agent fields; the run's members are every combination of the values
            (in this order, the last name varying fastest) times num_seeds seeds, member
            m = config_index * num_seeds + seed_index. () trains the agent config alone.
    """

    env: str = "maze2d-umaze"
    flow: FlowTrainConfig = FlowTrainConfig()
    agent: AWACConfig = AWACConfig()
    num_updates: int = 1_000_000
    eval_every: int = 5_000
    eval_episodes: int = 10
    final_eval_episodes: int = 50
    num_seeds: int = 3
    seed: int = 0
    flow_per_seed: bool = False
    algo: str = "latent_awac"
    sweep: tuple[tuple[str, tuple[float, ...]], ...] = ()

    # What a resumed run may change (how long it trains, how it is evaluated); everything else
    # would make its checkpoints another run's.
    RESUMABLE: ClassVar[tuple[str, ...]] = ("num_updates", "eval_every", "eval_episodes",
                                            "final_eval_episodes")

    @property
    def num_flows(self) -> int:
        return self.num_seeds if self.flow_per_seed else 1

    @property
    def grid(self) -> list[dict[str, float]]:
        """Every combination of the sweep's values, as {name: value} overrides ([{}] without a
        sweep), in member order."""
        names = [name for name, _ in self.sweep]
        return [dict(zip(names, values)) for values in itertools.product(*(v for _, v in self.sweep))]

    @property
    def num_members(self) -> int:
        """Agents trained at once: configs of the grid x seeds."""
        return len(self.grid) * self.num_seeds

    def member_agent_configs(self) -> list[AWACConfig]:
        """The agent config of every member [num_members], in member order."""
        return [dataclasses.replace(self.agent, **overrides)
                for overrides in self.grid for _ in range(self.num_seeds)]

    @property
    def uses_flow(self) -> bool:
        """Whether the agent acts through a pretrained flow (latent AWAC) or in action space."""
        return self.algo == "latent_awac"

    @property
    def uses_critics(self) -> bool:
        """Whether the agent trains critics (AWAC) or is behaviour cloning."""
        return self.algo != "bc"

    def validate(self) -> None:
        """Raises ValueError naming the first invalid setting and what to pass instead."""
        for name in ("num_updates", "eval_every", "eval_episodes", "final_eval_episodes", "num_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"--seed must be non-negative, got {self.seed}")
        if self.algo not in ALGOS:
            raise ValueError(f"unknown --algo={self.algo!r}; choose one of: {', '.join(ALGOS)}")
        self._validate_sweep()
        self.flow.validate()

    def _validate_sweep(self) -> None:
        names = [name for name, _ in self.sweep]
        allowed = SWEEPABLE if self.uses_critics else SWEEPABLE_BC
        for name, values in self.sweep:
            if name not in allowed:
                why = ("changes shapes or the flow, so it cannot vary inside one program; run "
                       "separate runs for it" if name not in SWEEPABLE else
                       f"does not apply to --algo={self.algo}")
                raise ValueError(f"--sweep={name}: {name} {why}; what can be swept: "
                                 f"{', '.join(allowed)}")
            if names.count(name) > 1:
                raise ValueError(f"--sweep={name} is given twice; give each name once with all "
                                 "its values, e.g. --sweep=tau=0.002,0.01")
            if not values:
                raise ValueError(f"--sweep={name} has no values; give one or more, e.g. "
                                 f"--sweep={name}=0.1,0.3")
            if name == "gamma" and self.agent.n_step > 1:
                raise ValueError("--sweep=gamma with --n_step > 1: the n-step targets are summed "
                                 "once, with one gamma; run separate runs per gamma")
        try:
            self.member_agent_configs()  # AWACConfig checks each value
        except ValueError as e:
            raise ValueError(f"--sweep: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """As config.json records it. Options added after runs were saved appear only when set
        (FlowTrainConfig.record, AWACConfig.record), so those runs still resume."""
        return {**dataclasses.asdict(self), "flow": self.flow.record(), "agent": self.agent.record()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        flow = FlowTrainConfig(**{**d["flow"], "hidden_dims": tuple(d["flow"]["hidden_dims"])})
        agent = AWACConfig(**{**d["agent"], "hidden_dims": tuple(d["agent"]["hidden_dims"])})
        sweep = tuple((name, tuple(values)) for name, values in d.get("sweep", ()))
        return cls(**{**d, "flow": flow, "agent": agent, "sweep": sweep})


def parse_sweep(values: list[str]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """["tau=0.002,0.01", "actor_lr=3e-4,1e-3"] (the CLI's --sweep flags) -> RunConfig.sweep.

    ValueError naming the item that does not parse; the names and values themselves are
    checked by RunConfig.validate."""
    sweep = []
    for text in values:
        name, sep, listed = text.partition("=")
        if not sep or not name:
            raise ValueError(f"--sweep={text} does not parse; write --sweep=NAME=V1,V2,..., "
                             "e.g. --sweep=tau=0.002,0.01")
        items = [v.strip() for v in listed.split(",") if v.strip()]
        parsed = []
        for item in items:
            try:
                parsed.append(float(item))
            except ValueError:
                raise ValueError(f"--sweep={text}: {item!r} is not a number") from None
        sweep.append((name.strip(), tuple(parsed)))
    return tuple(sweep)


def paper_preset(env: str) -> RunConfig:
    return RunConfig(env=env)


# The quick preset's settings of one env where they differ from the rest (RunConfig fields;
# AWACConfig fields under "agent", FlowTrainConfig fields under "flow").
# maze2d-umaze: the flow fits a band of 0.01 at the saturated actions instead of point masses.
# Chosen on seeds 0-4 with a flow per seed (the spread a user meets across base seeds): 63.4
# against 48.5 at 10k, worst seed 33.7 against 5.6 (BUILD_NOTES.md, "A flow per seed while
# choosing"). And the actor's squared error (actor_regression="l2"): on the same seeds and
# flows it tied at 10k (64.2 against 63.4) and held 4x as long (62.9 against 39.9 at 40k;
# BUILD_NOTES.md, "Five critics with 3-step targets, and a squared actor error").
# maze2d-medium: its goal is 4-8 cells from most starts; one-step targets carried its sparse
# reward nowhere in 10k-20k updates (-4.2 at 10k on seeds 100-102, 1.7 at 20k on seeds 0-2),
# 3-step targets reached 32.2 at 25k and 22.9 at 30k on seeds 0-2 (BUILD_NOTES.md, "maze2d-medium
# with 3-step targets"); 30k updates took 33 minutes from an empty dataset directory on a 2-core
# CPU, 25k fit its 30. Then umaze's two settings on top (the band and the squared error), chosen
# on seeds 0-4 each through its own flow: 54.5 at 25k, every seed above flow BC, every episode of
# every seed reaching the goal (BUILD_NOTES.md, "maze2d-medium with umaze's band and squared
# error"); the 3-step preset alone had ended at -1.7 on fresh seeds 300-302.
QUICK_PER_ENV: dict[str, dict[str, Any]] = {
    "maze2d-umaze": {"flow": {"saturation_noise": 0.01}, "agent": {"actor_regression": "l2"}},
    "maze2d-medium": {"num_updates": 25_000, "eval_every": 5_000, "flow": {"saturation_noise": 0.01},
                      "agent": {"n_step": 3, "actor_regression": "l2"}},
}


def quick_preset(env: str) -> RunConfig:
    """Minutes on a 2-core CPU (3 seeds, data and flow included: maze2d-umaze 10-15,
    maze2d-medium 17-30). One setting for every env but those in QUICK_PER_ENV. The choices and
    the measurements behind them are in BUILD_NOTES.md ("Learning that holds")."""
    own = dict(QUICK_PER_ENV.get(env, {}))
    agent = dataclasses.replace(AWACConfig.quick(), **own.pop("agent", {}))
    flow = dataclasses.replace(FlowTrainConfig.quick(), **own.pop("flow", {}))
    settings = {"num_updates": 10_000, "eval_every": 2_500, **own}
    return RunConfig(
        env=env,
        flow=flow,
        agent=agent,
        eval_episodes=10,
        num_seeds=3,
        **settings,
    )


PRESETS = {"paper": paper_preset, "quick": quick_preset}
