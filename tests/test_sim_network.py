"""sim.Network: bit-exactness (literal README semantics, streaming == whole sequence), traces,
saturation counts, hand-computed networks, input validation."""
import numpy as np
import pytest

from sim import Network, saturation_names, trace_names
from spec import Arch, Format, Formats, random_bundle
from spec.arch import gate_code
from spec.bundle import Bundle
from spec.fixedpoint import requantize, round_shift, saturate

ARCHS = {
    "linear-mlp": Arch(d_in=2, n_classes=4, hidden=8, layers=2, taps=4, d_max=9),
    "linear-glu": Arch(d_in=3, n_classes=3, hidden=6, layers=2, taps=3, d_max=5, mix="glu"),
    "embed-mlp": Arch(d_in=11, n_classes=5, hidden=8, layers=2, taps=2, d_max=7, encoder="embedding"),
    "embed-glu-heaviside-last": Arch(d_in=7, n_classes=3, hidden=6, layers=1, taps=2, d_max=4,
                                     encoder="embedding", mix="glu", rnn_out="heaviside", readout="last"),
    "minimalist": Arch(d_in=1, n_classes=4, hidden=8, layers=2, taps=0, d_max=0, mix="none", norm="none",
                       skip=False, rnn_out="heaviside"),
    "noskip-last": Arch(d_in=2, n_classes=3, hidden=8, layers=2, taps=3, d_max=12, skip=False, readout="last"),
    "none-nonorm": Arch(d_in=1, n_classes=3, hidden=5, layers=1, taps=5, d_max=6, mix="none", norm="none"),
    "taps1-dmax0": Arch(d_in=1, n_classes=2, hidden=4, layers=1, taps=1, d_max=0),
}

#: narrow formats with every rounding rule, so that saturation and ties happen often
NARROW = Formats(act=Format(True, 10, 6, "half_even"), h=Format(True, 9, 6, "floor"), dl=Format(True, 8, 5),
                 logit=Format(True, 10, 4), logit_acc=Format(True, 14, 4), bias=Format(True, 10, 6),
                 w_norm=Format(True, 8, 5, "half_even"))


def inputs(arch, B, T, seed):
    rng = np.random.default_rng(seed)
    if arch.encoder == "linear":
        return rng.integers(-32768, 32768, (B, T, arch.d_in))
    return rng.integers(0, arch.d_in, (B, T))


