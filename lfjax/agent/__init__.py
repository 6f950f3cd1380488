"""Latent AWAC: an actor in the latent space of a frozen conditional flow, twin critics; with
`IdentityDecoder` instead of a flow, AWAC (and behaviour cloning) in action space."""

from lfjax.agent.decoders import IdentityDecoder
from lfjax.agent.losses import actor_loss, advantage_weights, critic_loss, td_target
from lfjax.agent.networks import TanhGaussianActor, TwinCritic, sample_latents
from lfjax.agent.train import (
    SWEEPABLE,
    Hyperparams,
    TrainState,
    acting_params,
    hyperparams,
    make_act,
    make_init,
    make_q,
    make_train,
    make_update_step,
    stack_hyperparams,
)
from lfjax.configs import AWACConfig

__all__ = [
    "SWEEPABLE",
    "Hyperparams",
    "AWACConfig",
    "IdentityDecoder",
    "TanhGaussianActor",
    "TrainState",
    "TwinCritic",
    "acting_params",
    "actor_loss",
    "advantage_weights",
    "critic_loss",
    "hyperparams",
    "make_act",
    "make_init",
    "make_q",
    "make_train",
    "make_update_step",
    "sample_latents",
    "stack_hyperparams",
    "td_target",
]
