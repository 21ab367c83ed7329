"""Hostile weight bundles: crafted files must give a BundleError, quickly and in little memory.

Each file is built by hand (zipfile + raw .npy bytes) so that it can say things numpy.savez
never writes: shapes of 10**10 elements over a few bytes of data, sizes that disagree, JSON
that the json module accepts only halfway.
"""
import io
import json
import random
import struct
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npformat

from spec import Arch, BundleError, load_bundle, random_bundle, save_bundle
from spec.bundle import _HEADER, _MAX_MEMBERS

ARCH = Arch(d_in=1, n_classes=12, hidden=8, layers=2, taps=4, d_max=15)
WZ = "layers.0.rnn.wz"  # (8, 8) int8


@pytest.fixture
def good(tmp_path):
    return save_bundle(random_bundle(ARCH, seed=0), tmp_path / "good.npz")


def members(path):
    """Raw bytes of each .npy member, by name (without .npy)."""
    with zipfile.ZipFile(path) as zf:
        return {n[:-4]: zf.read(n) for n in zf.namelist()}


def header(path):
    return json.loads(npy_data(members(path)[_HEADER]))


def npy(descr, shape, data=b"", fortran=False, version=(1, 0)):
    """.npy bytes with a hand-written header (any shape, whatever the data)."""
    buf = io.BytesIO()
    write = {(1, 0): npformat.write_array_header_1_0, (2, 0): npformat.write_array_header_2_0}[version]
    write(buf, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buf.getvalue() + data


def npy_data(raw):
    f = io.BytesIO(raw)
    npformat.read_magic(f)
    npformat.read_array_header_1_0(f)
    return f.read()


def json_npy(text):
    raw = text.encode() if isinstance(text, str) else text
    return npy("|u1", (len(raw),), raw)


def write_zip(path, items, compression=zipfile.ZIP_STORED):
    """Write (zip member name, bytes) pairs exactly as given, duplicates included."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which we want
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in items:
                zf.writestr(name, data)
    return path


def rewrite(good, dst, replace=None, header_text=None, extra=()):
    """Copy of ``good`` with some members' raw bytes replaced (and/or another header), plus
    ``extra`` (zip member name, bytes) pairs."""
    m = members(good)
    m.update(replace or {})
    if header_text is not None:
        m[_HEADER] = json_npy(header_text)
    return write_zip(dst, [(k + ".npy", v) for k, v in m.items()] + list(extra))


def with_header(good, dst, h, **kw):
    return rewrite(good, dst, header_text=json.dumps(h), **kw)


def set_declared_size(path, name, size):
    """Patch a stored member's uncompressed size in its local and central zip headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name + ".npy")
        start = zf.start_dir
    struct.pack_into("<I", data, info.header_offset + 22, size)
    pos = start
    while data[pos:pos + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack_from("<HHH", data, pos + 28)
        if data[pos + 46:pos + 46 + n] == info.filename.encode():
            struct.pack_into("<I", data, pos + 24, size)
        pos += 46 + n + e + c
    path.write_bytes(bytes(data))
    return path


def refused(path, fragment, max_bytes=4 << 20):
    """Assert that loading ``path`` raises a BundleError matching ``fragment`` (a regex) that
    names the file, with at most ``max_bytes`` of Python-visible allocation at the peak."""
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match=fragment) as ei:
            load_bundle(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(ei.value)
    assert peak < max_bytes, f"peak allocation {peak} bytes"
    return str(ei.value)


# -- .npy headers that lie ----------------------------------------------------------------------

def test_huge_shape_with_tiny_data(tmp_path, good):
    p = rewrite(good, tmp_path / "huge.npz", {WZ: npy("|i1", (100000, 100000), b"\0" * 64)})
    refused(p, r"'layers.0.rnn.wz': stored dtype/shape int8\[100000, 100000\] disagree with the header entry")


def test_huge_shape_agreed_by_header_and_arch(tmp_path, good):
    h = header(good)
    h["arch"]["hidden"] = 100000
    for ent in h["tensors"].values():
        ent["shape"] = [100000 if d == 8 else d for d in ent["shape"]]
    p = with_header(good, tmp_path / "huge_arch.npz", h, replace={WZ: npy("|i1", (100000, 100000), b"\0" * 64)})
    refused(p, r"the architecture needs \d{10,} weights, more than the \d+ this loader accepts")


def test_absurd_layer_count_is_refused_before_listing_tensors(tmp_path, good):
    h = header(good)
    h["arch"]["layers"] = 10 ** 9
    refused(with_header(good, tmp_path / "layers.npz", h), r"arch.layers=1000000000 needs more tensors")


def test_declared_size_beyond_what_the_tensor_needs(tmp_path, good):
    p = set_declared_size(rewrite(good, tmp_path / "big.npz"), WZ, 3 << 30)
    refused(p, r"member 'layers.0.rnn.wz' declares 3221225472 bytes, more than its contents may need")


def test_zip_bomb_member_is_not_inflated(tmp_path, good):
    raw = members(good)[WZ] + bytes(20 << 20)  # deflates to ~20 KB
    p = write_zip(tmp_path / "bomb.npz", [(k + ".npy", raw if k == WZ else v) for k, v in members(good).items()],
                  zipfile.ZIP_DEFLATED)
    assert p.stat().st_size < 100_000
    refused(p, r"member 'layers.0.rnn.wz' declares 20971712 bytes, more than its contents may need")


def test_extra_bytes_after_the_data(tmp_path, good):
    raw = members(good)[WZ] + b"\0" * 10
    refused(rewrite(good, tmp_path / "more.npz", {WZ: raw}),
            r"member 'layers.0.rnn.wz' declares 74 data bytes, its int8\[8, 8\] array needs 64")


def test_truncated_member(tmp_path, good):
    raw = members(good)[WZ][:-20]
    refused(rewrite(good, tmp_path / "short.npz", {WZ: raw}),
            r"member 'layers.0.rnn.wz' declares 44 data bytes, its int8\[8, 8\] array needs 64")


def test_member_data_shorter_than_its_declared_size(tmp_path, good):
    raw = members(good)[WZ][:-20]
    p = set_declared_size(rewrite(good, tmp_path / "short.npz", {WZ: raw}), WZ, len(raw) + 20)
    refused(p, r"member 'layers.0.rnn.wz' ends after 44 of 64 data bytes \(truncated\)")


def test_npy_dtype_disagrees_with_header_table(tmp_path, good):
    a = np.zeros((8, 8), np.int16)
    refused(rewrite(good, tmp_path / "dt.npz", {WZ: npy("<i2", (8, 8), a.tobytes())}),
            r"'layers.0.rnn.wz': stored dtype/shape int16\[8, 8\] disagree with the header entry")


def test_fortran_order_is_refused(tmp_path, good):
    with np.load(good) as z:
        a = z[WZ]
    raw = npy("|i1", (8, 8), np.asfortranarray(a).tobytes(order="F"), fortran=True)
    refused(rewrite(good, tmp_path / "f.npz", {WZ: raw}), r"'layers.0.rnn.wz' is stored in Fortran order")


def test_save_bundle_writes_c_order(tmp_path):
    b = random_bundle(ARCH, seed=1)
    b.tensors[WZ] = np.asfortranarray(b.tensors[WZ])
    c = load_bundle(save_bundle(b, tmp_path / "c.npz"))
    np.testing.assert_array_equal(c.tensors[WZ], b.tensors[WZ])


@pytest.mark.parametrize("raw, fragment", [
    (b"\x93NUMPY\x03\x00" + b"\0" * 16, r"version \(3, 0\)"),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': 'i1'}\n", "unreadable .npy header"),
    (b"not an npy file at all", "unreadable .npy header"),
    (npy("|i1", (8, 8))[:12], "unreadable .npy header"),
], ids=["version3", "missing-keys", "no-magic", "cut-header"])
def test_unreadable_npy_header(tmp_path, good, raw, fragment):
    refused(rewrite(good, tmp_path / "n.npz", {WZ: raw}), fragment)


def test_npy_v2_header_is_read(tmp_path, good):
    with np.load(good) as z:
        a = z[WZ]
    c = load_bundle(rewrite(good, tmp_path / "v2.npz", {WZ: npy("|i1", (8, 8), a.tobytes(), version=(2, 0))}))
    np.testing.assert_array_equal(c.tensors[WZ], a)


# -- the __header__ member ------------------------------------------------------------------------

def test_header_member_too_large(tmp_path, good):
    text = json.dumps(header(good)) + " " * (2 << 20)
    refused(rewrite(good, tmp_path / "big.npz", header_text=text), "member '__header__' declares", 16 << 20)


@pytest.mark.parametrize("raw", [npy("|u1", (2, 4), b"{}      "), npy("<i4", (1,), b"{}  ")], ids=["2d", "int32"])
def test_header_member_of_wrong_kind(tmp_path, good, raw):
    refused(rewrite(good, tmp_path / "h.npz", {_HEADER: raw}), "header entry must be a 1-D uint8 array")


# -- JSON the parser cannot (or must not) take ----------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    (b"\xff\xfe{}", "not valid UTF-8 JSON: 'utf-8' codec can't decode"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ('{"meta": ' + '{"a": ' * 100000 + "1" + "}" * 100001, "nested too deeply"),
    ('{"version": 1e999}', r"number 1e999 is out of range"),
    ('{"version": ' + "9" * 5000 + "}", r"integer of 5000 digits"),
    ('{"version": NaN}', "NaN is not allowed"),
    ('{"version": -Infinity}', "-Infinity is not allowed"),
    ('{"format": "mgrade-hw-bundle"', "not valid UTF-8 JSON: Expecting"),
], ids=["utf8", "deep-list", "deep-meta", "1e999", "5000-digits", "nan", "-inf", "cut"])
def test_json_parser_refusals(tmp_path, good, text, fragment):
    msg = refused(rewrite(good, tmp_path / "j.npz", header_text=text), fragment)
    assert "re-export the bundle with" in msg and len(msg) < 600


