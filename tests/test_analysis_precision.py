"""analysis.precision: re-quantised bundles are re-rounded exactly by the contract's rules; formats,
footprints and sweeps behave."""
from __future__ import annotations

import math
from fractions import Fraction
from itertools import pairwise

import numpy as np
import pytest

from analysis.cache import Cache
from analysis.data import EvalData
from analysis.precision import (
    KNOBS,
    WEIGHT_ROLES,
    calibrate,
    fit_format,
    footprint_bytes,
    requantize_bundle,
    run_precision,
    variant,
)
from spec import Arch, Bundle, Format, Formats, Rounding, random_bundle, tensor_specs
from spec.arch import memory_footprint

ARCH = Arch(d_in=2, n_classes=3, hidden=8, layers=2, taps=3, d_max=5)


def _ref_code(code: int, fo: Format, fn: Format) -> tuple[int, bool]:
    """Independent reference: the exact rational value, rounded to fn.frac by fn's rule, clipped."""
    v = Fraction(int(code)) * Fraction(2) ** (fn.frac - fo.frac)
    if fn.rounding is Rounding.FLOOR:
        q = math.floor(v)
    elif fn.rounding is Rounding.HALF_UP:
        q = math.floor(v + Fraction(1, 2))
    else:
        q = round(v)                                   # Fraction.__round__: ties to even
    c = min(max(q, fn.min_int), fn.max_int)
    return c, c != q


@pytest.mark.parametrize("rounding", list(Rounding))
def test_requantized_codes_are_re_rounded_exactly(rounding):
    fm = Formats(**{r: Format(True, 8, 6, rounding) for r in WEIGHT_ROLES})
    b = random_bundle(ARCH, fm, seed=4, scale=2.0)
    new = {"w_rnn": Format(True, 4, 3, rounding), "w_mix": Format(True, 3, 2, rounding),
           "w_out": Format(True, 5, 6, rounding), "w_conv": Format(True, 10, 8, rounding)}   # w_conv widened
    nb = requantize_bundle(b, new)
    assert isinstance(nb, Bundle) and nb.formats.w_rnn == new["w_rnn"] and nb.formats.w_enc == b.formats.w_enc
    n_sat = {}
    for s in tensor_specs(ARCH):
        a, q = np.asarray(b.tensors[s.name]), np.asarray(nb.tensors[s.name])
        if s.role in new:
            fo, fn = getattr(b.formats, s.role), new[s.role]
            ref = [_ref_code(c, fo, fn) for c in a.ravel().tolist()]
            assert q.ravel().tolist() == [c for c, _ in ref], s.name
            k = sum(sat for _, sat in ref)
            if k:
                n_sat[s.name] = k
        else:
            np.testing.assert_array_equal(a, q)
    assert nb.meta["requantized"]["saturated"] == n_sat
    assert n_sat, "the narrow w_out (s5f6) must saturate some codes of a wide random bundle"
    # widening is exact: same real values
    for name in ("layers.0.conv.w", "layers.1.conv.w"):
        np.testing.assert_array_equal(np.asarray(nb.tensors[name]), np.asarray(b.tensors[name]) << 2)
    assert nb.meta["requantized"]["changes"]["w_rnn"] == "s8f6->s4f3"


def test_requantize_identity_and_gate_bits():
    b = random_bundle(ARCH, seed=0)
    same = requantize_bundle(b, {})
    for k in b.tensors:
        np.testing.assert_array_equal(same.tensors[k], b.tensors[k])
    g = requantize_bundle(b, gate_bits=4)
    assert g.arch.gate_bits == 4 and g.formats == b.formats
    assert g.meta["requantized"]["changes"] == {"gate_bits": "6->4"}