# ---------------------------------------------------------------------------------------------
# A literal transcription of the README table: one step at a time, Python loops over channels
# and taps, integer matmuls (no BLAS), a plain list as the delay line. Slow and obvious.
# ---------------------------------------------------------------------------------------------
def literal_run(bundle, x):
    A, F = bundle.arch, bundle.formats
    W = {k: np.asarray(v, dtype=np.int64) for k, v in bundle.tensors.items()}
    fa, bz, grule = F.act.frac, A.gate_bits, F.h.rounding
    sats = {n: 0 for n in saturation_names(A)}

    def q(name, acc, f, fmt):
        v, n = requantize(acc, f, fmt)
        if name:
            sats[name] += n
        return v

    def sat(name, v, fmt):
        v, n = saturate(v, fmt)
        sats[name] += n
        return v

    def lin(w, b, v, f):          # W v + (b << (f - f_bias)), exact integers
        return v @ w.T + (b << (f - F.bias.frac))

    B, T = x.shape[:2]
    H, C = A.hidden, A.n_classes
    hist = [[] for _ in range(A.layers)]
    h = [np.zeros((B, H), np.int64) for _ in range(A.layers)]
    acc = np.zeros((B, C), np.int64)
    steps = []
    for t in range(T):
        if A.encoder == "linear":
            f = F.x.frac + F.w_enc.frac
            a = q("enc", lin(W["enc.w"], W["enc.b"], x[:, t].astype(np.int64), f), f, F.act)
        else:
            a = W["enc.table"][x[:, t]]
        for i in range(A.layers):
            p = f"layers.{i}."
            if A.taps:
                s = q(p + "s", a, fa, F.dl)
                hist[i].append(s)
                u0 = np.zeros((B, H), np.int64)
                for c in range(H):
                    for k in range(A.taps):
                        d = W[p + "conv.delay"][c, k]
                        if t - d >= 0:
                            u0[:, c] += W[p + "conv.w"][c, k] * hist[i][t - d][:, c]
                u = q(p + "u", u0, F.dl.frac + F.w_conv.frac, F.act)
                if A.skip:
                    u = sat(p + "u", u + a, F.act)
            else:
                u = a
            f = fa + F.w_rnn.frac
            k = gate_code(lin(W[p + "rnn.wz"], W[p + "rnn.bz"], u, f), f, bz, grule)
            hc = q(p + "hc", lin(W[p + "rnn.wh"], W[p + "rnn.bh"], u, f), f, F.h)
            h[i] = sat(p + "h", h[i] + round_shift(k * (hc - h[i]), bz, F.h.rounding), F.h)
            if A.rnn_out == "linear":
                o = q(p + "o", h[i], F.h.frac, F.act)
            else:
                o = (h[i] > 0).astype(np.int64) << fa
            r = sat(p + "r", o + u, F.act) if A.skip else o
            if A.mix != "none":
                E, f = A.mix_width, fa + F.w_mix.frac
                pp = lin(W[p + "mix.w1"], W[p + "mix.b1"], r, f)
                if A.mix == "mlp":
                    m1 = np.maximum(q(p + "m1", pp, f, F.act), 0)
                else:
                    m1 = q(p + "m1", q(p + "m1", pp[:, :E], f, F.act) * gate_code(pp[:, E:], f, bz, grule),
                           fa + bz, F.act)
                y = q(p + "y", lin(W[p + "mix.w2"], W[p + "mix.b2"], m1, f), f, F.act)
                if A.skip:
                    y = sat(p + "y", y + r, F.act)
            else:
                y = r
            if A.norm == "affine":
                f = fa + F.w_norm.frac
                a = q(p + "a", W[p + "norm.g"] * y + (W[p + "norm.b"] << (f - F.bias.frac)), f, F.act)
            else:
                a = y
        f = fa + F.w_out.frac
        lt = q("logit", lin(W["out.w"], W["out.b"], a, f), f, F.logit)
        steps.append(lt)
        acc = sat("logit_acc", acc + lt, F.logit_acc) if A.readout == "mean" else lt
    return acc, np.stack(steps, axis=1), sats


@pytest.mark.parametrize("fmts", [Formats(), NARROW], ids=["default", "narrow"])
@pytest.mark.parametrize("name", list(ARCHS))
def test_run_equals_literal_readme_semantics(name, fmts):
    arch = ARCHS[name]
    b = random_bundle(arch, fmts, seed=3, scale=1.5)
    x = inputs(arch, B=3, T=40, seed=1)
    res = Network(b).run(x)
    acc, steps, sats = literal_run(b, x)
    np.testing.assert_array_equal(res.step_logits, steps)
    np.testing.assert_array_equal(res.logits, acc)
    assert res.saturations == sats
    if fmts is NARROW and name != "embed-glu-heaviside-last":   # (its binary outputs stay in range)
        assert sum(sats.values()) > 0            # the comparison covered saturation events


def stream(net, x):
    st = net.init_state(x.shape[0])
    steps = []
    for t in range(x.shape[1]):
        st, lt = net.step(st, x[:, t])
        steps.append(lt)
    return st, np.stack(steps, axis=1)