@pytest.mark.parametrize("change, fragment", [
    (lambda h: [h], "does not declare format"),
    (lambda h: {**h, "version": True}, "bundle version True is not supported"),
    (lambda h: {**h, "version": 1.0}, "bundle version 1.0 is not supported"),
    (lambda h: {**h, "gate_scale": ["x"] * 1000}, r"gate scale \['x', 'x', 'x', 'x', 'x', 'x', \.\.\.\] differs"),
    (lambda h: {**h, "arch": [1, 2]}, "arch must be an object"),
    (lambda h: {**h, "arch": {**h["arch"], "hidden": 1e300}}, r"arch.hidden must be an integer >= 1"),
    (lambda h: {**h, "arch": {**h["arch"], "hidden": 10 ** 50}}, r"needs \d{40}\.\.\. weights, more than"),
    (lambda h: {**h, "formats": {**h["formats"], "x": "s" + "9" * 5000 + "f1"}}, "at most 4 digits"),
    (lambda h: {**h, "formats": {**h["formats"], "x": list(range(10000))}}, r"formats.x: expected an object"),
    (lambda h: {**h, "tensors": []}, "header has no 'tensors' table of objects"),
    (lambda h: {**h, "tensors": {**h["tensors"], "out.b": "x"}}, "header has no 'tensors' table of objects"),
    (lambda h: {**h, "meta": [1]}, "header 'meta' must be an object"),
    (lambda h: {**h, "tensors": {**h["tensors"], WZ: {**h["tensors"][WZ], "shape": "abc"}}},
     r"'layers.0.rnn.wz' has shape 'abc' in the header table, the architecture needs \(8, 8\)"),
    (lambda h: {**h, "tensors": {**h["tensors"], WZ: {**h["tensors"][WZ], "dtype": 8}}},
     r"stored dtype/shape int8\[8, 8\] disagree with the header entry"),
    (lambda h: {**h, "tensors": {**h["tensors"], WZ: {**h["tensors"][WZ], "sha256": None}}}, "checksum mismatch"),
    (lambda h: {**h, "tensors": {**h["tensors"], "ghost": {}}}, r"header lists tensor\(s\) \['ghost'\] not used"),
], ids=["list", "version-bool", "version-float", "gate-list", "arch-list", "hidden-float", "hidden-huge",
        "format-digits", "format-list", "tensors-list", "entry-str", "meta-list", "shape-str", "dtype-int",
        "sha-null", "ghost-entry"])
