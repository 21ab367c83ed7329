"""Verilog generation and Verilator builds, cached under ``build/`` (git-ignored).

* Verilog: ``build/rtl/<key>/mgrade_top.v``, key = hash of (arch, formats, trace flag, the
  source of ``rtl/`` and ``spec/``). Generated with ``emit_src=False`` (no absolute paths), so
  the text depends only on the design; written only if its content changed.
* Verilator model: ``build/verilator/<hash>/`` with hash = sha256(Verilog text, flags, Verilator
  version, harness kind). A finished build leaves a ``.built`` stamp; a rerun reuses it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from spec.arch import Arch, Formats

REPO = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("MGRADE_BUILD_DIR", REPO / "build"))
TOP = "mgrade_top"

#: Amaranth's Verilog trips these lint warnings by design (coreblocks' list, ecosystem.md 1.6).
LINT_OFF = ["-Wno-CASEINCOMPLETE", "-Wno-CASEOVERLAP", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
            "-Wno-UNSIGNED", "-Wno-CMPCONST", "-Wno-LITENDIAN", "-Wno-UNOPTFLAT", "-Wno-ALWNEVER",
            "-Wno-fatal"]
#: The PyPI wheel's verilated.mk leaves the precompiled-header include flag empty (perf.md 1.6).
WHEEL_FIX = ["-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include"]
OPT = ["--x-assign", "fast", "--x-initial", "fast", "-O3"]
TRACE_FLAGS = ["--trace-fst", "--trace-structs"]

__all__ = ["verilog_for", "verilog_of", "build_cocotb", "build_harness", "run_cocotb_test", "ensure_path",
           "BUILD", "TOP"]


def ensure_path() -> None:
    """Put tools/ (the verilator shim) and the venv's bin/ on PATH (make does it; python -m may not)."""
    extra = [str(REPO / "tools"), str(Path(sys.executable).parent)]
    parts = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([p for p in extra if p not in parts] + parts)


def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def _source_hash() -> str:
    files = sorted((REPO / "rtl").glob("*.py")) + sorted((REPO / "spec").glob("*.py"))
    return _sha(*[f.name.encode() + f.read_bytes() for f in files])


@contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def verilog_for(arch: Arch, fmts: Formats, *, trace: bool = False, log=print) -> Path:
    """Path of the Verilog of ``MgradeTop(arch, fmts, trace=trace)``, generated once."""
    key = _sha(json.dumps(arch.to_json(), sort_keys=True), json.dumps(fmts.to_json(), sort_keys=True),
               trace, _source_hash())[:16]
    out = BUILD / "rtl" / key / f"{TOP}.v"
    with _lock(BUILD / "locks" / f"rtl-{key}"):
        if out.exists():
            return out
        from amaranth.back import verilog
        from rtl.top import MgradeTop
        t0 = time.time()
        text = verilog.convert(MgradeTop(arch, fmts, trace=trace), name=TOP, emit_src=False,
                               strip_internal_attrs=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(out, text)
        (out.parent / "arch.json").write_text(json.dumps(
            {"arch": arch.to_json(), "formats": fmts.to_json(), "trace": trace}, indent=1))
        log(f"[build] Verilog generated in {time.time() - t0:.1f} s: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return out


def verilog_of(make, name: str, key: str, *, log=print) -> Path:
    """Verilog of the component ``make()`` under toplevel ``name``, generated once per ``key``
    and source state (like :func:`verilog_for`, for test benches of single blocks)."""
    k = _sha(name, key, _source_hash(), Path(__file__).with_name("blockbench.py").read_bytes())[:16]
    out = BUILD / "rtl" / f"{name}-{k}" / f"{name}.v"
    with _lock(BUILD / "locks" / f"rtl-{name}-{k}"):
        if out.exists():
            return out
        from amaranth.back import verilog
        t0 = time.time()
        text = verilog.convert(make(), name=name, emit_src=False, strip_internal_attrs=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(out, text)
        log(f"[build] Verilog of {name} generated in {time.time() - t0:.1f} s")
    return out


def verilog_feeder(vfile: Path, cfg_w: int, in_w: int, out_w: int, max_cfg: int) -> Path:
    """The self-clocked feeder wrapper (:mod:`testbenches.feeder`) of the design ``vfile``."""
    from .feeder import TB_TOP, feeder_sv
    out = vfile.with_name(f"{TB_TOP}.sv")
    with _lock(BUILD / "locks" / f"tb-{vfile.parent.name}"):
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(out, feeder_sv(cfg_w, in_w, out_w, max_cfg=max_cfg))
    return out


def run_cocotb_test(bdir: Path, *, top: str, module: str, workdir: Path, env: dict,
                    plusargs: list[str] | None = None, testcase: str | None = None) -> tuple[int, int]:
    """Run the cocotb test module ``module`` on the build ``bdir``; returns (tests, failures)
    read from the results file (cocotb's own exit status is not a reliable verdict outside
    pytest, and under pytest a failing test raises SystemExit from the runner)."""
    from cocotb_tools.runner import get_results
    runner = _runner()
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env.setdefault("COCOTB_LOG_LEVEL", os.environ.get("COCOTB_LOG_LEVEL", "WARNING"))
    xml = workdir / "results.xml"
    if xml.exists():
        xml.unlink()
    try:
        runner.test(test_module=module, hdl_toplevel=top, hdl_toplevel_lang="verilog", build_dir=bdir,
                    test_dir=workdir, extra_env=env, results_xml=str(xml), timescale=("1ns", "1ns"),
                    log_file=workdir / "sim.log", plusargs=plusargs or [],
                    testcase=testcase)
    except SystemExit:
        pass
    if not xml.exists():
        return 0, 1
    return get_results(xml)


def _verilator_version() -> str:
    ensure_path()
    try:
        return subprocess.run(["verilator", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


#: Only the top's ports are visible to cocotb (VPI). cocotb's runner passes ``--public-flat-rw``,
#: which keeps every one of Amaranth's many internal nets public: slow to compile (a huge VPI
#: symbol table) and ~7x slower to simulate (verilator PR #7945). :func:`_runner` drops it.
PUBLIC_TOP_VLT = """`verilator_config
public_flat_rw -module "{top}" -var "*"
"""


def _runner():
    from cocotb_tools.runner import Verilator

    class TopOnlyVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return TopOnlyVerilator()


#: ``--timing`` (the self-clocked feeder's ``#1`` delays) needs C++20 coroutines in the C++ build.
TIMING = ["--timing", "-CFLAGS", "-std=c++20 -fcoroutines"]


def build_cocotb(vfile: Path, *, top: str = TOP, waves: bool = False, extra: tuple[Path, ...] = (),
                 timing: bool = False, log=print) -> Path:
    """Verilator build of ``vfile`` (and ``extra`` sources; toplevel ``top``) for cocotb
    (``cocotb_tools.runner``); returns the build dir. Cached by content; concurrent callers
    (pytest-xdist workers, regress processes) wait on a file lock and then reuse the one build."""
    ensure_path()
    from cocotb_tools.runner import VerilatorControlFile
    args = LINT_OFF + WHEEL_FIX + OPT + (TRACE_FLAGS if waves else []) + (TIMING if timing else [])
    text = vfile.read_text() + "".join(Path(e).read_text() for e in extra)
    vlt_text = PUBLIC_TOP_VLT.format(top=top)
    key = _sha("cocotb", text, vlt_text, args, waves, _verilator_version())[:16]
    bdir = BUILD / "verilator" / f"cocotb-{key}"
    stamp = bdir / ".built"
    with _lock(BUILD / "locks" / f"vl-{key}"):
        if stamp.exists() and (bdir / top).exists():
            return bdir
        t0 = time.time()
        log(f"[build] Verilator (cocotb) build of {vfile.parent.name} ...")
        runner = _runner()
        bdir.mkdir(parents=True, exist_ok=True)
        vlt = bdir.parent / f"{bdir.name}.vlt"
        vlt.write_text(vlt_text)
        # the runner calls make itself, so the wheel fix goes in through MAKEFLAGS
        old = os.environ.get("MAKEFLAGS")
        os.environ["MAKEFLAGS"] = ((old + " ") if old else "") + WHEEL_FIX[1]
        try:
            runner.build(sources=[vfile, *extra, VerilatorControlFile(vlt)], hdl_toplevel=top, build_dir=bdir, build_args=args,
                         waves=waves, timescale=("1ns", "1ns"), always=True,
                         log_file=bdir.parent / f"{bdir.name}.log")
        finally:
            if old is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = old
        stamp.write_text(f"{time.time() - t0:.1f}\n")
        log(f"[build] Verilator (cocotb) build done in {time.time() - t0:.1f} s: {bdir}")
    return bdir


#: Header-only stand-in for <lz4.h> (see the file): the wheel's FST writer needs LZ4, which is
#: often not installed; an empty ``liblz4.a`` satisfies the ``-llz4`` that verilated.mk adds.
SHIM = Path(__file__).with_name("vlshim")


def _fst_shim_args() -> list[str]:
    libdir = BUILD / "vlshim"
    libdir.mkdir(parents=True, exist_ok=True)
    lib = libdir / "liblz4.a"
    if not lib.exists():
        tmp = libdir / f"liblz4.a.tmp{os.getpid()}"
        tmp.write_bytes(b"!<arch>\n")          # an empty ar archive: the shim's functions are inline
        os.replace(tmp, lib)
    return ["-CFLAGS", f"-I{SHIM}", "-LDFLAGS", f"-L{libdir}"]


def build_harness(vfile: Path, *, waves: bool = False, trace_port: bool = False, log=print) -> Path:
    """Plain Verilator C++ build (no Python) of ``vfile`` with ``testbenches/harness.cpp``;
    returns the executable."""
    ensure_path()
    cpp = Path(__file__).with_name("harness.cpp")
    args = LINT_OFF + WHEEL_FIX + OPT + (TRACE_FLAGS if waves else [])
    text = vfile.read_text()
    if trace_port:
        args = args + ["-CFLAGS", "-DHAS_TRACE=1"]
    key = _sha("harness", text, cpp.read_bytes(), args, waves, _verilator_version(),
               (SHIM / "lz4.h").read_bytes() if waves else b"")[:16]
    bdir = BUILD / "verilator" / f"harness-{key}"
    exe = bdir / "Vharness"
    if waves:
        args = args + _fst_shim_args()     # absolute paths: kept out of the cache key
    with _lock(BUILD / "locks" / f"vl-{key}"):
        if (bdir / ".built").exists() and exe.exists():
            return exe
        t0 = time.time()
        log(f"[build] Verilator (C++ harness) build of {vfile.parent.name} ...")
        bdir.mkdir(parents=True, exist_ok=True)
        cmd = ["verilator", "--cc", "--exe", "--build", "-j", str(os.cpu_count() or 2), "-Mdir", str(bdir),
               "--top-module", TOP, "--prefix", "Vtop", "-o", "Vharness",
               ] + args + [str(cpp), str(vfile)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"verilator build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
        (bdir / ".built").write_text(f"{time.time() - t0:.1f}\n")
        log(f"[build] harness build done in {time.time() - t0:.1f} s")
    return exe