@pytest.mark.parametrize("fmts", [Formats(), NARROW], ids=["default", "narrow"])
@pytest.mark.parametrize("name", list(ARCHS))
def test_stream_equals_whole_sequence(name, fmts):
    arch = ARCHS[name]
    b = random_bundle(arch, fmts, seed=5, scale=1.5)
    net = Network(b)
    x = inputs(arch, B=4, T=70, seed=2)
    res = net.run(x)
    st, steps = stream(net, x)
    np.testing.assert_array_equal(steps, res.step_logits)
    np.testing.assert_array_equal(net.readout(st), res.logits)
    assert st.saturations == res.saturations
    assert st.t == 70
    for chunk in (1, 3, 64, 1000):                       # any chunking gives the same integers
        r2 = net.run(x, chunk=chunk)
        np.testing.assert_array_equal(r2.step_logits, res.step_logits)
        np.testing.assert_array_equal(r2.logits, res.logits)
        assert r2.saturations == res.saturations


@pytest.mark.parametrize("name", ["linear-mlp", "embed-glu-heaviside-last", "noskip-last", "minimalist"])
def test_lengths_equal_separate_streams(name):
    """A padded batch with lengths == each sequence streamed alone for its own length."""
    arch = ARCHS[name]
    b = random_bundle(arch, NARROW, seed=7, scale=4.0)
    net = Network(b)
    x = inputs(arch, B=4, T=30, seed=3)
    lengths = np.array([30, 1, 17, 29])
    res = net.run(x, lengths=lengths, chunk=8)
    total = {k: 0 for k in res.saturations}
    for i, n in enumerate(lengths):
        st, steps = stream(net, x[i:i + 1, :n])
        np.testing.assert_array_equal(res.step_logits[i, :n], steps[0])
        np.testing.assert_array_equal(res.logits[i], net.readout(st)[0])
        for k, v in st.saturations.items():
            total[k] += v
    assert total == res.saturations
    assert sum(total.values()) > 0
    if arch.readout == "last":
        np.testing.assert_array_equal(res.logits, res.step_logits[np.arange(4), lengths - 1])


@pytest.mark.parametrize("name", list(ARCHS))
def test_saturation_steps_are_the_events_of_each_step(name):
    """run(saturation_steps=True): per step and tensor, the events a loop of step() counts in that
    step; summed over time, the totals; padded steps count nothing (what the RTL flags compare with)."""
    arch = ARCHS[name]
    b = random_bundle(arch, NARROW, seed=7, scale=4.0)
    net = Network(b)
    x = inputs(arch, B=3, T=25, seed=3)
    lengths = np.array([25, 6, 18])
    res = net.run(x, lengths=lengths, chunk=7, saturation_steps=True)
    ss = res.saturation_steps
    assert list(ss) == saturation_names(arch)
    assert {k: int(v.sum()) for k, v in ss.items()} == res.saturations
    assert sum(res.saturations.values()) > 0
    for i, n in enumerate(lengths):
        st = net.init_state(1)
        for t in range(n):
            before = dict(st.saturations)
            st, _ = net.step(st, x[i:i + 1, t])
            assert {k: st.saturations[k] - before[k] for k in ss} == {k: int(v[i, t]) for k, v in ss.items()}, (i, t)
        assert all(int(v[i, n:].sum()) == 0 for v in ss.values())
    assert net.run(x, lengths=lengths).saturation_steps is None


def test_long_sequence_16000_steps():
    arch = Arch(d_in=1, n_classes=3, hidden=4, layers=1, taps=3, d_max=63, expand=1)
    b = random_bundle(arch, seed=9, scale=1.5)
    net = Network(b)
    x = inputs(arch, B=2, T=16000, seed=4)
    res = net.run(x)
    st, steps = stream(net, x)
    np.testing.assert_array_equal(steps, res.step_logits)
    np.testing.assert_array_equal(net.readout(st), res.logits)
    assert st.saturations == res.saturations


