"""Google Speech Commands: the standard layout (v0.01 / v0.02) and the MLPerf Tiny KWS test selection.

Audio is returned as int16 PCM, shape (N, 16000): value = pcm / 32768, which is exactly the project's
s16f15 input format. Clips shorter than 1 s are zero-padded at the end (the GSC protocol; `lengths`
holds the true sample count and `meta['n_padded']` how many were padded); longer clips, another rate,
width or channel count are errors. Nothing is resampled or cut.

Citation: P. Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition",
arXiv:1804.03209, 2018. Licence of the audio: CC BY 4.0.
"""
from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np

from .core import DataError, Dataset, cached_dataset, class_counts, limit_index, require_dir, tree_fingerprint
from .wav import read_wav

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000

GSC_V1_WORDS = sorted("bed bird cat dog down eight five four go happy house left marvin nine no off on one "
                      "right seven sheila six stop three tree two up wow yes zero".split())
GSC_V2_WORDS = sorted(GSC_V1_WORDS + "backward follow forward learn visual".split())
assert len(GSC_V1_WORDS) == 30 and len(GSC_V2_WORDS) == 35

# MLPerf Tiny KWS (kws01): label index -> folder name, and the word spelled in y_labels_original.csv
KWS12_CLASSES = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_"]
KWS12_CSV_WORDS = ["Down", "Go", "Left", "No", "Off", "On", "Right", "Stop", "Up", "Yes", "Silence", "Unknown"]

CITATION = ('P. Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition", '
            "arXiv:1804.03209, 2018")
LICENCE = "CC BY 4.0"

GSC_LAYOUT = """  <root>/<word>/<speaker>_nohash_<k>.wav   (16 kHz, 16-bit mono PCM, <= 1 s), one folder per word
  <root>/validation_list.txt, <root>/testing_list.txt   (lines '<word>/<file>.wav')
  <root>/_background_noise_/                            (ignored)"""

KWS12_LAYOUT = """\
  <root>/mlperf_tiny_kws_test/y_labels_original.csv   (lines 'tst_NNNNNN_<Word>_<label>.bin, 12, <label>')
  <root>/mlperf_tiny_kws_test/<class>/tst_NNNNNN.wav   (class in down go left no off on right stop up yes
                                                        _silence_ _unknown_; 16 kHz 16-bit mono, 16000 samples)"""

_SPEAKER_RE = re.compile(r"([0-9a-f]{8})_nohash_(\d+)")
_LIST_ENTRY_RE = re.compile(r"^([^/\s]+)/([^/\s]+\.wav)$")
MAX_NUM_WAVS_PER_CLASS = 2 ** 27 - 1  # ~134M, the constant of the GSC split rule


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

def speaker_id(name: str) -> str | None:
    """Speaker hash of a GSC file name ('yes/0a7c2a8d_nohash_1.wav' -> '0a7c2a8d'), or None."""
    m = _SPEAKER_RE.search(str(name))
    return m.group(1) if m else None


