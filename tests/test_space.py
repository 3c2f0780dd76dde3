import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jaxopt_mat import ConfigError, InfeasibleError, SearchSpace
from jaxopt_mat.constraint_text import parse_constraint


def test_unit_cube_maps_round_trip(agnp_space):
    x = np.array([[10.0, 20.0, 5.0, 3.0, 500.0]])
    np.testing.assert_allclose(agnp_space.from_unit(agnp_space.to_unit(x)), x)
    np.testing.assert_allclose(agnp_space.to_unit(np.array(agnp_space.low)), 0.0)


def test_feasibility_follows_the_constraint(agnp_space):
    inside = np.array([[40.0, 30.0, 10.0, 10.0, 500.0]])  # sum 90
    outside = np.array([[40.0, 30.0, 10.0, 10.5, 500.0]])  # sum 90.5
    assert bool(agnp_space.is_feasible(inside)[0])
    assert not bool(agnp_space.is_feasible(outside)[0])


_project = jax.jit(lambda space, u: space.project_unit(u))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (7, 5), elements=st.floats(-2.0, 3.0)))
def test_projection_is_exactly_feasible_for_any_point(agnp_space, u):
    p = _project(agnp_space, jnp.asarray(u))
    x = agnp_space.from_unit(p)
    assert bool(jnp.all(agnp_space.is_feasible(x, atol=0.0)))


def test_projection_leaves_feasible_points_alone(agnp_space):
    u = agnp_space.to_unit(np.array([[10.0, 20.0, 5.0, 3.0, 500.0]]))
    np.testing.assert_allclose(agnp_space.project_unit(u), u, atol=1e-12)


def test_projection_matches_the_euclidean_projection_onto_a_half_space():
    space = SearchSpace([0.0, 0.0], [1.0, 1.0], A=[[1.0, 1.0]], b=[1.0])
    p = space.project_unit(jnp.array([[0.9, 0.7]]))
    # Closest point of {u1 + u2 <= 1}: move along the normal.
    np.testing.assert_allclose(p, [[0.6, 0.4]], atol=1e-6)


def test_space_is_a_pytree_that_survives_jit(agnp_space):
    f = jax.jit(lambda s, u: s.project_unit(u))
    out = f(agnp_space, jnp.full((3, 5), 0.9))
    assert bool(jnp.all(agnp_space.is_feasible(agnp_space.from_unit(out), atol=0.0)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(low=[0.0, 1.0], high=[1.0, 1.0]), "must be below"),
        (dict(low=[0.0], high=[1.0, 2.0]), "entries"),
        (dict(low=[0.0, 0.0], high=[1.0, 1.0], names=["a", "a"]), "unique"),
        (dict(low=[0.0, np.nan], high=[1.0, 1.0]), "finite"),
        (dict(low=[0.0, 0.0], high=[1.0, 1.0], A=[[0.0, 0.0]], b=[1.0]), "non-zero"),
    ],
)
def test_malformed_spaces_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SearchSpace(**kwargs)


def test_infeasible_constraints_are_refused():
    with pytest.raises(InfeasibleError, match="no feasible region"):
        SearchSpace([4.0, 10.0], [45.0, 40.0], A=[[1.0, 1.0]], b=[10.0])


def test_constraint_parsing_reads_coefficients_and_directions():
    a, b = parse_constraint("q_a + 2*q_b - 0.5*q_c <= 90", ["q_a", "q_b", "q_c"])
    np.testing.assert_allclose(a, [1.0, 2.0, -0.5])
    assert b == 90.0
    a, b = parse_constraint("q_a >= 3", ["q_a", "q_b"])
    np.testing.assert_allclose(a, [-1.0, 0.0])
    assert b == -3.0


@pytest.mark.parametrize("expr, message", [
    ("q_a + q_z <= 9", "unknown input 'q_z'"),
    ("q_a + q_b", "expected '<='"),
    ("q_a <= ten", "must be a number"),
    ("q_a ** 2 <= 4", "cannot read"),
])
def test_malformed_constraints_are_refused_with_the_reason(expr, message):
    with pytest.raises(ConfigError, match=message):
        parse_constraint(expr, ["q_a", "q_b"])


def test_points_on_a_constraint_stay_feasible_through_unit_conversions(agnp_space):
    # Points exactly on q_agno3 + q_pva + q_tsc + q_seed = 90, or a rounding error
    # beyond it, must come back exactly feasible in physical units.
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(4), size=500)
    x = np.column_stack([w * 90.0, rng.uniform(200, 1000, 500)])
    x[:, :4] = np.clip(x[:, :4], agnp_space.low[:4], agnp_space.high[:4])
    # A point found on the constraint in a closed loop, whose feasibility once
    # depended on the summation order of a batched matrix product.
    x[0] = [35.88916504, 30.73978457, 11.69802119, 11.6730292, 200.75489361]
    x[0, 3] = 90.0 - x[0, :3].sum()
    u = agnp_space.to_unit(jnp.asarray(x)) * (1 + 1e-15)
    pu = _project(agnp_space, u)
    # Projected points keep a margin inside the constraint, so rounding in any
    # later computation cannot push them out.
    assert float(jnp.max(pu @ agnp_space.A_unit.T - agnp_space.b_unit)) < -5e-11
    p = agnp_space.from_unit(pu)
    for size in (1, 15, 500):
        assert bool(jnp.all(agnp_space.is_feasible(p[:size], atol=0.0)))
    # ... and those that were feasible (up to rounding) stay essentially where they were.
    was = np.asarray(agnp_space.is_feasible(jnp.asarray(x), atol=1e-12))
    assert was.sum() > 100
    np.testing.assert_allclose(np.asarray(p)[was], x[was], atol=1e-6)
