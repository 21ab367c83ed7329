"""Rebuild the committed fixtures in data/fixtures from the shared archives and the generators.

    python -m data.make_fixtures     # needs ../shared/data (or $MGRADE_SHARED_DATA)

Deterministic: the same archives give the same files. Real clips, reviews and images are copied
byte for byte (nothing re-encoded); ListOps and Pathfinder are generated with fixed seeds; the AAN
pairs are synthetic (the AAN corpus is not available offline) and say so.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from .asc import TOP as ASC_TOP
from .asc import asc_speaker
from .core import FIXTURES, shared_archive, unpack_archive
from .listops import generate_listops_files
from .pathfinder import DIFFICULTIES, generate_pathfinder, write_pathfinder_files
from .speech import KWS12_CLASSES, read_kws12_labels

V1_FIXTURE = {  # word -> clips (one test, one val, train ones incl. a clip shorter than 1 s)
    "yes": ["563aa4e6_nohash_2.wav", "439c84f4_nohash_1.wav", "51055bda_nohash_4.wav"],
    "no": ["563aa4e6_nohash_2.wav", "439c84f4_nohash_1.wav", "37e8db82_nohash_1.wav"],
    "up": ["563aa4e6_nohash_2.wav", "439c84f4_nohash_1.wav", "8d4cdc60_nohash_1.wav"],
    "down": ["563aa4e6_nohash_2.wav", "439c84f4_nohash_1.wav", "8d4cdc60_nohash_1.wav"],
}


def _fresh(d: Path) -> Path:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def make_gsc12(per_class: int = 2):
    src = unpack_archive(shared_archive("gsc_v2_kws12_test1000.tar.gz")) / "mlperf_tiny_kws_test"
    out = _fresh(FIXTURES / "gsc12") / "mlperf_tiny_kws_test"
    lines = (src / "y_labels_original.csv").read_text().splitlines()
    rows = read_kws12_labels(src / "y_labels_original.csv")
    taken: dict[int, int] = {}
    keep = []
    for line, (rel, label, _) in zip(lines, rows, strict=True):
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            keep.append(line)
            (out / KWS12_CLASSES[label]).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, out / rel)
    (out / "y_labels_original.csv").write_text("\n".join(keep) + "\n")


def make_gsc_v1():
    src = unpack_archive(shared_archive("gsc_v1_sample300.tar.gz")) / "speech_commands_v0.01"
    out = _fresh(FIXTURES / "gsc_v1") / "speech_commands_v0.01"
    out.mkdir()
    for word, files in V1_FIXTURE.items():
        (out / word).mkdir()
        for f in files:
            shutil.copyfile(src / word / f, out / word / f)
    for lst in ("testing_list.txt", "validation_list.txt"):
        entries = [e for e in (src / lst).read_text().splitlines() if e.split("/")[0] in V1_FIXTURE]
        (out / lst).write_text("\n".join(entries) + "\n")
    shutil.copyfile(src / "LICENSE", out / "LICENSE")


ASC_FIXTURE = {"words": ("yes", "no", "zoom in"), "train_speakers": 4, "test_speakers": 2, "rep": "01"}


def make_asc40():
    """Arabic Speech Commands: repetition 01 of 3 keywords (one with a space in its name) by the first 4
    train and the first 2 test speakers, FLAC copied byte for byte; train.csv / test.csv / manifest.tsv
    trimmed to those clips (rows in the archive's order), and the data set's LICENSE."""
    src = unpack_archive(shared_archive("asc_kws40_train_test_flac.tar")) / ASC_TOP
    out = _fresh(FIXTURES / "asc40") / ASC_TOP
    out.mkdir()
    keep = set()
    for split in ("train", "test"):
        lines = (src / f"{split}.csv").read_text().splitlines()
        rows = [ln for ln in lines[1:] if ln.rsplit(",", 1)[1] in ASC_FIXTURE["words"]]
        speakers = sorted({asc_speaker(ln.rsplit(",", 1)[0]) for ln in rows})[:ASC_FIXTURE[f"{split}_speakers"]]
        rows = [ln for ln in rows if asc_speaker(ln.rsplit(",", 1)[0]) in speakers
                and ln.rsplit(",", 1)[0].endswith(f"_NO_{ASC_FIXTURE['rep']}.flac")]
        (out / f"{split}.csv").write_text("\n".join([lines[0]] + rows) + "\n")
        for ln in rows:
            rel = ln.rsplit(",", 1)[0]
            keep.add(rel)
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, out / rel)
    lines = (src / "manifest.tsv").read_text().splitlines()
    (out / "manifest.tsv").write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split("\t")[1] in keep])
                                      + "\n")
    shutil.copyfile(src / "LICENSE", out / "LICENSE")


def make_text(per_folder: int = 3):
    src = unpack_archive(shared_archive("lra_text_aclImdb.tar.gz")) / "aclImdb"
    out = _fresh(FIXTURES / "text") / "aclImdb"
    for split in ("train", "test"):
        for lab in ("neg", "pos"):
            d = out / split / lab
            d.mkdir(parents=True)
            files = sorted((src / split / lab).iterdir(), key=lambda p: int(p.name.split("_")[0]))
            pick = files[:per_folder]
            if split == "train":  # one review longer than LRA's 4096 bytes, to exercise the cut
                pick.append(next(f for f in files if f.stat().st_size > 4096))
            for f in pick:
                shutil.copyfile(f, d / f.name)
    shutil.copyfile(src / "README", out / "README")


def make_image(train_per_class: int = 10, test_per_class: int = 2):
    src = unpack_archive(shared_archive("lra_image_cifar10_jpeg.tar.gz")) / "cifar10_jpeg"
    out = _fresh(FIXTURES / "image") / "cifar10_jpeg"
    for split, k in (("train", train_per_class), ("test", test_per_class)):
        for cd in sorted((src / split).iterdir()):
            d = out / split / cd.name
            d.mkdir(parents=True)
            for f in sorted(cd.iterdir(), key=lambda p: int(p.stem))[:k]:
                shutil.copyfile(f, d / f.name)


def make_listops():
    out = _fresh(FIXTURES / "listops")
    generate_listops_files(out, sizes={"train": 12, "val": 4, "test": 4}, seed=2021)


def make_pathfinder(n: int = 20):
    out = _fresh(FIXTURES / "pathfinder")
    for i, diff in enumerate(DIFFICULTIES):
        imgs, labels = generate_pathfinder(n, seed=100 + i, difficulty=diff, progress=False)
        write_pathfinder_files(out, imgs, labels, difficulty=diff, per_folder=10)


_WORDS = ("model network training sequence recurrent attention memory gradient layer state delay convolution "
          "speech audio keyword spotting hardware switched capacitor analog digital circuit energy quantization "
          "fixed point precision noise robustness benchmark dataset accuracy latency parser grammar syntax "
          "translation corpus annotation retrieval citation anthology language semantic embedding").split()


def _synthetic_doc(rng: np.random.Generator, topic: int, n_words: int) -> str:
    """Pseudo-abstract: words drawn mostly from a topic's slice of the word list."""
    lo = (topic * 12) % len(_WORDS)
    topical = [_WORDS[(lo + j) % len(_WORDS)] for j in range(12)]
    words = [topical[rng.integers(12)] if rng.random() < 0.8 else _WORDS[rng.integers(len(_WORDS))]
             for _ in range(n_words)]
    s = " ".join(words)
    return "SYNTHETIC. " + s[0].upper() + s[1:] + "."


def make_retrieval(sizes=None, seed: int = 7):
    """Synthetic pairs in the AAN TSV layout (label, id1, id2, text1, text2): label 1 when the two
    pseudo-abstracts share a topic. NOT AAN data: only the file format is AAN's."""
    sizes = sizes or {"train": 8, "eval": 4, "test": 4}
    out = _fresh(FIXTURES / "retrieval")
    rng = np.random.default_rng(seed)
    k = 0
    for split, n in sizes.items():
        lines = []
        for i in range(n):
            label = i % 2
            t1 = int(rng.integers(4))
            t2 = t1 if label else (t1 + 1 + int(rng.integers(3))) % 4
            n1 = 700 if (split == "train" and i == 0) else int(rng.integers(40, 160))  # one doc > 4000 bytes
            d1, d2 = _synthetic_doc(rng, t1, n1), _synthetic_doc(rng, t2, int(rng.integers(40, 160)))
            lines.append(f"{label}\tSYN-{k:04d}\tSYN-{k + 1:04d}\t{d1}\t{d2}")
            k += 2
        (out / f"new_aan_pairs.{split}.tsv").write_text("\n".join(lines) + "\n")


def main(argv=None):
    steps = {"gsc12": make_gsc12, "gsc_v1": make_gsc_v1, "asc40": make_asc40, "text": make_text, "image": make_image,
             "listops": make_listops, "pathfinder": make_pathfinder, "retrieval": make_retrieval}
    names = (argv if argv is not None else sys.argv[1:]) or list(steps)
    for name in names:
        steps[name]()
        print(f"fixture {name}: done")
    total = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    print(f"fixtures total: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
