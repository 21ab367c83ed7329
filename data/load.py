"""`load_task`: one entry point for every data set of the project.

    ds = load_task(name, root=None, split="train", limit=None, **options)

root=None   the default source of the task: the shared real-data archive (unpacked once into the
            cache), or the generator for the tasks LRA generates; tasks with no offline source
            (gsc35, gsc_v1, retrieval) need a root and say so.
root='fixture'  the small set committed in data/fixtures (works on a fresh clone).
root=<path> the user's copy of the full public set in its published layout.
"""
from __future__ import annotations

from pathlib import Path

from . import asc, image, listops, pathfinder, speech, text
from .core import FIXTURES, REPO_ROOT, DataError, Dataset, shared_archive, unpack_archive

SHARED = {
    "gsc12": "gsc_v2_kws12_test1000.tar.gz",
    "gsc_v1_sample": "gsc_v1_sample300.tar.gz",
    "gsc_v2_lists": "gsc_v2_split_lists.tar.gz",
    "text": "lra_text_aclImdb.tar.gz",
    "image": "lra_image_cifar10_jpeg.tar.gz",
    "asc40": "asc_kws40_train_test_flac.tar",
}

FIXTURE_ROOTS = {
    "gsc12": FIXTURES / "gsc12",
    "gsc_v1_sample": FIXTURES / "gsc_v1" / "speech_commands_v0.01",
    "listops": FIXTURES / "listops",
    "text": FIXTURES / "text",
    "image": FIXTURES / "image",
    "pathfinder": FIXTURES / "pathfinder",
    "retrieval": FIXTURES / "retrieval",
    "asc40": FIXTURES / "asc40",
}

#: the data sets :func:`load_task` knows (the trainer's tasks are :data:`data.tasks.TASKS`)
DATASETS = {
    "gsc35": "Speech Commands v0.02, 35 words, official split lists; root = your full copy (required)",
    "gsc_v1": "Speech Commands v0.01, 30 words, official split lists; root = your full copy (required)",
    "gsc12": "MLPerf Tiny KWS: 1,000 real v0.02 test clips, 12 classes (test only; resplit='speaker'|'clip')",
    "gsc_v1_sample": "300 real Speech Commands v0.01 clips, 30 words, split by the official lists",
    "asc40": "Arabic Speech Commands: 40 keywords, 9,600 real FLAC clips, speaker-disjoint train/val/test",
    "listops": "LRA ListOps: TSV from root, or generated with LRA's parameters",
    "text": "LRA Text: byte-level IMDB (aclImdb), max_len=4096 by LRA's protocol",
    "image": "LRA Image: CIFAR-10 as 1024 grayscale pixels",
    "pathfinder": "LRA Pathfinder32: LRA layout from root, or generated",
    "retrieval": "LRA Retrieval: byte-level AAN pairs from root (TSV); fixture is synthetic",
}


def _source(name: str, root):
    """(root path or None, source note) for a task: 'fixture', a user path, or the shared archive."""
    if isinstance(root, str) and root == "fixture":
        if name not in FIXTURE_ROOTS:
            raise DataError(f"task {name!r} has no committed fixture (fixtures: {sorted(FIXTURE_ROOTS)})")
        return FIXTURE_ROOTS[name], f"fixture {FIXTURE_ROOTS[name].relative_to(REPO_ROOT)}"
    if root is not None:
        return Path(root), None
    if name in SHARED:
        arch = shared_archive(SHARED[name])
        return unpack_archive(arch), f"shared archive {arch.name}"
    return None, None