@pytest.mark.parametrize("name", list(ARCHS))
def test_trace_keys_and_shapes(name):
    arch = ARCHS[name]
    b = random_bundle(arch, seed=1)
    x = inputs(arch, B=2, T=9, seed=0)
    res = Network(b).run(x, trace=True)
    assert list(res.trace) == trace_names(arch)
    H, E, C = arch.hidden, arch.mix_width, arch.n_classes
    for k, v in res.trace.items():
        assert v.dtype == np.int64, k
        want = {"m1": E, "step_logits": C}.get(k.rsplit(".", 1)[-1], H)
        assert v.shape == (2, 9, want), k
    np.testing.assert_array_equal(res.trace["step_logits"], res.step_logits)
    names = {k.rsplit(".", 1)[-1] for k in res.trace if k.startswith("layers.0.")}
    assert ("s" in names) == bool(arch.taps)
    assert ("r" in names) == arch.skip
    assert ("m1" in names) == ("y" in names) == (arch.mix != "none")
    assert set(res.saturations) == set(saturation_names(arch))
    assert res.logits.dtype == res.step_logits.dtype == np.int64
    np.testing.assert_array_equal(res.predictions, np.argmax(res.logits, -1))
    # the trace is consistent with the contract at a few points
    F = b.formats
    a0 = res.trace["layers.0.u"] if not arch.taps else None
    k0 = res.trace["layers.0.k"]
    assert k0.min() >= 0 and k0.max() < 2 ** arch.gate_bits
    if arch.taps:
        np.testing.assert_array_equal(res.trace["layers.0.s"], requantize(res.trace["enc"], F.act.frac, F.dl)[0])
    elif not arch.skip:
        np.testing.assert_array_equal(a0, res.trace["enc"])


# ---------------------------------------------------------------------------------------------
# Hand-computed networks
# ---------------------------------------------------------------------------------------------
def tiny_bundle(arch, fmts, **t):
    return Bundle(arch, fmts, {k: np.array(v, dtype=np.int64) for k, v in t.items()})


def test_hand_computed_network():
    """H=1, one layer, taps at delays 0 and 2, default formats, every value worked out by hand."""
    arch = Arch(d_in=1, n_classes=2, hidden=1, layers=1, taps=2, d_max=2, mix="none", norm="none")
    b = tiny_bundle(arch, Formats(),
                    **{"enc.w": [[64]], "enc.b": [0],                         # 1.0 (s8f6), 0
                       "layers.0.conv.w": [[32, 16]], "layers.0.conv.delay": [[0, 2]],   # 0.5 @ d0, 0.25 @ d2
                       "layers.0.rnn.wz": [[0]], "layers.0.rnn.bz": [0],      # gate acc 0 -> k = 32, z = 1/2
                       "layers.0.rnn.wh": [[64]], "layers.0.rnn.bh": [512],   # hc = u + 0.5 (bias s16f10)
                       "out.w": [[64], [-64]], "out.b": [0, 0]})
    x = np.array([[[16384], [-8192], [0]]])                                  # 0.5, -0.25, 0 in s16f15
    res = Network(b).run(x, trace=True)
    tr = {k.split(".")[-1]: v[0, :, 0] for k, v in res.trace.items()}
    # t=0: enc (64*16384 + 1024) >> 11 = 512; s = 512; conv (32*512 + 32) >> 6 = 256, u = 256 + 512 = 768
    #      hc: 64*768 + (512 << 6) = 81920 -> (81920 + 32) >> 6 = 1280; h = (32*1280 + 32) >> 6 = 640
    #      o = 640, r = 640 + 768 = 1408; logits (+-64*1408 + 128) >> 8 = 352, (-90112 + 128) >> 8 = -352
    # t=1: enc (64*-8192 + 1024) >> 11 = -256; conv (32*-256 + 32) >> 6 = -128 (line[t-2] = 0), u = -384
    #      hc: (64*-384 + 32768 + 32) >> 6 = 128; h = 640 + ((32*(128-640) + 32) >> 6) = 640 - 256 = 384
    #      o = 384, r = 384 - 384 = 0, logits 0, 0
    # t=2: enc 0; conv 32*0 + 16*512 (the sample of t=0) = 8192 -> 128, u = 128
    #      hc: (64*128 + 32768 + 32) >> 6 = 640; h = 384 + ((32*(640-384) + 32) >> 6) = 384 + 128 = 512
    #      o = 512, r = 640; logits (40960 + 128) >> 8 = 160, (-40960 + 128) >> 8 = -160
    np.testing.assert_array_equal(tr["enc"], [512, -256, 0])
    np.testing.assert_array_equal(tr["s"], [512, -256, 0])
    np.testing.assert_array_equal(tr["u"], [768, -384, 128])
    np.testing.assert_array_equal(tr["k"], [32, 32, 32])
    np.testing.assert_array_equal(tr["hc"], [1280, 128, 640])
    np.testing.assert_array_equal(tr["h"], [640, 384, 512])
    np.testing.assert_array_equal(tr["o"], [640, 384, 512])
    np.testing.assert_array_equal(tr["r"], [1408, 0, 640])
    np.testing.assert_array_equal(tr["a"], [1408, 0, 640])
    np.testing.assert_array_equal(res.step_logits[0], [[352, -352], [0, 0], [160, -160]])
    np.testing.assert_array_equal(res.logits, [[512, -512]])
    assert sum(res.saturations.values()) == 0
    # the same with readout 'last' and a length of 2
    b2 = Bundle(Arch(**{**arch.to_json(), "readout": "last"}), b.formats, b.tensors)
    r2 = Network(b2).run(x, lengths=np.array([2]))
    np.testing.assert_array_equal(r2.logits, [[0, 0]])
    r3 = Network(b2).run(x)
    np.testing.assert_array_equal(r3.logits, [[160, -160]])


