"""Property tests of the fixed-point contract against an exact rational reference."""
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spec.arch import gate_code
from spec.fixedpoint import (
    Format,
    FormatError,
    Rounding,
    align,
    quantize_real,
    requantize,
    round_shift,
    saturate,
    storage_dtype,
    to_int64,
)


def ref_round(q: Fraction, rounding: Rounding) -> int:
    """Exact rational rounding reference."""
    fl = math.floor(q)
    rem = q - fl
    if rounding is Rounding.FLOOR:
        return fl
    if rounding is Rounding.HALF_UP:
        return fl + (1 if rem >= Fraction(1, 2) else 0)
    if rem > Fraction(1, 2):
        return fl + 1
    if rem < Fraction(1, 2):
        return fl
    return fl + (fl % 2)


formats = st.builds(Format, st.booleans(), st.integers(2, 40), st.integers(-8, 40), st.sampled_from(list(Rounding)))
roundings = st.sampled_from(list(Rounding))


@settings(max_examples=400, deadline=None)
@given(x=st.integers(-(2 ** 60), 2 ** 60), s=st.integers(0, 40), r=roundings)
def test_round_shift_matches_rational(x, s, r):
    got = int(round_shift(np.int64(x), s, r))
    assert got == ref_round(Fraction(x, 2 ** s), r)


@settings(max_examples=200, deadline=None)
@given(x=st.lists(st.integers(-(2 ** 50), 2 ** 50), min_size=1, max_size=20), s=st.integers(0, 30), r=roundings)
def test_round_shift_numpy_and_torch_agree(x, s, r):
    a = round_shift(np.array(x, dtype=np.int64), s, r)
    b = round_shift(torch.tensor(x, dtype=torch.int64), s, r)
    np.testing.assert_array_equal(a, b.numpy())


@settings(max_examples=400, deadline=None)
@given(x=st.integers(-(2 ** 55), 2 ** 55), xf=st.integers(0, 40), fmt=formats)
def test_requantize_matches_rational(x, xf, fmt):
    if xf - fmt.frac < -(62 - 56):  # a left shift that would leave int64 is not a valid use
        return
    got, n = requantize(np.array([x], dtype=np.int64), xf, fmt)
    exact = ref_round(Fraction(x, 2 ** xf) / fmt.lsb, fmt.rounding)
    want = min(max(exact, fmt.min_int), fmt.max_int)
    assert int(got[0]) == want
    assert n == int(exact != want)


@pytest.mark.parametrize("fmt", [Format(True, 2, 0), Format(True, 8, 6), Format(False, 6, 6),
                                 Format(True, 16, 15), Format(False, 1, 0), Format(True, 40, 8)])
def test_format_edges(fmt):
    # exactly at the edges: no saturation; one beyond: saturate and count
    x = np.array([fmt.min_int, fmt.max_int, fmt.min_int - 1, fmt.max_int + 1], dtype=np.int64)
    y, n = saturate(x, fmt)
    np.testing.assert_array_equal(y, [fmt.min_int, fmt.max_int, fmt.min_int, fmt.max_int])
    assert n == 2
    assert fmt.min_value == fmt.min_int * fmt.lsb and fmt.max_value == fmt.max_int * fmt.lsb
    assert np.iinfo(storage_dtype(fmt)).max >= fmt.max_int
    # a value that rounds up to one past the maximum saturates (and is counted)
    y, n = requantize(np.array([2 * fmt.max_int + 1], dtype=np.int64), fmt.frac + 1, fmt)
    assert int(y[0]) == fmt.max_int and n == 1


@settings(max_examples=300, deadline=None)
@given(v=st.floats(-1e6, 1e6, allow_nan=False), fmt=formats)
def test_quantize_real_matches_rational(v, fmt):
    got, n = quantize_real(np.array([v]), fmt)
    exact = ref_round(Fraction(v) / fmt.lsb, fmt.rounding)
    want = min(max(exact, fmt.min_int), fmt.max_int)
    assert int(got[0]) == want and n == int(exact != want)
    got_t, _ = quantize_real(torch.tensor([v], dtype=torch.float64), fmt)
    assert int(got_t[0]) == want


def test_quantize_rejects_nan():
    with pytest.raises(FormatError, match="NaN"):
        quantize_real(np.array([np.nan]), Format(True, 8, 4))


@settings(max_examples=300, deadline=None)
@given(acc=st.integers(-(2 ** 40), 2 ** 40), frac=st.integers(4, 30), bits=st.integers(2, 10), r=roundings)
def test_gate_code_is_quantised_hard_sigmoid(acc, frac, bits, r):
    if frac < bits - 2:
        return
    x = Fraction(acc, 2 ** frac)
    # z = clip(x/4 + 1/2, 0, 1 - 2**-bits) on the grid k / 2**bits
    k = ref_round(x / 4 * 2 ** bits, r) + 2 ** (bits - 1)
    k = min(max(k, 0), 2 ** bits - 1)
    assert int(gate_code(np.int64(acc), frac, bits, r)) == k


def test_gate_full_scale_unreachable():
    k = gate_code(np.array([10 ** 12], dtype=np.int64), 16, 6, "half_up")
    assert int(k[0]) == 63  # z = 63/64: 1.0 is unreachable by construction


def test_align_and_to_int64():
    assert int(align(np.int64(3), 2, 5)) == 24
    with pytest.raises(FormatError):
        align(np.int64(3), 5, 2)
    np.testing.assert_array_equal(to_int64(np.array([1.0, -2.0])), [1, -2])
    with pytest.raises(FormatError):
        to_int64(np.array([0.5]))
    with pytest.raises(FormatError):
        to_int64(np.array([2.0 ** 54]))


@pytest.mark.parametrize("bad, msg", [
    (dict(signed=True, bits=1, frac=0), "at least 2 bits"),
    (dict(signed=True, bits=0, frac=0), "bits must be"),
    (dict(signed=True, bits=70, frac=0), "bits must be"),
    (dict(signed=1, bits=8, frac=0), "signed must be a bool"),
    (dict(signed=True, bits=8, frac=0.5), "frac must be"),
    (dict(signed=True, bits=8, frac=0, rounding="nearest"), "rounding must be one of"),
])
def test_bad_formats(bad, msg):
    with pytest.raises(FormatError, match=msg):
        Format(**bad)


def test_format_json_and_parse_round_trip():
    f = Format(False, 6, 6, Rounding.HALF_EVEN)
    assert Format.from_json(f.to_json()) == f
    assert Format.parse("s16f10") == Format(True, 16, 10)
    assert Format.parse("u6f6").name == "u6f6"
    with pytest.raises(FormatError, match="look like"):
        Format.parse("q1.15")
    with pytest.raises(FormatError, match="unknown field"):
        Format.from_json({"signed": True, "bits": 8, "frac": 0, "scale": 2})
