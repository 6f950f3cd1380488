"""Latent AWAC: an actor in the latent space of a frozen conditional flow, twin critics."""

from lfjax.agent.config import AWACConfig
from lfjax.agent.losses import actor_loss, advantage_weights, critic_loss, td_target
from lfjax.agent.networks import TanhGaussianActor, TwinCritic, sample_latents
from lfjax.agent.train import TrainState, make_act, make_init, make_train, make_update_step

__all__ = [
    "AWACConfig",
    "TanhGaussianActor",
    "TrainState",
    "TwinCritic",
    "actor_loss",
    "advantage_weights",
    "critic_loss",
    "make_act",
    "make_init",
    "make_train",
    "make_update_step",
    "sample_latents",
    "td_target",
]