def test_hand_computed_saturation_counts():
    """Narrow act/h (s8f4, range +-7.94) and a 16-bit logit accumulator: enc, hc and logit_acc
    saturate at known steps; h cannot (it is a convex combination of in-range codes)."""
    arch = Arch(d_in=1, n_classes=2, hidden=1, layers=1, taps=0, d_max=0, mix="none", norm="none", skip=False)
    s8f4 = Format(True, 8, 4)
    fmts = Formats(act=s8f4, h=s8f4, dl=s8f4, logit=Format(True, 16, 8), logit_acc=Format(True, 16, 8))
    b = tiny_bundle(arch, fmts,
                    **{"enc.w": [[127]], "enc.b": [32767],                    # ~1.98 x + 32.0: saturates act
                       "layers.0.rnn.wz": [[0]], "layers.0.rnn.bz": [0],      # z = 1/2
                       "layers.0.rnn.wh": [[127]], "layers.0.rnn.bh": [32767],  # hc saturates
                       "out.w": [[127], [0]], "out.b": [32767, 0]})
    x = np.full((1, 3, 1), 32767)
    res = Network(b).run(x, trace=True)
    # enc: (127*32767 + (32767 << 11) + 2**16) >> 17 = 544 -> 127 (3 events, one per step)
    # hc: (127*127 + 32767 + 32) >> 6 = 764 -> 127 (3 events)
    # h: 0 -> (32*127 + 32) >> 6 = 64 -> 64 + ((32*63 + 32) >> 6) = 96 -> 96 + 16 = 112
    # logit: (127*h + 32767 + 2) >> 2 = 10224, 11240, 11748; acc 10224, 21464, 33212 -> 32767 (1 event)
    np.testing.assert_array_equal(res.trace["enc"][0, :, 0], [127, 127, 127])
    np.testing.assert_array_equal(res.trace["layers.0.hc"][0, :, 0], [127, 127, 127])
    np.testing.assert_array_equal(res.trace["layers.0.h"][0, :, 0], [64, 96, 112])
    np.testing.assert_array_equal(res.step_logits[0, :, 0], [10224, 11240, 11748])
    np.testing.assert_array_equal(res.logits, [[32767, 0]])
    assert res.saturations == {"enc": 3, "layers.0.hc": 3, "layers.0.h": 0, "layers.0.o": 0,
                               "logit": 0, "logit_acc": 1}
    # streaming counts the same events; with a length of 2 only the first two steps count
    net = Network(b)
    st, _ = stream(net, x)
    assert st.saturations == res.saturations
    r2 = net.run(np.concatenate([x, x]), lengths=np.array([3, 2]))
    assert r2.saturations == {"enc": 5, "layers.0.hc": 5, "layers.0.h": 0, "layers.0.o": 0,
                              "logit": 0, "logit_acc": 1}
    np.testing.assert_array_equal(r2.logits, [[32767, 0], [21464, 0]])