def gsc_which_set(name: str, val_pct: float = 10.0, test_pct: float = 10.0) -> str:
    """The GSC data set's own deterministic split rule (Warden 2018, README of the data set): the SHA-1
    of the speaker part of the file name (everything before '_nohash_') picks the set, so all clips of
    one speaker fall into the same set. Returns 'train', 'val' or 'test'."""
    base = Path(str(name)).name
    hash_name = re.sub(r"_nohash_.*$", "", base)
    h = int(hashlib.sha1(hash_name.encode("utf-8")).hexdigest(), 16)
    pct = (h % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if pct < val_pct:
        return "val"
    if pct < val_pct + test_pct:
        return "test"
    return "train"


def _read_split_list(path: Path, words: list[str]) -> list[str]:
    if not path.is_file():
        raise DataError(f"missing split file {path} (the GSC layout needs validation_list.txt and "
                        f"testing_list.txt beside the word folders)")
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        m = _LIST_ENTRY_RE.match(line)
        if not m:
            raise DataError(f"{path}:{i}: malformed entry {line!r} (expected '<word>/<file>.wav')")
        if m.group(1) not in words:
            raise DataError(f"{path}:{i}: bad label {m.group(1)!r} in {line!r} (not one of the {len(words)} words)")
        out.append(line)
    return out


def _decode_clips(root: Path, rel: list[str], progress: bool) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((len(rel), CLIP_SAMPLES), dtype=np.int16)
    lengths = np.zeros(len(rel), dtype=np.int64)
    it = rel
    if progress and len(rel) > 2000:
        from tqdm import tqdm
        it = tqdm(rel, desc=f"decoding {root.name}", unit="clip", leave=False)
    for i, r in enumerate(it):
        s = read_wav(root / r, rate=SAMPLE_RATE, channels=1, bits=16, max_samples=CLIP_SAMPLES)
        x[i, : len(s)] = s
        lengths[i] = len(s)
    return x, lengths


# --------------------------------------------------------------------------------------------------
# standard layout
# --------------------------------------------------------------------------------------------------

def load_speech_commands(root: Path | str, split: str = "train", version: str = "v0.02",
                         words: list[str] | None = None, complete: bool = True, limit: int | None = None,
                         cache: bool = True, progress: bool = True) -> Dataset:
    """Speech Commands in its standard layout (see GSC_LAYOUT), split by the official lists.

    split     'train' (every clip in neither list), 'val' (validation_list.txt), 'test' (testing_list.txt).
    version   'v0.02' (35 words) or 'v0.01' (30 words): fixes the class list (sorted word names).
    words     override the class list; every folder present must be one of them.
    complete  True for a full copy of the set: every listed clip must exist. False for a sample
              (e.g. the 300-clip v0.01 sample): listed clips absent from disk are skipped and counted
              in meta['n_listed_absent'].
    limit     a deterministic subset of that many clips (decodes only those; not cached).
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if words is None:
        if version not in ("v0.01", "v0.02"):
            raise DataError(f"version must be 'v0.01' or 'v0.02', got {version!r}")
        words = GSC_V2_WORDS if version == "v0.02" else GSC_V1_WORDS
    words = list(words)
    root = require_dir(root, f"Speech Commands {version}", GSC_LAYOUT)
    sub = root / f"speech_commands_{version}"
    if sub.is_dir() and not (root / "testing_list.txt").exists():
        root = sub  # the archive's top folder

    present: dict[str, list[str]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name == "_background_noise_" or d.name.startswith("."):
            continue
        if d.name not in words:
            raise DataError(f"{d}: bad label: folder {d.name!r} is not one of the {len(words)} words of "
                            f"Speech Commands {version}")
        files = []
        for f in sorted(d.iterdir()):
            if f.name.startswith("."):
                continue
            if f.suffix.lower() != ".wav" or not f.is_file():
                raise DataError(f"{f}: unexpected file in a word folder (only .wav clips belong there)")
            files.append(f"{d.name}/{f.name}")
        present[d.name] = files
    missing_words = [w for w in words if w not in present]
    if complete and missing_words:
        raise DataError(f"{root}: word folder(s) missing: {', '.join(missing_words)}; expected layout:\n{GSC_LAYOUT}")
    if not present:
        raise DataError(f"{root}: no word folders found; expected layout:\n{GSC_LAYOUT}")

    val_list = _read_split_list(root / "validation_list.txt", words)
    test_list = _read_split_list(root / "testing_list.txt", words)
    both = set(val_list) & set(test_list)
    if both:
        raise DataError(f"{root}: {len(both)} clip(s) are in both validation_list.txt and testing_list.txt, "
                        f"e.g. {sorted(both)[0]}")
    all_files = {f for fs in present.values() for f in fs}
    absent = [e for e in val_list + test_list if e not in all_files]
    if complete and absent:
        raise DataError(f"{root}: {len(absent)} clip(s) named in the split lists are missing on disk, "
                        f"e.g. {absent[0]} (pass complete=False for a partial copy)")
    val_set, test_set = set(val_list), set(test_list)
    if split == "val":
        rel = sorted(f for f in all_files if f in val_set)
    elif split == "test":
        rel = sorted(f for f in all_files if f in test_set)
    else:
        rel = sorted(f for f in all_files if f not in val_set and f not in test_set)
    labels = np.array([words.index(r.split("/", 1)[0]) for r in rel], dtype=np.int64)

    sel = limit_index(len(rel), limit)
    rel = [rel[i] for i in sel]
    labels = labels[sel]

    def build() -> Dataset:
        x, lengths = _decode_clips(root, rel, progress)
        meta = {
            "task": "gsc35" if version == "v0.02" and len(words) == 35 else f"gsc_{version}",
            "source": str(root.resolve()), "version": version, "split": split,
            "split_rule": "official validation_list.txt / testing_list.txt; train = all other clips",
            "n": len(rel), "class_counts": class_counts(labels, words),
            "sample_rate": SAMPLE_RATE, "format": "int16 PCM, value = pcm/32768 (s16f15)",
            "n_padded": int((lengths < CLIP_SAMPLES).sum()),
            "padding": "clips shorter than 1 s zero-padded at the end (GSC protocol)",
            "n_listed_absent": len(absent), "limit": limit,
            "licence": LICENCE, "citation": CITATION,
        }
        return Dataset(x, labels, lengths, words, np.asarray(rel, dtype=str), meta)

    if limit is not None or not cache:
        return build()
    key = {"root": str(root.resolve()), "split": split, "words": words, "complete": complete,
           "tree": tree_fingerprint(root, rel + ["validation_list.txt", "testing_list.txt"])}
    return cached_dataset(f"speech_{version}", key, build)


# --------------------------------------------------------------------------------------------------
# MLPerf Tiny KWS test selection (12 classes)
# --------------------------------------------------------------------------------------------------

def _kws_root(root: Path) -> Path:
    if (root / "mlperf_tiny_kws_test").is_dir():
        root = root / "mlperf_tiny_kws_test"
    if not (root / "y_labels_original.csv").is_file():
        if root.is_dir():
            raise DataError(f"missing label file {root / 'y_labels_original.csv'}; expected layout:\n{KWS12_LAYOUT}")
        raise DataError(f"MLPerf KWS data root {root} does not exist; expected layout:\n{KWS12_LAYOUT}")
    return root


_KWS_NAME_RE = re.compile(r"^tst_(\d{6})_([A-Za-z]+)_(\d+)\.bin$")


def read_kws12_labels(csv_path: Path) -> list[tuple[str, int, str | None]]:
    """Rows of y_labels_original.csv as (wav path relative to the folder, label, original name or None).

    Each row is 'tst_NNNNNN_<Word>_<label>.bin, 12, <label>' (the MLPerf/EEMBC format); an optional 4th
    column may hold the clip's original GSC file name ('<word>/<speaker>_nohash_<k>.wav'), which makes
    speaker-disjoint splits possible. The archive shipped in shared/ has only the 3 columns."""
    rows = []
    seen = set()
    with open(csv_path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f), 1):
            if not row or all(not c.strip() for c in row):
                continue
            row = [c.strip() for c in row]
            if len(row) not in (3, 4):
                raise DataError(f"{csv_path}:{i}: expected 3 or 4 comma-separated fields, got {len(row)}: {row}")
            m = _KWS_NAME_RE.match(row[0])
            if not m:
                raise DataError(f"{csv_path}:{i}: malformed name {row[0]!r} (expected tst_NNNNNN_<Word>_<label>.bin)")
            try:
                n_classes, label = int(row[1]), int(row[2])
            except ValueError:
                raise DataError(f"{csv_path}:{i}: bad label: class count {row[1]!r} and label {row[2]!r} "
                                f"must be integers") from None
            if n_classes != 12:
                raise DataError(f"{csv_path}:{i}: class count {n_classes}, expected 12")
            if not 0 <= label < 12:
                raise DataError(f"{csv_path}:{i}: bad label {label} (must be 0..11)")
            if m.group(2) != KWS12_CSV_WORDS[label] or int(m.group(3)) != label:
                raise DataError(f"{csv_path}:{i}: bad label: name {row[0]!r} disagrees with label {label} "
                                f"({KWS12_CSV_WORDS[label]})")
            rel = f"{KWS12_CLASSES[label]}/tst_{m.group(1)}.wav"
            if rel in seen:
                raise DataError(f"{csv_path}:{i}: clip tst_{m.group(1)} listed twice")
            seen.add(rel)
            rows.append((rel, label, row[3] if len(row) == 4 else None))
    if not rows:
        raise DataError(f"{csv_path}: no rows")
    return rows


def load_mlperf_kws(root: Path | str, limit: int | None = None, cache: bool = True,
                    source_note: str | None = None) -> Dataset:
    """The MLPerf Tiny KWS (kws01) test selection: 12 classes, every clip exactly 1 s (see KWS12_LAYOUT).

    These clips come from the Speech Commands v0.02 **test** split: they are test data only.
    For a train/val/test split of them see `split_kws12` (speaker-disjoint only where the original
    file names are known)."""
    root = _kws_root(Path(root))
    rows = read_kws12_labels(root / "y_labels_original.csv")
    listed = {r for r, _, _ in rows}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name not in KWS12_CLASSES:
            raise DataError(f"{d}: bad label: folder {d.name!r} is not one of {KWS12_CLASSES}")
        for f in sorted(d.iterdir()):
            rel = f"{d.name}/{f.name}"
            if f.suffix.lower() == ".wav" and rel not in listed:
                raise DataError(f"{f}: clip not listed in y_labels_original.csv (or listed under another label)")
    for rel, _, _ in rows:
        if not (root / rel).is_file():
            raise DataError(f"{root / rel}: listed in y_labels_original.csv but missing")
    rows.sort(key=lambda r: r[0].rsplit("/", 1)[1])  # tst_ number order
    sel = limit_index(len(rows), limit)
    rows = [rows[i] for i in sel]
    rel = [r for r, _, _ in rows]
    y = np.array([lab for _, lab, _ in rows], dtype=np.int64)
    originals = [o for _, _, o in rows]

    def build() -> Dataset:
        x = np.zeros((len(rel), CLIP_SAMPLES), dtype=np.int16)
        lengths = np.zeros(len(rel), dtype=np.int64)
        for i, r in enumerate(rel):
            s = read_wav(root / r, rate=SAMPLE_RATE, channels=1, bits=16, max_samples=CLIP_SAMPLES)
            if len(s) != CLIP_SAMPLES:
                raise DataError(f"{root / r}: {len(s)} samples, the MLPerf selection has exactly {CLIP_SAMPLES}")
            x[i] = s
            lengths[i] = len(s)
        meta = {
            "task": "gsc12", "source": source_note or str(root.resolve()), "split": "test",
            "split_note": "all clips are from the Speech Commands v0.02 test split (MLPerf Tiny kws01 "
                          "selection); use split_kws12 for a train/val/test division",
            "n": len(rel), "class_counts": class_counts(y, KWS12_CLASSES),
            "sample_rate": SAMPLE_RATE, "format": "int16 PCM, value = pcm/32768 (s16f15)",
            "n_padded": 0, "original_names": originals,
            "speakers": [speaker_id(o) if o else None for o in originals],
            "limit": limit, "licence": LICENCE,
            "citation": CITATION + "; selection: MLPerf Tiny (Banbury et al. 2021), eembc/energyrunner kws01",
        }
        return Dataset(x, y, lengths, list(KWS12_CLASSES), np.asarray(rel, dtype=str), meta)

    if limit is not None or not cache:
        return build()
    key = {"root": str(root.resolve()), "tree": tree_fingerprint(root, rel + ["y_labels_original.csv"])}
    return cached_dataset("gsc12", key, build)


def split_kws12(ds: Dataset, val_pct: float = 10.0, test_pct: float = 10.0, speaker_disjoint: bool = True,
                seed: int = 0) -> dict[str, Dataset]:
    """Deterministic train/val/test division of a 12-class KWS set. Returns {'train','val','test'}.

    speaker_disjoint=True: every speech clip must have a known speaker (from meta['speakers'], i.e. a
      4th csv column with the original GSC name, or from ids that contain '<speaker>_nohash_<k>');
      speakers are assigned by the GSC hash rule (`gsc_which_set`), so no speaker is in two sets.
      '_silence_' clips (background noise, no speaker) are assigned one by one by the same rule on
      their own name. Raises DataError if any speech clip has no speaker id: the MLPerf csv shipped in
      shared/ lists only 'tst_NNNNNN' names, so its speakers cannot be recovered.
    speaker_disjoint=False: a class-stratified split of clips (seeded permutation per class); the
      same speaker may then occur in several sets, and meta['speaker_disjoint'] says so.
    """
    n = len(ds)
    speakers = ds.meta.get("speakers") or [None] * n
    speakers = [s if s else speaker_id(i) for s, i in zip(speakers, ds.ids, strict=True)]
    assign = np.empty(n, dtype=object)
    if speaker_disjoint:
        silence = ds.classes.index("_silence_") if "_silence_" in ds.classes else -1
        unknown = [i for i in range(n) if speakers[i] is None and ds.y[i] != silence]
        if unknown:
            raise DataError(
                f"speaker ids unknown for {len(unknown)} of {n} clips (e.g. {ds.ids[unknown[0]]}): "
                f"y_labels_original.csv gives only 'tst_NNNNNN' names, not '<speaker>_nohash_<k>'. Supply "
                f"the original names as a 4th csv column, or pass speaker_disjoint=False for a "
                f"class-stratified clip-level split (speakers may then repeat across sets).")
        for i in range(n):
            key = speakers[i] if speakers[i] else Path(str(ds.ids[i])).stem
            assign[i] = gsc_which_set(key + "_nohash_0.wav", val_pct, test_pct)
        rule = "GSC hash rule on speaker id (speaker-disjoint)"
    else:
        rng = np.random.default_rng(seed)
        for c in range(len(ds.classes)):
            idx = np.flatnonzero(ds.y == c)
            idx = idx[rng.permutation(len(idx))]
            n_val = int(round(len(idx) * val_pct / 100))
            n_test = int(round(len(idx) * test_pct / 100))
            assign[idx[:n_val]] = "val"
            assign[idx[n_val:n_val + n_test]] = "test"
            assign[idx[n_val + n_test:]] = "train"
        rule = f"class-stratified clip-level split, seed {seed} (NOT speaker-disjoint)"
    out = {}
    for s in ("train", "val", "test"):
        out[s] = ds.subset(np.flatnonzero(assign == s), split=s, split_rule=rule,
                           speaker_disjoint=bool(speaker_disjoint),
                           speakers=[speakers[i] for i in np.flatnonzero(assign == s)],
                           original_names=[(ds.meta.get("original_names") or [None] * n)[i]
                                           for i in np.flatnonzero(assign == s)])
    return out
