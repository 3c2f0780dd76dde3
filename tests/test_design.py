import numpy as np
import pytest

from jaxopt_mat import SearchSpace, latin_hypercube, random_design


@pytest.mark.parametrize("n, d", [(5, 2), (15, 5), (32, 3)])
def test_latin_hypercube_puts_one_point_in_each_slice_of_each_input(n, d):
    space = SearchSpace(np.zeros(d), np.full(d, 2.0))
    x = latin_hypercube(space, n, seed=1)
    bins = np.floor(x / 2.0 * n).astype(int)
    for j in range(d):
        assert sorted(bins[:, j]) == list(range(n))


def test_latin_hypercube_is_reproducible_from_its_seed(agnp_space):
    a = latin_hypercube(agnp_space, 15, seed=3)
    b = latin_hypercube(agnp_space, 15, seed=3)
    c = latin_hypercube(agnp_space, 15, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_constrained_latin_hypercube_is_feasible_and_spread_out(agnp_space):
    x = latin_hypercube(agnp_space, 15, seed=0)
    assert x.shape == (15, 5)
    assert bool(np.all(agnp_space.is_feasible(x, atol=0.0)))
    u = np.asarray(agnp_space.to_unit(x))
    dist = np.linalg.norm(u[:, None] - u[None], axis=-1) + np.eye(15) * 9
    # Random feasible points of this size have a median nearest-neighbour distance
    # well below the max-min design's; the design must beat random sampling.
    r = np.asarray(agnp_space.to_unit(random_design(agnp_space, 15, seed=0)))
    dr = np.linalg.norm(r[:, None] - r[None], axis=-1) + np.eye(15) * 9
    assert dist.min() > dr.min()


def test_random_design_is_feasible(agnp_space):
    x = random_design(agnp_space, 40, seed=2)
    assert x.shape == (40, 5)
    assert bool(np.all(agnp_space.is_feasible(x, atol=0.0)))