def test_fit_format():
    f = Format(True, 8, 6)
    assert fit_format(f, 4).name == "s4f2"                      # keep the range: drop 4 LSBs
    assert fit_format(f, 4, max_abs_code=20).name == "s4f4"     # |code| <= 20 needs 5 magnitude bits
    assert fit_format(f, 6, max_abs_code=20).name == "s6f6"     # fits without dropping anything
    assert fit_format(f, 10).name == "s10f8"                    # wider: more fraction bits, same range
    assert fit_format(Format(True, 16, 10), 8, max_abs_code=748).name == "s8f7"   # 748 >> 3 = 94 <= 127
    assert fit_format(Format(True, 16, 10), 8, max_abs_code=1023).name == "s8f6"  # 1023 >> 3 rounds to 128
    assert fit_format(Format(False, 6, 6), 4).name == "u4f4"
    assert fit_format(f, 4, max_abs_code=20).rounding is f.rounding
    # the fitted format holds the largest magnitude without saturating, with as many fraction bits
    # as possible (one more would saturate), never more than the original
    for m in (1, 3, 20, 63, 64, 100, 127):
        for bits in range(2, 8):
            g = fit_format(f, bits, m)
            assert not _ref_code(m, f, g)[1] and not _ref_code(-m, f, g)[1], (m, bits, g.name)
            if g.frac < f.frac:
                assert _ref_code(m, f, g.with_(frac=g.frac + 1))[1], (m, bits, g.name)


def test_footprint_monotone_in_bits():
    b = random_bundle(ARCH, seed=0)
    ranges = {r: 40 for r in WEIGHT_ROLES} | {"h": 700, "dl": 900}
    for kb in KNOBS.values():
        fps = [footprint_bytes(variant(b, kb, bits, ranges))["total_bytes"] for bits in kb.bits]
        assert all(x <= y for x, y in pairwise(fps)), kb.name
        if kb.name == "z":
            assert len(set(fps)) == 1                            # the gate code is not stored
        else:
            assert all(x < y for x, y in pairwise(fps)), kb.name
    # the formula itself: weights bits scale with the width of their roles
    v2, v8 = variant(b, KNOBS["weights"], 2, ranges), b
    n_w = sum(math.prod(s.shape) for s in tensor_specs(ARCH) if s.role in WEIGHT_ROLES)
    d = memory_footprint(v8.arch, v8.formats)["weights_bits"] - memory_footprint(v2.arch, v2.formats)["weights_bits"]
    assert d == 6 * n_w
    vdl = variant(b, KNOBS["dl"], 8, ranges)
    assert memory_footprint(vdl.arch, vdl.formats)["delay_line_bits"] == ARCH.layers * ARCH.hidden * ARCH.d_max * 8


def test_calibrate_and_run_precision(tmp_path):
    b = random_bundle(ARCH, seed=2)
    rng = np.random.default_rng(0)
    x = rng.integers(-20000, 20000, size=(5, 30, 2)).astype(np.int16)
    d = EvalData(x, rng.integers(0, 3, 5), np.full(5, 30), "synthetic", list("abc"), "test")
    r = calibrate(b, d, n=2, headroom=1)
    assert r["w_rnn"] == int(np.abs(np.concatenate([b.tensors[f"layers.{i}.rnn.{w}"].ravel() for i in range(2)
                                                  for w in ("wz", "wh")])).max())
    from sim import Network
    tr = Network(b).run(x[:2].astype(np.int64), trace=True).trace
    hmax = max(int(np.abs(tr[f"layers.{i}.{k}"]).max()) for i in range(2) for k in ("h", "hc"))
    assert r["h"] == hmax << 1
    res = run_precision(b, d, points=2, ranges=r, batch=4, cache=Cache(tmp_path), workers=1, progress=False)
    assert set(res) == set(KNOBS)
    for pr in res.values():
        assert pr.default_bits in pr.bits and list(pr.bits) == sorted(pr.bits)
        i = list(pr.bits).index(pr.default_bits)
        assert pr.acc[i] == pr.exact                           # the default variant is the bundle itself
        assert pr.footprint[i] == footprint_bytes(b)["total_bytes"]
