import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jaxopt_mat import ConfigError, InfeasibleError, SearchSpace
from jaxopt_mat.space import parse_constraint


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
