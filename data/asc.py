"""Arabic Speech Commands (ASC): 40 Arabic keywords, 1-s clips, speaker-disjoint splits (task ``asc40``).

Layout (the shared ``asc_kws40_train_test_flac.tar``, see ASC_LAYOUT): ``dataset/<keyword>/<speaker>_NO_<rep>.flac``,
16 kHz 16-bit mono FLAC (lossless: the decoded samples are the original WAV samples), exactly 16,000 samples
each; ``train.csv`` / ``test.csv`` (``file,class``) name the official splits; ``manifest.tsv`` holds each
clip's split, class, speaker, repetition, sample count and the SHA-256 of its int16 little-endian samples.

Audio is returned as int16 PCM, shape (N, 16000): value = pcm / 32768, the project's s16f15 input. Every
clip must be exactly 16 kHz, 16-bit integer PCM, mono, 16,000 samples: anything else is an error naming
the file (nothing is resampled, converted, mixed down, padded or cut). With ``manifest.tsv`` present the
decoded samples are checked against its SHA-256 (``verify``).

Splits (speaker-disjoint throughout):
* ``test``: the official test split (``test.csv``: 2,400 clips, 6 speakers).
* ``train`` / ``val``: the official train split (``train.csv``: 7,200 clips, 18 speakers) divided by
  *whole speakers*: ``val_speakers`` of them (default one sixth, at least one: 3 of 18), drawn with a
  seeded generator from the sorted speaker ids, form ``val``; the rest ``train``. The official ``val``
  split of the data set (6 more speakers) is not in the shared archive.

Decoding FLAC needs libsndfile, which the ``soundfile`` package ships in its wheels.

Citation: A. Ghandoura, F. Hjabo, O. Al Dakkak, "Building and benchmarking an Arabic Speech Commands
dataset for small-footprint keyword spotting", Engineering Applications of Artificial Intelligence 102,
2021. Licence of the audio: CC BY 4.0.
"""
from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np

from .core import DataError, Dataset, cached_dataset, class_counts, limit_index, require_dir, tree_fingerprint
from .wav import parse_wav

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000

ASC_WORDS = sorted(["backward", "cancel", "close", "digit", "direction", "disable", "down", "eight", "enable",
                    "enter", "five", "forward", "four", "left", "move", "next", "nine", "no", "ok", "one", "open",
                    "options", "previous", "receive", "record", "right", "rotate", "send", "seven", "six", "start",
                    "stop", "three", "two", "undo", "up", "yes", "zero", "zoom in", "zoom out"])
assert len(ASC_WORDS) == 40

CITATION = ('A. Ghandoura, F. Hjabo, O. Al Dakkak, "Building and benchmarking an Arabic Speech Commands dataset '
            'for small-footprint keyword spotting", Engineering Applications of Artificial Intelligence 102, '
            "104267, 2021")
LICENCE = "CC BY 4.0"
TOP = "arabic_speech_commands"

ASC_LAYOUT = """  <root>/arabic_speech_commands/dataset/<keyword>/<speaker>_NO_<rep>.flac   (16 kHz, 16-bit mono,
                                       exactly 16000 samples; keyword one of the 40, e.g. 'zoom in')
  <root>/arabic_speech_commands/train.csv, test.csv   (header 'file,class'; rows 'dataset/<keyword>/<file>,<keyword>')
  <root>/arabic_speech_commands/manifest.tsv          (optional: split file class speaker repetition samples
                                                       sha256_int16_le; checked when present)"""

_FILE_RE = re.compile(r"^dataset/([^/]+)/(\d{8})_NO_(\d{2})\.(flac|wav)$")
_MANIFEST_COLS = ["split", "file", "class", "speaker", "repetition", "samples", "sha256_int16_le"]


def _soundfile():
    try:
        import soundfile
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise DataError("decoding FLAC needs the 'soundfile' package (libsndfile; pip install soundfile)") from e
    return soundfile


# --------------------------------------------------------------------------------------------------
# one clip
# --------------------------------------------------------------------------------------------------

