"""Stream cases (no simulator): regression chunks of one pool are disjoint and together are the pool."""
from __future__ import annotations

import numpy as np
import pytest

from testbenches.streams import STREAMS, make_case


def _keys(case):
    return [x.tobytes() for x in case.xs]


# pool sizes within each fixture's test split (the ListOps fixture holds 4 test sequences)
@pytest.mark.parametrize("name,pool", [("gsc_stream", 6), ("listops_stream", 4), ("image_stream", 6)])
def test_chunks_of_one_pool_are_disjoint_and_cover_it(name, pool):
    half = pool // 2
    whole = make_case(name, n_seqs=pool, small=True, root="fixture", max_steps=200)
    parts = [make_case(name, n_seqs=half, offset=o, pool=pool, small=True, root="fixture", max_steps=200)
             for o in (0, half)]
    assert len(whole.xs) == pool
    assert _keys(parts[0]) + _keys(parts[1]) == _keys(whole)
    assert not set(_keys(parts[0])) & set(_keys(parts[1]))
    assert np.array_equal(np.concatenate([p.labels for p in parts]), whole.labels)


def test_bad_slice_is_refused():
    with pytest.raises(ValueError, match="offset"):
        make_case("listops_stream", n_seqs=2, offset=5, pool=4, small=True, root="fixture")
    with pytest.raises(KeyError):
        make_case("no_such_stream")
    assert "gsc_stream" in STREAMS
