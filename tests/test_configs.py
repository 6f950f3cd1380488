"""The defaults are SPEC.md's numbers, and the code that trains reads them from the config.

Each value is written out here as a literal from SPEC.md (sections 2-4), never read back from
lfjax.configs: a changed default fails the test that names it.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lfjax import pretraining
from lfjax.configs import PRESETS, AWACConfig, FlowTrainConfig, RunConfig, paper_preset, quick_preset


def test_flow_defaults_are_the_papers():
    c = FlowTrainConfig()
    assert c.learning_rate == 5e-4 and c.weight_decay == 1e-4 and c.max_grad_norm == 0.1
    assert c.batch_size == 1024 and c.validation_fraction == 0.1
    assert c.num_blocks == 12 and c.hidden_dims == (256, 256)
    assert c.num_epochs is None  # the dataset's own count (100 maze and medium, ...)
    flow = c.make_flow(action_dim=2, state_dim=4)
    assert flow.num_blocks == 12 and tuple(flow.hidden_dims) == (256, 256)


def test_awac_defaults_are_the_papers():
    c = AWACConfig()
    assert c.batch_size == 512 and c.gamma == 0.99 and c.tau == 2e-3
    assert np.isclose(c.awac_lambda, 1 / 3) and c.weight_clip == 100.0
    assert c.actor_lr == c.critic_lr == 3e-4
    assert c.hidden_dims == (256, 256, 256)  # 3 hidden layers, 4 Linear layers in all
    assert (c.log_std_min, c.log_std_max) == (-20.0, 2.0)
    hash(AWACConfig.quick())  # static jit arguments must hash


def test_run_defaults_are_the_paper_sweep():
    c = RunConfig()
    assert c.num_updates == 1_000_000 and c.eval_every == 5_000 and c.eval_episodes == 10
    assert c.num_seeds == 3 and c.seed == 0  # seeds 0, 1, 2
    assert not c.flow_per_seed and c.algo == "latent_awac"  # one flow shared by the seeds
    assert c.flow == FlowTrainConfig() and c.agent == AWACConfig()
    assert paper_preset("maze2d-medium") == RunConfig(env="maze2d-medium")
    assert PRESETS["paper"] is paper_preset


def test_quick_preset_keeps_the_papers_flow_depth():
    # Its training numbers and widths are chosen by measurement (BUILD_NOTES.md); the depth is
    # the paper's: fewer blocks measurably stop the agent from learning.
    flow = quick_preset("maze2d-umaze").flow
    assert flow.num_blocks == 12 and flow.hidden_dims == (128, 128) and flow.num_epochs == 4


def test_quick_preset_per_maze_settings_reach_the_run_config():
    # Chosen per maze (BUILD_NOTES.md): umaze's flow fits a band of 0.01 at the saturated
    # actions and its actor regresses with a squared error; medium has both, with 3-step
    # targets and 25k updates; large has none of them.
    umaze, medium, large = (quick_preset(f"maze2d-{m}") for m in ("umaze", "medium", "large"))
    assert umaze.flow.saturation_noise == 0.01 and umaze.agent.n_step == 1 and umaze.num_updates == 10_000
    assert umaze.agent.actor_regression == "l2" and medium.agent.actor_regression == "l2"
    assert dataclasses.replace(umaze.agent, actor_regression="l1") == large.agent
    assert medium.flow.saturation_noise == 0.01 and medium.agent.n_step == 3 and medium.num_updates == 25_000
    assert medium.eval_every == 5_000 and umaze.eval_every == large.eval_every == 2_500
    assert large.flow == FlowTrainConfig.quick() and large.agent == AWACConfig.quick()
    assert large.num_updates == 10_000
    # Everything else is shared: the flow's size and epochs, the agent's other settings.
    assert umaze.flow == medium.flow and dataclasses.replace(umaze.flow, saturation_noise=0.0) == large.flow
    assert dataclasses.replace(medium.agent, n_step=1) == umaze.agent
    # config.json / flow.json record the band, so a flow made without it is not reused.
    assert umaze.to_dict()["flow"]["saturation_noise"] == 0.01


def test_flow_optimizer_clips_at_0_1_then_adamw_5e_4_wd_1e_4():
    """make_optimizer's two steps equal optax's adamw(5e-4, weight_decay=1e-4) on gradients
    clipped to global norm 0.1 by hand. Adam's first step is scale-free, so the second step
    (a gradient under the clip after one far above it) is what shows the clip."""
    params = {"w": jnp.array([3.0, -2.0, 0.5]), "b": jnp.array([100.0])}
    grads = [
        {"w": jnp.array([6.0, -8.0, 0.0]), "b": jnp.array([0.0])},  # norm 10: clipped to 0.1
        {"w": jnp.array([0.01, 0.02, -0.03]), "b": jnp.array([0.04])},  # norm 0.055: kept
    ]

    def clip(g):
        norm = optax.tree.norm(g)
        return jax.tree.map(lambda x: x * jnp.minimum(1.0, 0.1 / norm), g)

    def run(opt, gs):
        state, p, out = opt.init(params), params, []
        for g in gs:
            updates, state = opt.update(g, state, p)
            p = optax.apply_updates(p, updates)
            out.append(updates)
        return out

    ours = run(pretraining.make_optimizer(FlowTrainConfig()), grads)
    expected = run(optax.adamw(5e-4, weight_decay=1e-4), [clip(g) for g in grads])
    for a, b in zip(ours, expected):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-12), a, b)
    # The test can tell a missing clip (or another norm) from the right one.
    unclipped = run(optax.adamw(5e-4, weight_decay=1e-4), grads)
    assert not np.allclose(ours[1]["w"], unclipped[1]["w"], rtol=1e-3)


def test_options_added_later_are_recorded_only_when_set():
    """A config.json written before latent_actor_loss, actor_q_weight, actor_regression and
    saturation_noise existed is still the same run (so it resumes); set, they are recorded (so a run with them
    is another run)."""
    config = PRESETS["quick"]("maze2d-large")  # none of the options set there
    saved = config.to_dict()
    assert "latent_actor_loss" not in saved["agent"] and "saturation_noise" not in saved["flow"]
    assert "actor_q_weight" not in saved["agent"] and "actor_regression" not in saved["agent"]
    assert RunConfig.from_dict(saved) == config
    agent = dataclasses.replace(config.agent, latent_actor_loss=True, actor_q_weight=0.0,
                                actor_regression="l2")
    changed = dataclasses.replace(config, agent=agent,
                                  flow=dataclasses.replace(config.flow, saturation_noise=0.1))
    d = changed.to_dict()
    assert d["agent"]["latent_actor_loss"] is True and d["flow"]["saturation_noise"] == 0.1
    assert d["agent"]["actor_q_weight"] == 0.0 and d["agent"]["actor_regression"] == "l2"
    assert RunConfig.from_dict(d) == changed