def test_saturating_weights_count_everywhere():
    """Large weights on narrow formats: every kind of point saturates, and the counts equal the
    literal implementation's."""
    arch = Arch(d_in=2, n_classes=3, hidden=6, layers=2, taps=3, d_max=5)
    b = random_bundle(arch, NARROW, seed=2, scale=8.0)
    x = inputs(arch, B=3, T=25, seed=5)
    res = Network(b).run(x)
    _, _, sats = literal_run(b, x)
    assert res.saturations == sats
    busy = [k for k, v in sats.items() if v > 0]
    assert {"layers.0.u", "layers.0.hc", "layers.0.y", "layers.1.hc", "logit"} <= set(busy), sats


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------
def test_input_validation():
    lin = Network(random_bundle(ARCHS["linear-mlp"], seed=0))
    emb = Network(random_bundle(ARCHS["embed-mlp"], seed=0))
    ok = np.zeros((2, 5, 2), np.int64)
    with pytest.raises(ValueError, match="integer codes"):
        lin.run(ok.astype(np.float64))
    with pytest.raises(ValueError, match=r"shape \(batch, steps, d_in=2\)"):
        lin.run(np.zeros((2, 5, 3), np.int64))
    with pytest.raises(ValueError, match=r"shape \(batch, steps, d_in=2\)"):
        lin.run(np.zeros((2, 5), np.int64))
    bad = ok.copy()
    bad[1, 3, 0] = 40000
    with pytest.raises(ValueError, match=r"outside formats.x = s16f15 range \[-32768, 32767\]"):
        lin.run(bad)
    with pytest.raises(ValueError, match="at least one sequence and one step"):
        lin.run(np.zeros((2, 0, 2), np.int64))
    with pytest.raises(ValueError, match="token id 11 is outside the vocabulary 0..10"):
        emb.run(np.full((2, 4), 11))
    with pytest.raises(ValueError, match="token id -1"):
        emb.run(np.full((2, 4), -1))
    with pytest.raises(ValueError, match="shape \\(batch, steps\\) of token ids"):
        emb.run(np.zeros((2, 4, 1), np.int64))
    with pytest.raises(ValueError, match=r"lengths must lie in 1..5"):
        lin.run(ok, lengths=np.array([5, 6]))
    with pytest.raises(ValueError, match=r"lengths must lie in 1..5"):
        lin.run(ok, lengths=np.array([0, 5]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        lin.run(ok, lengths=np.array([5]))
    with pytest.raises(ValueError, match="lengths must be integers"):
        lin.run(ok, lengths=np.array([5.0, 5.0]))
    st = lin.init_state(2)
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        lin.step(st, np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match="outside formats.x"):
        lin.step(st, np.full((2, 2), -40000))
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        lin.init_state(0)
    with pytest.raises(TypeError, match="spec.bundle.Bundle"):
        Network({"enc.w": 1})
    assert st.t == 0                                      # rejected steps leave the state alone


def test_wide_formats_pick_int64_and_still_match_literal():
    """Formats whose intermediates exceed int32 switch the engine to int64."""
    arch = ARCHS["linear-glu"]
    wide = Formats(act=Format(True, 32, 20), dl=Format(True, 32, 20), h=Format(True, 32, 20),
                   logit=Format(True, 32, 20), logit_acc=Format(True, 48, 20))
    b = random_bundle(arch, wide, seed=4)
    net = Network(b)
    assert net.wdt == np.int64 and Network(random_bundle(arch, seed=4)).wdt == np.int32
    x = inputs(arch, B=2, T=20, seed=6)
    res = net.run(x)
    acc, steps, sats = literal_run(b, x)
    np.testing.assert_array_equal(res.step_logits, steps)
    np.testing.assert_array_equal(res.logits, acc)
