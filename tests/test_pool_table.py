"""The candidate table's two readers: the columnar one (fast) must agree with the row reader (exact) on every table."""

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jaxopt_mat.errors import DataError
from jaxopt_mat.pool_table import _parse_columnar, _parse_rows, parse_pool

CLEAN = ["1", "2.5", "-3e-2", "0", "7", "0.1"]
MESSY = [" 4", "7 ", "", "x", "nan", "inf", "1e400", '"5"', "L2"]
MESSY_IDS = [" p6", "", "p1"]
NAMES = ["a", "b", "c", "name", "strength"]
MESSY_NAMES = ["", " a", "a", "id"]


@st.composite
def tables(draw):
    """Mostly well-formed tables (so the columnar reader is exercised), with a messy cell, row or name now and then."""
    rare = lambda: draw(st.integers(0, 19)) == 0  # noqa: E731
    header = ["id"] + draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    if rare():
        header.insert(draw(st.integers(0, len(header))), draw(st.sampled_from(MESSY_NAMES)))
    n = draw(st.integers(1, 8))
    lines = [",".join(header)]
    for i in range(n):
        cells = [(draw(st.sampled_from(MESSY_IDS)) if rare() else f"p{i}") if h == "id"
                 else draw(st.sampled_from(MESSY if rare() else CLEAN)) for h in header]
        if rare():
            cells = cells[:-1] if draw(st.booleans()) else cells + ["9"]
        lines.append(",".join(cells))
        if rare():
            lines.append("")
    return "\n".join(lines) + "\n"


def _row_reader(text, features, exclude):
    try:
        return _parse_rows(text, "t.csv", features, exclude=exclude)
    except DataError:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.sampled_from([None, ["a"], ["a", "b"]]), st.sampled_from([(), ("strength",)]))
def test_the_columnar_reader_returns_what_the_row_reader_returns(text, features, exclude):
    fast = _parse_columnar(text, features, exclude)
    event("columnar" if fast is not None else "row reader")
    if fast is None:
        return  # the row reader decides (and names the problem)
    slow = _row_reader(text, features, exclude)
    assert slow is not None, f"the columnar reader accepted a table the row reader refuses:\n{text}"
    assert fast.ids == slow.ids and fast.names == slow.names
    np.testing.assert_array_equal(fast.features, slow.features)


def test_a_clean_table_takes_the_columnar_path_with_exact_values():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) * 10.0 ** rng.integers(-8, 8, size=(200, 3))
    lines = ["id,a,b,label,c"] + [f"m{i},{a!r},{b!r},L{i % 3},{c!r}" for i, (a, b, c) in enumerate(x.tolist())]
    text = "\n".join(lines) + "\n"
    fast = _parse_columnar(text, None, ())
    assert fast is not None and fast.names == ["a", "b", "c"]
    np.testing.assert_array_equal(fast.features, x)  # Python's repr round-trips exactly; so must the reader
    assert fast.ids == [f"m{i}" for i in range(200)]


@pytest.mark.parametrize("text, message", [
    ("id,a,b\np1,1,2\np2,2\n", "row 3: 2 fields, expected 3"),
    ("id,a,b\np1,1,2\np1,2,3\n", "id 'p1' repeats row 2"),
    ("id,a,b\np1,1,2\np2,,3\n", "feature a is missing"),
    ("id,a,a\np1,1,2\np2,2,3\n", "appear more than once"),
])
def test_problems_are_named_whichever_reader_starts(text, message):
    with pytest.raises(DataError, match=message):
        parse_pool(text, "t.csv")