def test_wrong_field_types(tmp_path, good, change, fragment):
    msg = refused(with_header(good, tmp_path / "t.npz", change(header(good))), fragment)
    assert len(msg) < 600


# -- zip structure ------------------------------------------------------------------------------

def test_duplicate_member_names(tmp_path, good):
    p = rewrite(good, tmp_path / "dup.npz", extra=[(WZ + ".npy", members(good)[WZ])])
    refused(p, r"duplicate zip member name\(s\) \['layers.0.rnn.wz.npy'\]")


def test_unexpected_members(tmp_path, good):
    refused(rewrite(good, tmp_path / "txt.npz", extra=[("readme.txt", b"hi")]),
            r"zip member 'readme.txt' is not a plain or deflated, unencrypted .npy array")
    refused(rewrite(good, tmp_path / "evil.npz", extra=[("evil.npy", npy("|i1", (3,), b"abc"))]),
            r"array\(s\) \['evil'\] are not listed in the header")


def test_too_many_members(tmp_path, good):
    extra = [(f"x{i}.npy", b"") for i in range(_MAX_MEMBERS)]
    refused(rewrite(good, tmp_path / "many.npz", extra=extra), r"zip members, more than the 4096", 64 << 20)


def test_other_compression_is_refused(tmp_path, good):
    p = write_zip(tmp_path / "bz.npz", [(k + ".npy", v) for k, v in members(good).items()], zipfile.ZIP_BZIP2)
    refused(p, "is not a plain or deflated, unencrypted .npy array")


def test_random_damage_gives_bundle_errors_only(tmp_path, good):
    """Flipped bytes and cut files anywhere: always a BundleError (or, rarely, a clean load)."""
    data = good.read_bytes()
    rng = random.Random(0)
    p = tmp_path / "fuzz.npz"
    for _ in range(300):
        d = bytearray(data)
        for _ in range(rng.choice([1, 1, 3])):
            d[rng.randrange(len(d))] = rng.randrange(256)
        if rng.random() < 0.2:
            d = d[:rng.randrange(len(d))]
        p.write_bytes(bytes(d))
        try:
            load_bundle(p)
        except BundleError as e:
            assert str(p) in str(e)