def load_task(name: str, root: str | Path | None = None, split: str = "train", limit: int | None = None,
              **kw) -> Dataset:
    """Load split `split` of task `name` (see DATASETS) as a `Dataset` of integer arrays.

    Options by task (keyword arguments):
      gsc12       resplit=None|'speaker'|'clip', val_pct=10, test_pct=10, seed=0
                  (resplit=None: split must be 'test' or 'all': the 1,000 clips as they are)
      gsc35/gsc_v1/gsc_v1_sample   cache=True
      asc40       val_speakers=None (1/6 of the 18 training speakers: 3), seed=0, verify=None, cache=True
      listops     max_len=2000, check_labels=False, seed=0
      text        max_len=4096 (None: no truncation), val=None|'lra'|'holdout', val_pct=10
      image       gray=True, val_pct=10
      pathfinder  difficulty='hard'|'intermediate'|'easy', seed=0, n=None, skip_empty=False
      retrieval   max_len=4000
    """
    if name not in DATASETS:
        raise DataError(f"unknown task {name!r}; tasks: {', '.join(DATASETS)}")
    path, note = _source(name, root)

    if name in ("gsc35", "gsc_v1"):
        if path is None:
            ver = "v0.02 (35 words, 2.3 GB)" if name == "gsc35" else "v0.01 (30 words)"
            raise DataError(f"task {name!r} needs root=<your full Speech Commands {ver} folder>; it is not "
                            f"available offline. Expected layout:\n{speech.GSC_LAYOUT}")
        ds = speech.load_speech_commands(path, split=split, version="v0.02" if name == "gsc35" else "v0.01",
                                         limit=limit, **kw)
    elif name == "gsc_v1_sample":
        ds = speech.load_speech_commands(path, split=split, version="v0.01", complete=False, limit=limit, **kw)
        ds.meta["task"] = "gsc_v1_sample"
    elif name == "gsc12":
        resplit = kw.pop("resplit", None)
        split_kw = {k: kw.pop(k) for k in ("val_pct", "test_pct", "seed") if k in kw}
        if resplit is None:
            if split not in ("test", "all"):
                raise DataError(
                    "gsc12 holds only Speech Commands v0.02 *test* clips: load split='test' (all 1,000), or "
                    "pass resplit='speaker' (speaker-disjoint, needs original file names) or resplit='clip' "
                    "(class-stratified, speakers may repeat) for train/val/test")
            ds = speech.load_mlperf_kws(path, limit=limit, source_note=note, **kw)
        else:
            if resplit not in ("speaker", "clip"):
                raise DataError(f"resplit must be None, 'speaker' or 'clip', got {resplit!r}")
            if split not in ("train", "val", "test"):
                raise DataError(f"split must be 'train', 'val' or 'test', got {split!r}")
            full = speech.load_mlperf_kws(path, source_note=note, **kw)
            ds = speech.split_kws12(full, speaker_disjoint=(resplit == "speaker"), **split_kw)[split]
            if limit is not None:
                from .core import limit_index
                ds = ds.subset(limit_index(len(ds), limit), limit=limit)
    elif name == "asc40":
        ds = asc.load_asc(path, split=split, limit=limit, source_note=note, **kw)
    elif name == "listops":
        ds = listops.load_listops(path, split=split, limit=limit, **kw)
    elif name == "text":
        ds = text.load_imdb(path, split=split, limit=limit, source_note=note, **kw)
    elif name == "image":
        ds = image.load_cifar10(path, split=split, limit=limit, source_note=note, **kw)
    elif name == "pathfinder":
        ds = pathfinder.load_pathfinder(path, split=split, limit=limit, **kw)
    elif name == "retrieval":
        if path is None:
            raise DataError("task 'retrieval' needs root=<folder of LRA's new_aan_pairs.{train,eval,test}.tsv> "
                            "(the AAN corpus is not available offline), or root='fixture' (synthetic pairs). "
                            f"Expected layout:\n{text.AAN_LAYOUT}")
        ds = text.load_aan(path, split=split, limit=limit, synthetic=(root == "fixture"), **kw)
    else:  # pragma: no cover
        raise DataError(name)
    if note:
        ds.meta["source"] = note
    if root == "fixture":
        ds.meta["fixture"] = True
    return ds
