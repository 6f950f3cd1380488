"""lfjax: conservative offline RL in the latent space of a normalizing flow, in JAX."""

__version__ = "0.1.0"
