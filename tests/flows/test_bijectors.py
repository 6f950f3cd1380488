"""Every bijector, the distrax way: round trip, log-det against the Jacobian, jit and vmap."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lfjax.flows import (
    ActNorm,
    Atanh,
    ConditionalAffineCoupling,
    InvertibleLinear,
    Tanh,
    init_coupling_params,
    init_linear_params,
    precompute_inverse,
)
from tests.flows.conftest import perturb

DIM, STATE_DIM, BATCH = 4, 3, 5


def _states(key):
    return jax.random.normal(key, (BATCH, STATE_DIM))


def make_actnorm(key, states):
    k1, k2 = jax.random.split(key)
    return ActNorm(0.5 * jax.random.normal(k1, (DIM,)), jax.random.normal(k2, (DIM,)))


def make_linear(key, states):
    params = perturb(key, init_linear_params(key, DIM), scale=0.2)
    return InvertibleLinear.from_params(params)


def make_linear_precomputed(key, states):
    params = perturb(key, init_linear_params(key, DIM), scale=0.2)
    return InvertibleLinear.from_params(precompute_inverse(params))


def make_coupling(keep_second_half):
    def make(key, states):
        k1, k2 = jax.random.split(key)
        params = perturb(k2, init_coupling_params(k1, DIM, STATE_DIM, (16, 16)), scale=0.3)
        return ConditionalAffineCoupling.from_params(params, states, keep_second_half, (16, 16))

    return make


def make_tanh(key, states):
    return Tanh()


def make_atanh(key, states):
    return Atanh()


# (factory, input sampler): Atanh's domain is (-1, 1).
CASES = {
    "actnorm": (make_actnorm, "real"),
    "linear": (make_linear, "real"),
    "linear_precomputed": (make_linear_precomputed, "real"),
    "coupling_keep_first": (make_coupling(False), "real"),
    "coupling_keep_second": (make_coupling(True), "real"),
    "tanh": (make_tanh, "real"),
    "atanh": (make_atanh, "unit"),
}


def _inputs(key, kind):
    if kind == "unit":
        return jax.random.uniform(key, (BATCH, DIM), minval=-0.95, maxval=0.95)
    return jax.random.normal(key, (BATCH, DIM))


@pytest.fixture(params=sorted(CASES))
def case(request, key):
    factory, kind = CASES[request.param]
    k1, k2, k3 = jax.random.split(key, 3)
    states = _states(k1)
    return factory, states, _inputs(k2, kind), k3


def test_is_a_distrax_bijector(case):
    factory, states, x, key = case
    assert isinstance(factory(key, states), distrax.Bijector)


def test_round_trip(case):
    factory, states, x, key = case
    bij = factory(key, states)
    y, _ = bij.forward_and_log_det(x)
    x_back, _ = bij.inverse_and_log_det(y)
    np.testing.assert_allclose(x_back, x, atol=2e-5, rtol=1e-4)
    assert y.shape == x.shape


def test_forward_log_det_matches_jacobian(case):
    factory, states, x, key = case
    _, log_det = factory(key, states).forward_and_log_det(x)
    assert log_det.shape == (BATCH,)
    for i in range(BATCH):
        # Rebuild per row: the coupling's condition is row i's state.
        def f(xi, i=i):
            return factory(key, states[i : i + 1]).forward(xi[None])[0]

        expected = jnp.linalg.slogdet(jax.jacfwd(f)(x[i]))[1]
        np.testing.assert_allclose(log_det[i], expected, atol=1e-4, rtol=1e-4)


def test_inverse_log_det_is_negative_forward(case):
    factory, states, x, key = case
    bij = factory(key, states)
    y, fwd = bij.forward_and_log_det(x)
    _, inv = bij.inverse_and_log_det(y)
    np.testing.assert_allclose(inv, -fwd, atol=1e-4, rtol=1e-4)


def test_jit_and_vmap_agree_with_plain_call(case):
    factory, states, x, key = case
    plain_y, plain_ld = factory(key, states).forward_and_log_det(x)

    jit_y, jit_ld = jax.jit(lambda x, s: factory(key, s).forward_and_log_det(x))(x, states)
    np.testing.assert_allclose(jit_y, plain_y, atol=1e-6)
    np.testing.assert_allclose(jit_ld, plain_ld, atol=1e-5)

    # vmap over rows: each row is a batch of one.
    row = lambda xi, si: factory(key, si[None]).forward_and_log_det(xi[None])
    vm_y, vm_ld = jax.vmap(row)(x, states)
    np.testing.assert_allclose(vm_y[:, 0], plain_y, atol=1e-6)
    np.testing.assert_allclose(vm_ld[:, 0], plain_ld, atol=1e-5)


def test_fresh_coupling_is_identity(key):
    states = _states(key)
    params = init_coupling_params(key, DIM, STATE_DIM, (16, 16))
    x = jax.random.normal(key, (BATCH, DIM))
    y, log_det = ConditionalAffineCoupling.from_params(params, states, True, (16, 16)).forward_and_log_det(x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(log_det, jnp.zeros(BATCH))


def test_coupling_keeps_the_chosen_half(key):
    k1, k2 = jax.random.split(key)
    states = _states(k1)
    params = perturb(k2, init_coupling_params(k1, DIM, STATE_DIM, (16, 16)))
    x = jax.random.normal(key, (BATCH, DIM))
    first = ConditionalAffineCoupling.from_params(params, states, False, (16, 16)).forward(x)
    second = ConditionalAffineCoupling.from_params(params, states, True, (16, 16)).forward(x)
    np.testing.assert_array_equal(first[:, :2], x[:, :2])
    np.testing.assert_array_equal(second[:, 2:], x[:, 2:])
    assert not np.allclose(first[:, 2:], x[:, 2:])


def test_coupling_depends_on_condition(key):
    k1, k2 = jax.random.split(key)
    params = perturb(k2, init_coupling_params(k1, DIM, STATE_DIM, (16, 16)))
    x = jnp.ones((BATCH, DIM))
    bij = lambda s: ConditionalAffineCoupling.from_params(params, s, False, (16, 16))
    assert not np.allclose(bij(_states(k1)).forward(x), bij(_states(k2)).forward(x))


def test_odd_dimension_coupling_is_refused(key):
    with pytest.raises(ValueError, match="even dimension"):
        init_coupling_params(key, 3, STATE_DIM)


def test_tanh_clamps_and_stays_finite():
    y, log_det = Tanh(1e-5).forward_and_log_det(jnp.array([[30.0, -30.0]]))
    np.testing.assert_allclose(y, [[1 - 1e-5, -(1 - 1e-5)]], rtol=1e-7)
    assert np.isfinite(log_det).all()
    x, log_det = Atanh(1e-5).forward_and_log_det(jnp.array([[1.0, -1.0]]))
    assert np.isfinite(x).all() and np.isfinite(log_det).all()


def test_decoder_clamp_gives_no_gradient_beyond_it():
    grad = jax.grad(lambda z: Tanh(1e-5).inverse(z).sum())(jnp.array([[0.999999, 0.5]]))
    assert grad[0, 0] == 0.0 and grad[0, 1] > 0.0


def test_composes_in_a_distrax_chain(key):
    chain = distrax.Chain([Tanh(), make_actnorm(key, None), Atanh()])
    x = jax.random.uniform(key, (BATCH, DIM), minval=-0.9, maxval=0.9)
    y, log_det = chain.forward_and_log_det(x)
    np.testing.assert_allclose(chain.inverse(y), x, atol=1e-4)
    expected = jnp.linalg.slogdet(jax.jacfwd(lambda v: chain.forward(v[None])[0])(x[0]))[1]
    np.testing.assert_allclose(log_det[0], expected, atol=1e-4, rtol=1e-4)
