import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxopt_mat import combine_replicates


def test_replicates_are_combined_by_their_median():
    x = [[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [1.0, 2.0], [3.0, 4.0]]
    y = [0.1, 5.0, 0.9, 100.0, 7.0]
    c = combine_replicates(x, y)
    np.testing.assert_array_equal(c.x, [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(c.y, [0.9, 6.0])
    np.testing.assert_array_equal(c.counts, [3, 2])
    np.testing.assert_array_equal(c.index, [0, 1, 0, 0, 1])


def test_values_that_went_through_text_still_match():
    a = 0.1 + 0.2
    c = combine_replicates([[a], [float(repr(0.3))]], [1.0, 3.0])
    assert c.x.shape[0] == 1


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.floats(-1e3, 1e3)), min_size=1, max_size=30))
def test_each_condition_gets_the_median_of_exactly_its_rows(rows):
    x = np.array([[float(k)] for k, _ in rows])
    y = np.array([v for _, v in rows])
    c = combine_replicates(x, y)
    for cond, value, count in zip(c.x[:, 0], c.y, c.counts):
        mine = y[x[:, 0] == cond]
        assert count == mine.size
        assert value == np.median(mine)
