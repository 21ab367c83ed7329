"""The bit-accurate model against its float64 reference (sim.reference)."""
import numpy as np
import pytest

from sim import Network, Reference, deviation
from spec import Arch, Format, Formats, random_bundle

#: Activations, delay line, state and logits in s40f24 (2**-24 resolution), gate codes of 16 bits.
#: The weights keep their default formats: both models use the very same weight codes, so weight
#: precision does not enter the comparison. (s48f30 activations with s24f16 weights, as first
#: suggested, are rejected by spec.arch.check_formats: their accumulators could exceed 2**53.)
W40 = Format(True, 40, 24)
WIDE = Formats(act=W40, dl=W40, h=W40, logit=W40, logit_acc=Format(True, 56, 24))

#: Named tolerances (relative to the reference's largest magnitude; measured ~1e-5 with 16-bit gates)
WIDE_REL_TOL = 1e-4
#: with 6-bit gates the gate quantisation (z step 1/64) dominates: measured ~5e-3
GATE6_REL_TOL = 3e-2
#: default formats: measured step-logit deviation ~5e-3 of full scale on these random networks
DEFAULT_REL_TOL = 5e-2


def _x(arch, B, T, seed=0):
    rng = np.random.default_rng(seed)
    if arch.encoder == "linear":
        return rng.integers(-32768, 32768, (B, T, arch.d_in))
    return rng.integers(0, arch.d_in, (B, T))


ARCHS = [Arch(d_in=2, n_classes=4, hidden=16, layers=2, taps=4, d_max=15, gate_bits=16),
         Arch(d_in=2, n_classes=3, hidden=12, layers=2, taps=3, d_max=9, gate_bits=16, mix="glu"),
         Arch(d_in=9, n_classes=3, hidden=8, layers=1, taps=2, d_max=5, gate_bits=16, encoder="embedding",
              mix="none", norm="none", readout="last")]


@pytest.mark.parametrize("arch", ARCHS, ids=["mlp", "glu", "embed-none-last"])
def test_wide_formats_approach_float64_reference(arch):
    b = random_bundle(arch, WIDE, seed=1)
    x = _x(arch, 3, 300)
    d = deviation(b, x, lengths=np.array([300, 200, 57]))
    print({k: f"{v:.2e}" for k, v in d.items()})
    assert d["step_logits_rel"] < WIDE_REL_TOL
    assert d["logits_rel"] < WIDE_REL_TOL
    for i in range(arch.layers):
        assert d[f"layers.{i}.h_rel"] < WIDE_REL_TOL
    assert d["argmax_agreement"] == 1.0
    # the same network with 6-bit gates is much further away: the gap is the gate quantisation
    b6 = random_bundle(Arch(**{**arch.to_json(), "gate_bits": 6}), WIDE, seed=1)
    d6 = deviation(b6, x, lengths=np.array([300, 200, 57]))
    assert WIDE_REL_TOL < d6["step_logits_rel"] < GATE6_REL_TOL
    assert d6["step_logits_rel"] > 30 * d["step_logits_rel"]


def test_reference_matches_trace_structure():
    arch = ARCHS[0]
    b = random_bundle(arch, WIDE, seed=2)
    x = _x(arch, 2, 20)
    ref = Reference(b).run(x, trace=True)
    res = Network(b).run(x, trace=True)
    assert set(ref.trace) == set(res.trace)
    for k in ref.trace:
        assert ref.trace[k].shape == res.trace[k].shape, k
    # the first step's encoder output agrees to the format's resolution
    np.testing.assert_allclose(res.trace["enc"] * 2.0 ** -24, ref.trace["enc"], atol=2.0 ** -24)


def test_default_formats_deviation_reported():
    """The default formats' distance from the float64 reference, printed (run with -s to see it)."""
    arch = Arch(d_in=1, n_classes=12, hidden=32, layers=2, taps=8, d_max=63)
    b = random_bundle(arch, seed=3)
    rng = np.random.default_rng(0)
    x = np.clip(np.round(rng.standard_normal((8, 400, 1)) * 3000), -32768, 32767).astype(np.int64)
    d = deviation(b, x)
    print("default-format deviation from float64:", {k: f"{v:.3e}" for k, v in d.items()})
    assert set(d) >= {"logits_max_abs", "logits_rel", "step_logits_max_abs", "step_logits_rms", "step_logits_rel",
                      "argmax_agreement", "layers.0.h_rms", "layers.1.h_rel", "layers.1.a_rms"}
    assert 0 < d["step_logits_rel"] < DEFAULT_REL_TOL
    assert d["argmax_agreement"] >= 0.75