def read_pcm16(path: Path | str, rate: int = SAMPLE_RATE, channels: int = 1, samples: int | None = CLIP_SAMPLES,
               fmt: str | None = None) -> np.ndarray:
    """Samples of a 16-bit integer PCM file (FLAC, WAV, any libsndfile format) as int16, exactly as stored.

    Checks the sample rate, the sample width (libsndfile subtype PCM_16), the channel count, the sample
    count (``samples``; None: any) and, with ``fmt`` ('FLAC', 'WAV'), the container; a damaged or
    truncated file, or one that decodes to fewer samples than its header announces, is an error.
    Nothing is converted: a 24-bit or 8-bit file is refused, not rescaled."""
    sf = _soundfile()
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing (listed in the split csv but not on disk)")
    try:
        with sf.SoundFile(str(path)) as f:
            if fmt is not None and f.format != fmt:
                raise DataError(f"{path}: container {f.format}, expected {fmt} (the file name says "
                                f".{path.suffix.lstrip('.')}); re-encode it losslessly or fix the name")
            if f.samplerate != rate:
                raise DataError(f"{path}: sample rate {f.samplerate} Hz, expected {rate} Hz (nothing is resampled; "
                                f"replace the file with the original {rate} Hz recording)")
            if f.subtype != "PCM_16":
                raise DataError(f"{path}: sample format {f.subtype}, expected 16-bit integer PCM (PCM_16); "
                                f"nothing is converted, replace the file with the original 16-bit clip")
            if f.channels != channels:
                raise DataError(f"{path}: {f.channels} channels, expected {channels} (mono); nothing is mixed down")
            if f.format == "WAV":  # libsndfile reads a truncated WAV quietly as a shorter one: check the chunks
                parse_wav(path.read_bytes(), str(path))
            if samples is not None and f.frames != samples:
                raise DataError(f"{path}: {f.frames} samples, expected exactly {samples} "
                                f"({samples / rate:g} s); clips are never padded or cut")
            x = f.read(dtype="int16", always_2d=False)
            n = f.frames
    except DataError:
        raise
    except (RuntimeError, OSError, ValueError, TypeError) as e:  # soundfile.LibsndfileError is a RuntimeError
        raise DataError(f"{path}: damaged or unreadable audio file ({type(e).__name__}: {e}); "
                        f"replace it with an intact copy from the archive") from e
    if len(x) != n:
        raise DataError(f"{path}: truncated: decoded {len(x)} of the {n} samples its header announces; "
                        f"replace it with an intact copy from the archive")
    return np.ascontiguousarray(x, dtype=np.int16)


def pcm_sha256(x: np.ndarray) -> str:
    """SHA-256 of int16 samples as little-endian bytes (the manifest's ``sha256_int16_le``)."""
    return hashlib.sha256(np.asarray(x, dtype="<i2").tobytes()).hexdigest()


def asc_speaker(name: str) -> str | None:
    """Speaker id of an ASC file name ('dataset/yes/00000030_NO_01.flac' -> '00000030'), or None."""
    m = re.search(r"(\d{8})_NO_\d{2}\.\w+$", str(name))
    return m.group(1) if m else None


# --------------------------------------------------------------------------------------------------
# lists
# --------------------------------------------------------------------------------------------------

def asc_root(root: Path | str) -> Path:
    """The folder holding train.csv / test.csv / dataset/ (``root`` or its ``arabic_speech_commands``)."""
    root = require_dir(root, "Arabic Speech Commands", ASC_LAYOUT)
    if (root / TOP).is_dir() and not (root / "train.csv").exists():
        root = root / TOP
    for f in ("train.csv", "test.csv"):
        if not (root / f).is_file():
            raise DataError(f"{root}: missing split file {f}; expected layout:\n{ASC_LAYOUT}")
    if not (root / "dataset").is_dir():
        raise DataError(f"{root}: missing the 'dataset' folder of keyword folders; expected layout:\n{ASC_LAYOUT}")
    return root


