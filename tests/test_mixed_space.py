"""Mixed inputs in the core: kinds, the GP's categorical kernel, and the maximisers over mixed spaces."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxopt_mat.acquisition.batch import local_penalization_batch
from jaxopt_mat.errors import ConfigError, InfeasibleError
from jaxopt_mat.input_kinds import InputKind, lattice_point, lattice_size
from jaxopt_mat.optimize import greedy_batch_unit, maximize, maximize_unit
from jaxopt_mat.optimize_mixed import maximize_enumerated_unit
from jaxopt_mat.space import SearchSpace
from jaxopt_mat.surrogates.gp import fit_gp
from jaxopt_mat.surrogates.gp_likelihood import matern52_cross

LABELS = ("L1", "L2", "L3", "L4")


def mixed_space(constraint=True):
    kinds = (InputKind(), InputKind("integer"), InputKind("categorical", labels=LABELS),
             InputKind("discrete", levels=(1.0, 2.0, 5.0)))
    A, b = ([[1.0, 1.0, 0.0, 0.0]], [12.0]) if constraint else (None, None)
    return SearchSpace([0, 0, 0, 1], [10, 10, 3, 5], names=["flow", "cycles", "ligand", "temp"], A=A, b=b,
                       kinds=kinds)


def test_a_categorical_input_may_not_enter_a_linear_constraint_and_needs_label_bounds():
    kinds = (InputKind(), InputKind("categorical", labels=("a", "b", "c")))
    with pytest.raises(ConfigError, match="categorical"):
        SearchSpace([0, 0], [1, 2], A=[[1.0, 1.0]], b=[2.0], kinds=kinds)
    with pytest.raises(ConfigError, match="k - 1"):
        SearchSpace([0, 0], [1, 5], kinds=kinds)


def test_an_integer_input_with_too_many_values_is_refused():
    with pytest.raises(ConfigError, match="at most 10000 values"):
        SearchSpace([0], [20_000], kinds=[InputKind("integer")])


def test_fixing_an_input_that_breaks_a_constraint_is_refused():
    space = mixed_space()
    kinds = list(space.kinds)
    kinds[1] = InputKind("integer", fixed=10.0)
    kinds[0] = InputKind(fixed=5.0)
    with pytest.raises(InfeasibleError):
        space.with_kinds(kinds)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 6), st.integers(1, 3))
def test_the_mixed_kernel_is_positive_definite(seed, k, n_cat):
    rng = np.random.default_rng(seed)
    kinds = [InputKind()] + [InputKind("categorical", labels=tuple(f"c{i}" for i in range(k)))] * n_cat
    space = SearchSpace([0.0] + [0.0] * n_cat, [1.0] + [k - 1.0] * n_cat, kinds=kinds)
    u = np.column_stack([rng.uniform(size=30)] + [rng.integers(0, k, 30) / (k - 1) for _ in range(n_cat)])
    u[5] = u[4]  # a repeated point
    f = space.features
    ls = jnp.asarray(np.exp(rng.normal(size=f.n_groups)))
    K = np.asarray(matern52_cross(f(jnp.asarray(u)), f(jnp.asarray(u)), f.lengthscales(ls), 1.3))
    assert np.allclose(K, K.T)
    assert np.linalg.eigvalsh(K).min() > -1e-9


def test_the_categorical_kernel_depends_only_on_whether_labels_are_equal():
    space = mixed_space(constraint=False)
    f = space.features
    rng = np.random.default_rng(0)
    u = np.asarray(space.snap_unit(rng.uniform(size=(40, 4))))
    perm = np.array([2, 0, 3, 1])  # relabel: index i becomes perm[i]
    v = u.copy()
    v[:, 2] = perm[np.round(u[:, 2] * 3).astype(int)] / 3
    ls = jnp.asarray([0.3, 0.7, 0.5, 1.1])
    K = matern52_cross(f(jnp.asarray(u)), f(jnp.asarray(u)), f.lengthscales(ls), 1.0)
    K_perm = matern52_cross(f(jnp.asarray(v)), f(jnp.asarray(v)), f.lengthscales(ls), 1.0)
    np.testing.assert_allclose(K, K_perm, atol=1e-14)
    # Two points that differ only in the label: the same covariance whichever two labels they hold.
    base = jnp.asarray([[0.4, 0.5, 0.0, 0.25]])
    values = {float(matern52_cross(f(base), f(base.at[0, 2].set(i / 3)), f.lengthscales(ls), 1.0)[0, 0])
              for i in (1, 2, 3)}
    assert max(values) - min(values) < 1e-14


def test_a_gp_learns_a_label_effect_and_gives_one_length_scale_per_input():
    space = mixed_space(constraint=False)
    rng = np.random.default_rng(1)
    x = np.asarray(space.from_unit(space.snap_unit(rng.uniform(size=(40, 4)))))
    effect = np.array([0.0, 2.0, -1.0, 0.5])
    y = effect[np.round(x[:, 2]).astype(int)] + 0.05 * x[:, 0] + 0.01 * rng.normal(size=40)
    model = fit_gp(x, y, key=jax.random.key(0), low=space.low, high=space.high, features=space.features)
    assert model.lengthscale.shape == (4,) and model.hyperparameters.shape == (7,)
    probe = np.array([[5.0, 5.0, i, 2.0] for i in range(4)])
    pred = np.asarray(model.predict(probe).mean)
    np.testing.assert_allclose(pred - pred.mean(), effect - effect.mean(), atol=0.15)
    # A warm start from the fitted hyper-parameters is accepted and keeps the fit.
    again = fit_gp(x, y, key=jax.random.key(1), low=space.low, high=space.high, features=space.features,
                   init=model.hyperparameters)
    np.testing.assert_allclose(np.asarray(again.predict(probe).mean), pred, atol=0.05)


def test_descriptor_features_are_the_labels_rows_scaled_to_the_unit_interval():
    kinds = (InputKind("categorical", labels=("a", "b", "c"), descriptors=((1.0, 5.0), (3.0, 5.0), (2.0, 7.0))),)
    space = SearchSpace([0.0], [2.0], kinds=kinds)
    f = space.features
    assert f.n_groups == 2 and f.names == ("x0:1", "x0:2")
    np.testing.assert_allclose(np.asarray(f(jnp.asarray([[0.0], [0.5], [1.0]]))), [[0, 0], [1, 0], [0.5, 1]])


def lattice_function(u):
    """A function on the unit cube with an interaction between coordinates."""
    return jnp.sin(5 * u[:, 0] + 2 * u[:, 1]) + jnp.cos(7 * u[:, 1] * u[:, 2]) - (u[:, 2] - 0.3) ** 2


def test_the_enumerated_maximum_over_a_finite_space_is_the_brute_force_one():
    kinds = (InputKind("integer"), InputKind("categorical", labels=("a", "b", "c", "d", "e")),
             InputKind("discrete", levels=(0.0, 0.1, 0.5, 0.9, 1.0)))
    space = SearchSpace([0, 0, 0], [20, 4, 1], A=[[1.0, 0.0, 10.0]], b=[24.0], kinds=kinds)
    u_best, v_best, _, _ = jax.jit(lambda s: maximize_enumerated_unit(lattice_function, s, n_best=5))(space)
    pts = np.array(list(itertools.product(*[np.asarray(c) for c in space.choices])))
    ok = np.asarray(space.is_feasible(np.asarray(space.from_unit(pts)), atol=0.0))
    vals = np.where(ok, np.asarray(lattice_function(jnp.asarray(pts))), -np.inf)
    assert float(v_best) == pytest.approx(vals.max(), abs=1e-12)
    np.testing.assert_allclose(np.asarray(u_best), pts[np.argmax(vals)], atol=1e-12)
    assert lattice_size(space.choices) == 21 * 5 * 5
    np.testing.assert_allclose(np.asarray(lattice_point(jnp.arange(len(pts)), space.choices)), pts, atol=1e-15)


def continuous_part(u):
    """A function of two continuous coordinates whose optimum moves with the label (coordinate 2)."""
    label = u[:, 2]
    return -((u[:, 0] - 0.2 - 0.5 * label) ** 2) - (u[:, 1] - 0.8 + 0.3 * label) ** 2 + 0.3 * jnp.sin(6 * label)


def test_the_vmapped_mixed_maximiser_matches_one_optimisation_per_combination():
    kinds = (InputKind(), InputKind(), InputKind("categorical", labels=("a", "b", "c", "d", "e")))
    space = SearchSpace([0, 0, 0], [1, 1, 4], kinds=kinds)
    opts = dict(n_starts=8, n_raw=256, n_steps=80, learning_rate=0.03)
    _, v_mixed, _, _ = jax.jit(lambda s, k: maximize_unit(continuous_part, s, k, **opts))(space, jax.random.key(0))
    per = []
    for i in range(5):
        fixed = space.with_kinds(kinds[:2] + (InputKind("categorical", labels=kinds[2].labels, fixed=float(i)),))
        per.append(float(jax.jit(lambda s, k: maximize_unit(continuous_part, s, k, **opts))(fixed, jax.random.key(0))[1]))
    assert float(v_mixed) == pytest.approx(max(per), abs=1e-6)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_every_point_of_a_mixed_batch_takes_allowed_values_and_keeps_the_constraints(seed):
    rng = np.random.default_rng(seed)
    space = mixed_space()
    x = np.asarray(space.from_unit(space.snap_unit(rng.uniform(size=(15, 4)))))
    x = x[np.asarray(space.is_feasible(x, atol=0.0))]
    y = np.sin(x[:, 0]) + 0.1 * x[:, 1] + np.round(x[:, 2]) * 0.3 + rng.normal(scale=0.1, size=len(x))
    model = fit_gp(x, y, key=jax.random.key(seed % 1000), low=space.low, high=space.high, features=space.features)
    batch = local_penalization_batch(model, space, 6, key=jax.random.key(1), best=y.max())
    bx = np.asarray(batch.x)
    assert np.all(space.satisfies_kinds(bx))
    assert np.all(np.asarray(space.is_feasible(bx, atol=0.0)))
    assert np.all(np.isfinite(np.asarray(batch.log_acquisition)))


def test_a_batch_on_a_finite_space_never_repeats_a_point_nor_a_pending_one():
    kinds = (InputKind("categorical", labels=("a", "b", "c")), InputKind("discrete", levels=(1.0, 2.0)))
    space = SearchSpace([0, 1], [2, 2], kinds=kinds)

    def score(carry, u):  # one point is far better than the others: a batch that could repeat it would
        return -jnp.sum((u - jnp.array([0.5, 1.0])) ** 2, axis=1)

    def record(carry, k, u, value):
        return carry, value

    pending = jnp.asarray([[0.5, 1.0], [0.0, 0.0]])
    _, us, values, _ = greedy_batch_unit(score, record, (), space, jax.random.key(0), 4, n_starts=4, n_raw=64,
                                         n_steps=5, learning_rate=0.02, exclude_unit=pending,
                                         exclude_mask=jnp.asarray([1.0, 0.0]))
    rows = {tuple(np.round(np.asarray(u), 9)) for u in us}
    assert len(rows) == 4 and (0.5, 1.0) not in rows
    assert np.all(np.isfinite(np.asarray(values)))


def test_fixed_inputs_hold_their_value_through_maximize():
    space = mixed_space()
    kinds = list(space.kinds)
    kinds[2] = InputKind("categorical", labels=LABELS, fixed=2.0)
    kinds[0] = InputKind(fixed=4.5)
    fixed = space.with_kinds(kinds)

    def fn(x):
        return -(x[:, 0] - 9) ** 2 - (x[:, 1] - 9) ** 2 - (x[:, 2] - 0.0) ** 2 - x[:, 3]

    res = maximize(fn, fixed, key=jax.random.key(0))
    x = np.asarray(res.x)
    assert x[0] == pytest.approx(4.5) and x[2] == pytest.approx(2.0)
    assert x[1] == 7.0 and x[3] == 1.0  # flow + cycles <= 12 leaves cycles 7; the lowest level
    assert bool(fixed.is_feasible(x[None], atol=0.0)[0])


def test_a_spectrum_gp_batch_over_a_categorical_and_an_integer_input_takes_allowed_values():
    from jaxopt_mat.acquisition.spectrum import spectrum_gp_batch
    from jaxopt_mat.surrogates.spectrum_gp import fit_spectrum_gp

    kinds = (InputKind(), InputKind("integer"), InputKind("categorical", labels=("Ag", "Au", "Cu")))
    space = SearchSpace([0, 1, 0], [1, 6, 2], kinds=kinds)
    rng = np.random.default_rng(3)
    x = np.asarray(space.from_unit(space.snap_unit(rng.uniform(size=(24, 3)))))
    wl = np.linspace(400, 700, 40)
    peak = 450 + 150 * x[:, 0] + 10 * x[:, 1] + 30 * np.round(x[:, 2])
    spectra = np.exp(-((wl[None] - peak[:, None]) / 40) ** 2)
    model = fit_spectrum_gp(x, spectra, key=jax.random.key(0), low=space.low, high=space.high,
                            features=space.features)
    target = np.exp(-((wl - 560) / 40) ** 2)
    sb = spectrum_gp_batch(model, space, target, 3, key=jax.random.key(1), best=0.1, n_raw=256, n_steps=30)
    bx = np.asarray(sb.x)
    assert np.all(space.satisfies_kinds(bx)) and np.all(np.asarray(space.is_feasible(bx, atol=0.0)))


def test_many_label_combinations_are_searched_by_label_exchanges():
    labels = tuple(f"c{i}" for i in range(12))
    cat = InputKind("categorical", labels=labels)
    space = SearchSpace([0, 0, 0, 0], [1, 11, 11, 11], kinds=(InputKind(), cat, cat, cat))  # 1,728 combinations
    rng = np.random.default_rng(4)
    w = jnp.asarray(rng.normal(size=(3, 12)))

    def fn(x):  # separable: exchanging one label at a time reaches the optimum
        idx = jnp.round(x[:, 1:]).astype(int)
        return w[0, idx[:, 0]] + w[1, idx[:, 1]] + w[2, idx[:, 2]] - (x[:, 0] - 0.3) ** 2

    res = maximize(fn, space, key=jax.random.key(0), n_starts=4, n_raw=32)
    x = np.asarray(res.x)
    np.testing.assert_array_equal(np.round(x[1:]).astype(int), np.argmax(np.asarray(w), axis=1))
    assert x[0] == pytest.approx(0.3, abs=1e-3)


def test_a_failing_label_says_nothing_of_its_neighbours_in_the_list():
    from jaxopt_mat.surrogates.feasibility import fit_feasibility

    kinds = (InputKind(), InputKind("categorical", labels=("a", "b", "c", "d", "e")))
    space = SearchSpace([0, 0], [1, 4], kinds=kinds)
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(size=15), np.repeat(np.arange(5), 3)]).astype(float)
    ok = x[:, 1] != 2  # label c failed all three times
    model = jax.jit(lambda m, z: m.probability(z))
    fitted = fit_feasibility(x, ok, low=space.low, high=space.high, features=space.features)
    p = np.asarray(model(fitted, np.array([[0.5, i] for i in range(5)])))
    # (Seen as an ordered number, the label index gives c 0.60 and d, next to it, 0.74.)
    assert p[2] < 0.3 and np.all(np.delete(p, 2) > 0.8)
