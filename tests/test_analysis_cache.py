"""analysis.cache and the cached task engine: keys, hits and misses, re-runs compute only what changed."""
from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.cache import Cache, bundle_digest, canonical, key_of
from analysis.data import EvalData
from analysis.sweeps import Task, run_tasks
from sim import NoiseModel, Thermal
from spec import Arch, random_bundle


@pytest.fixture(scope="module")
def bundle():
    return random_bundle(Arch(d_in=1, n_classes=4, hidden=8, layers=1, taps=2, d_max=3), seed=3)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.integers(-20000, 20000, size=(6, 40, 1)).astype(np.int16)
    return EvalData(x, rng.integers(0, 4, 6), np.array([40, 40, 30, 20, 40, 35]), "synthetic", list("abcd"), "test")


def test_key_is_deterministic_and_sensitive(bundle):
    nm = NoiseModel(thermal=Thermal(capacitance=1e-14))
    k = key_of(bundle=bundle_digest(bundle), noise=nm, seed=1)
    assert k == key_of(bundle=bundle_digest(bundle), noise=NoiseModel(thermal=Thermal(capacitance=1e-14)), seed=1)
    assert k != key_of(bundle=bundle_digest(bundle), noise=nm, seed=2)
    assert k != key_of(bundle=bundle_digest(bundle), noise=nm.replace(thermal=Thermal(capacitance=2e-14)), seed=1)
    assert k != key_of(bundle=bundle_digest(bundle), noise=nm.replace(v_fs=0.5), seed=1)
    assert k != key_of(bundle=bundle_digest(bundle), noise=None, seed=1)
    # canonical form names the class and keeps floats exactly
    c = canonical(nm)
    assert c["__class__"] == "NoiseModel" and c["thermal"]["capacitance"] == 1e-14
    json.dumps(canonical(NoiseModel.zero()))          # inf r_off is representable


def test_bundle_digest_ignores_meta_but_not_codes(bundle):
    b2 = random_bundle(bundle.arch, seed=3, meta={"anything": 1})
    assert bundle_digest(b2) == bundle_digest(bundle)
    t = dict(bundle.tensors)
    w = t["out.w"].copy()
    w[0, 0] += 1 if w[0, 0] < bundle.formats.w_out.max_int else -1
    t["out.w"] = w
    b3 = type(bundle)(bundle.arch, bundle.formats, t, {})
    assert bundle_digest(b3) != bundle_digest(bundle)
    b4 = type(bundle)(bundle.arch, bundle.formats.replace(h=bundle.formats.h.with_(bits=14, frac=8)),
                      dict(bundle.tensors), {})
    assert bundle_digest(b4) != bundle_digest(bundle)


def test_cache_get_put_hit_miss(tmp_path):
    c = Cache(tmp_path)
    assert c.get("ab" * 32) is None and c.misses == 1 and c.hits == 0
    c.put("ab" * 32, {"accuracy": 0.5})
    assert ("ab" * 32) in c
    v = c.get("ab" * 32)
    assert v["accuracy"] == 0.5 and c.hits == 1
    # a corrupt entry is a miss, not an error
    c.path("cd" * 32).parent.mkdir(parents=True, exist_ok=True)
    c.path("cd" * 32).write_text("{not json")
    assert c.get("cd" * 32) is None and c.misses == 2
    # an entry stored under another key is rejected
    c.path("ef" * 32).parent.mkdir(parents=True, exist_ok=True)
    c.path("ef" * 32).write_text(json.dumps({"accuracy": 1.0, "_key": "ab" * 32}))
    assert c.get("ef" * 32) is None
    off = Cache(False)
    off.put("ab" * 32, {"x": 1})
    assert off.get("ab" * 32) is None and "ab" * 32 not in off


def test_rerun_computes_only_what_changed(tmp_path, bundle, data):
    c = Cache(tmp_path)
    caps = [1e-16, 1e-15]
    tasks = [Task(bundle)] + [Task(bundle, NoiseModel(thermal=Thermal(capacitance=x)), s) for x in caps for s in (0, 1)]
    r1 = run_tasks(tasks, data, batch=4, cache=c, workers=1, progress=False)
    assert c.misses == 5 and c.hits == 0 and not any(r["cached"] for r in r1)
    assert len(list(tmp_path.rglob("*.json"))) == 5
    c2 = Cache(tmp_path)
    r2 = run_tasks(tasks, data, batch=4, cache=c2, workers=1, progress=False)
    assert c2.hits == 5 and c2.misses == 0 and all(r["cached"] for r in r2)
    assert [r["predictions"] for r in r1] == [r["predictions"] for r in r2]
    # one new point (2 seeds) and one new seed at an old point: 3 computed, 5 reused
    more = tasks + [Task(bundle, NoiseModel(thermal=Thermal(capacitance=1e-14)), s) for s in (0, 1)] + \
        [Task(bundle, NoiseModel(thermal=Thermal(capacitance=1e-16)), 2)]
    c3 = Cache(tmp_path)
    r3 = run_tasks(more, data, batch=4, cache=c3, workers=1, progress=False)
    assert c3.hits == 5 and c3.misses == 3
    assert [r["cached"] for r in r3] == [True] * 5 + [False] * 3
    # a different batch size or data subset is another result
    c4 = Cache(tmp_path)
    run_tasks(tasks[:1], data, batch=3, cache=c4, workers=1, progress=False)
    run_tasks(tasks[:1], data.subset([0, 1, 2]), batch=4, cache=c4, workers=1, progress=False)
    assert c4.misses == 2


def test_duplicate_tasks_run_once(tmp_path, bundle, data):
    c = Cache(tmp_path)
    t = Task(bundle, NoiseModel(thermal=Thermal(capacitance=1e-15)), 0)
    r = run_tasks([t, t, Task(bundle), Task(bundle, None, 5)], data, batch=4, cache=c, workers=1, progress=False)
    assert len(list(tmp_path.rglob("*.json"))) == 2          # exact runs ignore the seed
    assert r[0] == r[1] and r[2]["predictions"] == r[3]["predictions"]
