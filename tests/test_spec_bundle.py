"""Weight bundle: round trip and every kind of bad file."""
import json
import zipfile

import numpy as np
import pytest

from spec import (
    Arch,
    ArchError,
    Bundle,
    BundleError,
    Format,
    Formats,
    load_bundle,
    memory_footprint,
    minimalist_arch,
    random_bundle,
    save_bundle,
    tensor_specs,
)
from spec.bundle import _HEADER

ARCHS = [
    Arch(d_in=1, n_classes=12, hidden=8, layers=2, taps=4, d_max=15),
    Arch(d_in=20, n_classes=10, hidden=8, layers=1, taps=3, d_max=7, encoder="embedding", mix="glu"),
    Arch(d_in=1, n_classes=2, hidden=4, layers=3, taps=0, d_max=0, mix="none", norm="none", skip=False,
         rnn_out="heaviside", readout="last"),
]


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"{a.encoder}-{a.mix}-{a.rnn_out}")
def test_round_trip(tmp_path, arch):
    b = random_bundle(arch, seed=3, meta={"task": "unit", "accuracy": 0.5})
    p = save_bundle(b, tmp_path / "b.npz")
    c = load_bundle(p)
    assert c.arch == b.arch and c.formats == b.formats and c.meta == b.meta
    assert set(c.tensors) == {s.name for s in tensor_specs(arch)}
    for k in b.tensors:
        np.testing.assert_array_equal(c.tensors[k], b.tensors[k])


def test_minimalist_variant_is_expressible(tmp_path):
    arch, fmts = minimalist_arch(d_in=1, n_classes=4)
    b = random_bundle(arch, fmts, seed=1)
    c = load_bundle(save_bundle(b, tmp_path / "m.npz"))
    assert c.formats.w_rnn == Format(True, 2, 2) and c.arch.rnn_out == "heaviside" and c.arch.mix == "none"
    assert c.tensors["layers.0.rnn.wz"].min() >= -2 and c.tensors["layers.0.rnn.wz"].max() <= 1


def _rewrite(src, dst, *, header=None, arrays=None, drop=()):
    """Copy bundle src to dst, optionally replacing the header and/or arrays."""
    with np.load(src, allow_pickle=False) as z:
        items = {k: z[k] for k in z.files}
    if header is not None:
        items[_HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    for k, v in (arrays or {}).items():
        items[k] = v
    for k in drop:
        items.pop(k)
    np.savez(dst, **items)
    return dst


@pytest.fixture
def good(tmp_path):
    return save_bundle(random_bundle(ARCHS[0], seed=0), tmp_path / "good.npz")


def header_of(path):
    with np.load(path) as z:
        return json.loads(z[_HEADER].tobytes())


def test_missing_file(tmp_path):
    with pytest.raises(BundleError, match="no such bundle file"):
        load_bundle(tmp_path / "nope.npz")


def test_truncated_file(tmp_path, good):
    data = good.read_bytes()
    p = tmp_path / "trunc.npz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="not a readable .npz|corrupt"):
        load_bundle(p)


def test_not_a_zip(tmp_path):
    p = tmp_path / "x.npz"
    p.write_text("hello")
    with pytest.raises(BundleError, match="not a readable .npz"):
        load_bundle(p)


def test_flipped_byte_is_detected(tmp_path, good):
    data = bytearray(good.read_bytes())
    # flip a byte in the middle of the first member's payload
    with zipfile.ZipFile(good) as zf:
        info = zf.infolist()[0]
    pos = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[pos] ^= 0xFF
    p = tmp_path / "flip.npz"
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="corrupt|unreadable|checksum|not a readable"):
        load_bundle(p)


def test_no_header(tmp_path, good):
    p = _rewrite(good, tmp_path / "h.npz", drop=[_HEADER])
    with pytest.raises(BundleError, match="not an mGRADE-HW bundle"):
        load_bundle(p)


def test_header_not_json(tmp_path, good):
    p = tmp_path / "j.npz"
    with np.load(good) as z:
        items = {k: z[k] for k in z.files}
    items[_HEADER] = np.frombuffer(b"{not json", dtype=np.uint8)
    np.savez(p, **items)
    with pytest.raises(BundleError, match="not valid UTF-8 JSON"):
        load_bundle(p)


def test_wrong_version(tmp_path, good):
    h = header_of(good)
    h["version"] = 99
    with pytest.raises(BundleError, match="version 99 is not supported"):
        load_bundle(_rewrite(good, tmp_path / "v.npz", header=h))


def test_wrong_gate_scale(tmp_path, good):
    h = header_of(good)
    h["gate_scale"] = "k/63"
    with pytest.raises(BundleError, match="gate scale"):
        load_bundle(_rewrite(good, tmp_path / "g.npz", header=h))


def test_bad_arch(tmp_path, good):
    h = header_of(good)
    h["arch"]["mix"] = "attention"
    with pytest.raises(BundleError, match="arch.mix must be one of"):
        load_bundle(_rewrite(good, tmp_path / "a.npz", header=h))