def read_asc_csv(path: Path, words: list[str] = ASC_WORDS) -> list[tuple[str, str]]:
    """Rows of train.csv / test.csv as (file relative to the data root, keyword)."""
    out, seen = [], set()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != ["file", "class"]:
        raise DataError(f"{path}:1: header must be 'file,class', got {rows[0] if rows else 'an empty file'}")
    for i, row in enumerate(rows[1:], 2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(f"{path}:{i}: expected 2 comma-separated fields (file,class), got {len(row)}: {row}")
        rel, word = row[0].strip(), row[1].strip()
        m = _FILE_RE.match(rel)
        if not m:
            raise DataError(f"{path}:{i}: malformed file name {rel!r} (expected "
                            f"'dataset/<keyword>/<8-digit speaker>_NO_<2-digit rep>.flac')")
        if word not in words:
            raise DataError(f"{path}:{i}: bad label {word!r} (not one of the {len(words)} ASC keywords)")
        if m.group(1) != word:
            raise DataError(f"{path}:{i}: bad label: {rel!r} lies in folder {m.group(1)!r} but is labelled {word!r}")
        if rel in seen:
            raise DataError(f"{path}:{i}: {rel} listed twice")
        seen.add(rel)
        out.append((rel, word))
    if not out:
        raise DataError(f"{path}: no clips listed")
    return out


def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """manifest.tsv as {file: row} (columns _MANIFEST_COLS)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != _MANIFEST_COLS:
        raise DataError(f"{path}:1: header must be {' '.join(_MANIFEST_COLS)} (tab-separated)")
    out = {}
    for i, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(_MANIFEST_COLS):
            raise DataError(f"{path}:{i}: expected {len(_MANIFEST_COLS)} tab-separated fields, got {len(cols)}")
        row = dict(zip(_MANIFEST_COLS, cols, strict=True))
        if row["file"] in out:
            raise DataError(f"{path}:{i}: {row['file']} listed twice")
        out[row["file"]] = row
    return out


def val_speaker_split(speakers: list[str], val_speakers: int | None = None, seed: int = 0) -> list[str]:
    """The training speakers held out for validation: ``val_speakers`` of them (default one sixth of
    them, at least one), drawn with ``numpy.random.default_rng(seed)`` from the sorted speaker ids."""
    spk = sorted(set(speakers))
    n = max(1, round(len(spk) / 6)) if val_speakers is None else int(val_speakers)
    if not 0 <= n < len(spk):
        raise DataError(f"val_speakers={n}: the train split has {len(spk)} speakers; hold out 0..{len(spk) - 1}")
    pick = np.random.default_rng(seed).permutation(len(spk))[:n]
    return sorted(spk[i] for i in pick)


# --------------------------------------------------------------------------------------------------
# the loader
# --------------------------------------------------------------------------------------------------

def load_asc(root: Path | str, split: str = "train", val_speakers: int | None = None, seed: int = 0,
             verify: bool | None = None, limit: int | None = None, cache: bool = True, progress: bool = True,
             source_note: str | None = None) -> Dataset:
    """Arabic Speech Commands in the layout ASC_LAYOUT (see the module docstring for the splits).

    split         'train', 'val' (whole training speakers held out; see `val_speaker_split`) or 'test'.
    val_speakers  training speakers held out for 'val' (default one sixth: 3 of 18); seed picks them.
    verify        None: check the SHA-256 of every decoded clip against manifest.tsv where it exists;
                  True: manifest.tsv required; False: do not hash.
    limit         a deterministic subset of that many clips (decodes only those; not cached).
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be 'train', 'val' or 'test', got {split!r}")
    root = asc_root(root)
    lists = {s: read_asc_csv(root / f"{s}.csv") for s in ("train", "test")}
    if (root / "val.csv").is_file():  # a full copy of the original set also lists its official val split
        lists["val_official"] = read_asc_csv(root / "val.csv")
    where: dict[str, str] = {}
    for s, rows in lists.items():
        for rel, _ in rows:
            if rel in where:
                raise DataError(f"{root}: {rel} is listed in both {where[rel]}.csv and {s}.csv")
            where[rel] = s
    spk_of = {s: {asc_speaker(r) for r, _ in rows} for s, rows in lists.items()}
    shared = spk_of["train"] & spk_of["test"]
    if shared:
        raise DataError(f"{root}: speaker(s) {sorted(shared)} appear in both train.csv and test.csv; "
                        f"the ASC splits are speaker-disjoint")

    # every keyword folder and clip on disk must be a known keyword and listed
    for d in sorted(p for p in (root / "dataset").iterdir()):
        if d.name.startswith("."):
            continue
        if not d.is_dir():
            raise DataError(f"{d}: unexpected file in {root / 'dataset'} (only keyword folders belong there)")
        if d.name not in ASC_WORDS:
            raise DataError(f"{d}: bad label: folder {d.name!r} is not one of the {len(ASC_WORDS)} ASC keywords")
        for f in sorted(d.iterdir()):
            if f.name.startswith("."):
                continue
            rel = f"dataset/{d.name}/{f.name}"
            if rel not in where:
                raise DataError(f"{f}: clip not listed in train.csv or test.csv (remove it or list it)")

    manifest = None
    if (root / "manifest.tsv").is_file():
        manifest = read_manifest(root / "manifest.tsv")
    elif verify:
        raise DataError(f"{root}: verify=True needs manifest.tsv beside train.csv (or pass verify=None/False)")
    do_hash = manifest is not None and verify is not False

    rows = list(lists["test" if split == "test" else "train"])
    val_spk: list[str] = []
    if split != "test":
        val_spk = val_speaker_split([asc_speaker(r) for r, _ in rows], val_speakers, seed)
        keep = set(val_spk) if split == "val" else spk_of["train"] - set(val_spk)
        rows = [r for r in rows if asc_speaker(r[0]) in keep]
    rows.sort()
    sel = limit_index(len(rows), limit)
    rows = [rows[i] for i in sel]
    rel = [r for r, _ in rows]
    y = np.array([ASC_WORDS.index(w) for _, w in rows], dtype=np.int64)
    official = "test" if split == "test" else "train"
    missing = [r for r in rel if not (root / r).is_file()]
    if missing:
        raise DataError(f"{root / missing[0]}: listed in {official}.csv but missing on disk "
                        f"({len(missing)} clip(s) missing); restore them from the archive")
    if manifest is not None:
        for r, w in rows:
            m = manifest.get(r)
            if m is None:
                raise DataError(f"{root / 'manifest.tsv'}: no row for {r} (listed in {official}.csv)")
            mm = _FILE_RE.match(r)
            want = {"split": official, "class": w, "speaker": mm.group(2), "repetition": mm.group(3),
                    "samples": str(CLIP_SAMPLES)}
            bad = {k: (m[k], v) for k, v in want.items() if m[k] != v}
            if bad:
                raise DataError(f"{root / 'manifest.tsv'}: row of {r} disagrees with {official}.csv / the file "
                                f"name: " + ", ".join(f"{k} {a!r} != {b!r}" for k, (a, b) in bad.items()))

    def build() -> Dataset:
        x = np.zeros((len(rel), CLIP_SAMPLES), dtype=np.int16)
        it = rel
        if progress and len(rel) > 2000:
            from tqdm import tqdm
            it = tqdm(rel, desc=f"decoding ASC {split}", unit="clip", leave=False)
        for i, r in enumerate(it):
            p = root / r
            s = read_pcm16(p, fmt="FLAC" if p.suffix.lower() == ".flac" else "WAV")
            if do_hash and pcm_sha256(s) != manifest[r]["sha256_int16_le"]:
                raise DataError(f"{p}: decoded samples do not match the SHA-256 in manifest.tsv (damaged or "
                                f"altered clip); replace it with the archive's copy")
            x[i] = s
        spk = sorted({asc_speaker(r) for r in rel})
        meta = {
            "task": "asc40", "source": source_note or str(root.resolve()), "split": split,
            "split_rule": ("official test.csv (speaker-disjoint from train)" if split == "test" else
                           f"official train.csv divided by whole speakers: {len(val_spk)} held out for val "
                           f"(seed {seed}), speaker-disjoint"),
            "speaker_disjoint": True, "val_speakers": val_spk, "speakers": spk, "n_speakers": len(spk),
            "n": len(rel), "class_counts": class_counts(y, ASC_WORDS),
            "sample_rate": SAMPLE_RATE, "format": "int16 PCM, value = pcm/32768 (s16f15)",
            "n_padded": 0, "verified_sha256": bool(do_hash), "limit": limit,
            "licence": LICENCE, "citation": CITATION,
            "note": "Arabic Speech Commands: report as its own task (40 Arabic keywords), not as Speech Commands",
        }
        return Dataset(x, y, np.full(len(rel), CLIP_SAMPLES, dtype=np.int64), list(ASC_WORDS),
                       np.asarray(rel, dtype=str), meta)

    if limit is not None or not cache:
        return build()
    key = {"root": str(root.resolve()), "split": split, "val_speakers": val_speakers, "seed": seed,
           "verify": bool(do_hash),
           "tree": tree_fingerprint(root, rel + ["train.csv", "test.csv"]
                                    + (["manifest.tsv"] if manifest is not None else []))}
    ds = cached_dataset("asc40", key, build)
    if source_note:
        ds.meta["source"] = source_note
    return ds
