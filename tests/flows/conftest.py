import jax
import pytest


def perturb(key, params, scale=0.3):
    """Adds Gaussian noise to every leaf: freshly initialized couplings are exactly the
    identity, which would let a wrong log-det or inverse pass unnoticed."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = [x + scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return jax.tree_util.tree_unflatten(treedef, noisy)


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)