def test_shape_mismatch_names_tensor(tmp_path, good):
    h = header_of(good)
    bad = np.zeros((8, 7), dtype=np.int8)
    h["tensors"]["layers.0.rnn.wz"]["shape"] = [8, 7]
    from spec.bundle import _sha
    h["tensors"]["layers.0.rnn.wz"]["sha256"] = _sha(bad)
    p = _rewrite(good, tmp_path / "s.npz", header=h, arrays={"layers.0.rnn.wz": bad})
    with pytest.raises(BundleError, match=r"'layers.0.rnn.wz' has shape \[8, 7\] in the header table, "
                       r"the architecture needs \(8, 8\)"):
        load_bundle(p)


def test_out_of_range_value_is_not_clipped(tmp_path, good):
    h = header_of(good)
    with np.load(good) as z:
        a = z["layers.0.rnn.wz"].astype(np.int16)
    a[2, 3] = 300  # outside s8f6
    from spec.bundle import _sha
    h["tensors"]["layers.0.rnn.wz"].update(dtype="int16", sha256=_sha(a))
    p = _rewrite(good, tmp_path / "r.npz", header=h, arrays={"layers.0.rnn.wz": a})
    with pytest.raises(BundleError, match=r"value 300 at index \(2, 3\) is outside the s8f6 range"):
        load_bundle(p)


def test_delay_out_of_range(tmp_path, good):
    h = header_of(good)
    with np.load(good) as z:
        d = z["layers.1.conv.delay"].copy()
    d[0, 0] = 16  # d_max = 15
    from spec.bundle import _sha
    h["tensors"]["layers.1.conv.delay"]["sha256"] = _sha(d)
    p = _rewrite(good, tmp_path / "d.npz", header=h, arrays={"layers.1.conv.delay": d})
    with pytest.raises(BundleError, match="delay range 0..15"):
        load_bundle(p)


def test_checksum_mismatch(tmp_path, good):
    with np.load(good) as z:
        a = z["out.b"].copy()
    a[0] += 1
    with pytest.raises(BundleError, match="'out.b': checksum mismatch"):
        load_bundle(_rewrite(good, tmp_path / "c.npz", arrays={"out.b": a}))


def test_float_tensor_rejected(tmp_path, good):
    h = header_of(good)
    with np.load(good) as z:
        a = z["out.b"].astype(np.float32)
    from spec.bundle import _sha
    h["tensors"]["out.b"].update(dtype="float32", sha256=_sha(a))
    with pytest.raises(BundleError, match="'out.b' has dtype float32"):
        load_bundle(_rewrite(good, tmp_path / "f.npz", header=h, arrays={"out.b": a}))


def test_missing_and_stray_tensors(tmp_path, good):
    h = header_of(good)
    del h["tensors"]["out.w"]
    with pytest.raises(BundleError, match=r"missing tensor\(s\) \['out.w'\]|not listed in the header"):
        load_bundle(_rewrite(good, tmp_path / "m.npz", header=h, drop=["out.w"]))
    with pytest.raises(BundleError, match="not listed in the header"):
        load_bundle(_rewrite(good, tmp_path / "x.npz", arrays={"evil": np.zeros(3, np.int8)}))


def test_pickled_object_array_is_refused(tmp_path, good):
    h = header_of(good)
    obj = np.array([{"a": 1}], dtype=object)
    h["tensors"]["out.b"]["dtype"] = "object"
    p = tmp_path / "o.npz"
    with np.load(good) as z:
        items = {k: z[k] for k in z.files}
    items[_HEADER] = np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)
    items["out.b"] = obj
    np.savez(p, **items)  # pickles the object array
    with pytest.raises(BundleError, match="'out.b' has dtype object; integer codes expected"):
        load_bundle(p)


def test_bundle_constructor_validates():
    arch = ARCHS[0]
    b = random_bundle(arch)
    t = dict(b.tensors)
    t["out.w"] = t["out.w"][:, :3]
    with pytest.raises(BundleError, match="'out.w' has shape"):
        Bundle(arch, b.formats, t)


def test_arch_validation_messages():
    with pytest.raises(ArchError, match="taps=9 exceeds"):
        Arch(d_in=1, n_classes=2, taps=9, d_max=7)
    with pytest.raises(ArchError, match="n_classes must be an integer >= 2"):
        Arch(d_in=1, n_classes=1)
    with pytest.raises(ArchError, match="bias.frac=20 is finer"):
        from spec.arch import check_formats
        check_formats(ARCHS[0], Formats().replace(bias=Format(True, 24, 20)))


def test_memory_footprint_counts():
    arch = Arch(d_in=1, n_classes=12, hidden=8, layers=2, taps=4, d_max=15)
    f = Formats()
    m = memory_footprint(arch, f)
    # delay line: L * H * d_max samples of dl.bits; state: L*H h + C accumulators
    assert m["delay_line_bits"] == 2 * 8 * 15 * 16
    assert m["state_bits"] == 2 * 8 * 16 + 12 * 40
    n_w = sum(int(np.prod(s.shape)) * (4 if s.role == "delay" else getattr(f, s.role).bits)
              for s in tensor_specs(arch))
    assert m["weights_bits"] == n_w
