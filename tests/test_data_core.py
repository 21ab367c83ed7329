"""The common data API: load_task on every fixture, Dataset invariants, archives, cache, clear errors."""
import io
import subprocess
import tarfile

import numpy as np
import pytest

from data import DATASETS, DataError, Dataset, cache_dir, load_task, unpack_archive
from data.core import FIXTURES, REPO_ROOT, limit_index

FIXTURE_TASKS = {  # task -> (split, expected dtype, x.ndim)
    "gsc12": ("test", np.int16, 2),
    "gsc_v1_sample": ("train", np.int16, 2),
    "asc40": ("train", np.int16, 2),
    "listops": ("train", np.int16, 2),
    "text": ("train", np.int16, 2),
    "image": ("train", np.uint8, 2),
    "pathfinder": ("train", np.uint8, 2),
    "retrieval": ("train", np.int16, 3),
}


@pytest.mark.parametrize("task", sorted(FIXTURE_TASKS))
def test_every_fixture_loads_through_load_task(task):
    split, dtype, ndim = FIXTURE_TASKS[task]
    ds = load_task(task, root="fixture", split=split)
    assert isinstance(ds, Dataset) and len(ds) > 0
    assert ds.x.dtype == dtype and ds.x.ndim == ndim and ds.y.dtype == np.int64
    assert ds.y.min() >= 0 and ds.y.max() < len(ds.classes)
    assert len(ds.ids) == len(ds) == len(ds.lengths)
    assert ds.meta["split"] == split and ds.meta["n"] == len(ds) and ds.meta["fixture"] is True
    assert sum(ds.meta["class_counts"].values()) == len(ds)
    assert "citation" in ds.meta
    sub = ds.subset(np.array([0]))
    assert len(sub) == 1 and sub.meta["n"] == 1 and np.array_equal(sub.x[0], ds.x[0])
    lim = load_task(task, root="fixture", split=split, limit=1)
    assert len(lim) == 1


def test_fixtures_are_small_and_cited():
    total = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    assert total < 4_000_000
    readme = (FIXTURES / "README.md").read_text()
    for word in ("Warden", "CC BY 4.0", "Maas", "Krizhevsky", "SYNTHETIC"):
        assert word in readme


def test_fixtures_work_without_shared(monkeypatch, tmp_path):
    """A fresh clone with no ../shared: fixtures load; defaults that need shared data say what to do."""
    monkeypatch.setenv("MGRADE_SHARED_DATA", str(tmp_path / "no_shared"))
    monkeypatch.setenv("MGRADE_DATA_CACHE", str(tmp_path / "cache"))
    assert len(load_task("gsc12", root="fixture", split="test")) == 24
    for task in ("gsc12", "gsc_v1_sample", "asc40", "text", "image"):
        with pytest.raises(DataError) as e:
            load_task(task, split="test")
        assert "not found" in str(e.value) and "root='fixture'" in str(e.value)


def test_task_errors():
    with pytest.raises(DataError, match="unknown task 'mnist'"):
        load_task("mnist")
    with pytest.raises(DataError, match="no committed fixture"):
        load_task("gsc35", root="fixture")
    with pytest.raises(DataError, match="needs root="):
        load_task("gsc_v1")
    with pytest.raises(DataError, match="split must be"):
        load_task("listops", root="fixture", split="dev")
    with pytest.raises(DataError, match="resplit must be"):
        load_task("gsc12", root="fixture", split="train", resplit="random")
    assert set(DATASETS) == {"gsc35", "gsc_v1", "gsc12", "gsc_v1_sample", "asc40", "listops", "text", "image",
                          "pathfinder", "retrieval"}


def test_dataset_rejects_inconsistent_arrays():
    with pytest.raises(DataError, match="disagree in length"):
        Dataset(np.zeros((3, 4)), np.zeros(2, np.int64), np.zeros(3), ["a"], np.array(["1", "2", "3"]))


def test_limit_index_deterministic_sorted():
    a = limit_index(100, 10)
    assert np.array_equal(a, limit_index(100, 10)) and np.all(np.diff(a) > 0) and len(a) == 10
    assert np.array_equal(limit_index(5, None), np.arange(5)) and np.array_equal(limit_index(5, 9), np.arange(5))


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("system_tar", [False, True])
def test_unpack_once_and_again_when_changed(monkeypatch, tmp_path, system_tar):
    monkeypatch.setenv("MGRADE_DATA_CACHE", str(tmp_path / "cache"))
    if system_tar:
        import shutil
        if not shutil.which("tar"):
            pytest.skip("no system tar")
        monkeypatch.setattr("data.core.SYSTEM_TAR_MIN_MEMBERS", 0)
    arch = _tar(tmp_path / "demo.tar.gz", {"demo/a.txt": b"one", "demo/b/c.txt": b"two"})
    d = unpack_archive(arch, progress=False)
    assert d == cache_dir() / "unpacked" / "demo" and (d / "demo" / "b" / "c.txt").read_bytes() == b"two"
    (d / "demo" / "marker").write_text("x")
    assert unpack_archive(arch, progress=False) == d and (d / "demo" / "marker").exists()  # not unpacked again
    _tar(arch, {"demo/a.txt": b"three"})
    d2 = unpack_archive(arch, progress=False)
    assert (d2 / "demo" / "a.txt").read_bytes() == b"three" and not (d2 / "demo" / "marker").exists()


@pytest.mark.parametrize("kind, message", [
    ("truncated", "truncated or corrupt archive"),
    ("not_tar", "not a readable tar archive"),
    ("unsafe", "refusing unsafe member"),
    ("missing", "not found"),
])
def test_unpack_bad_archives(monkeypatch, tmp_path, kind, message):
    monkeypatch.setenv("MGRADE_DATA_CACHE", str(tmp_path / "cache"))
    arch = tmp_path / "bad.tar.gz"
    if kind == "truncated":
        _tar(arch, {f"d/{i}.bin": np.random.default_rng(i).bytes(5000) for i in range(20)})
        arch.write_bytes(arch.read_bytes()[:30000])
    elif kind == "not_tar":
        arch.write_bytes(b"hello, not an archive")
    elif kind == "unsafe":
        _tar(arch, {"../evil.txt": b"x"})
    with pytest.raises(DataError) as e:
        unpack_archive(arch, progress=False)
    assert message in str(e.value)
    assert not (tmp_path / "evil.txt").exists()


def test_cache_is_outside_the_repository_or_ignored(monkeypatch):
    monkeypatch.delenv("MGRADE_DATA_CACHE", raising=False)
    d = cache_dir().resolve()
    inside = REPO_ROOT.resolve() in d.parents
    if inside:
        r = subprocess.run(["git", "check-ignore", "-q", str(d)], cwd=REPO_ROOT)
        assert r.returncode == 0, f"cache {d} is inside the repository and not git-ignored"


def test_nothing_downloads():
    """The data layer's own code imports no networking module (nothing is fetched at run time)."""
    import ast
    net = {"urllib", "http", "requests", "socket", "ftplib", "urllib3", "httpx", "aiohttp"}
    files = sorted((REPO_ROOT / "data").glob("*.py"))
    assert files
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert n.split(".")[0] not in net, f"{f.name} imports {n}"
