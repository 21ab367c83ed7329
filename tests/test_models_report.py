"""models.report: the accuracy table of the shipped bundles carries each network's chip cost."""
from pathlib import Path

from models import report
from rtl.top import cycles_per_step
from spec.arch import memory_footprint
from spec.bundle import load_bundle

BUNDLES = Path(__file__).resolve().parent.parent / "models" / "bundles"


def test_rows_carry_memory_and_cycles_of_each_bundle():
    paths = [BUNDLES / "listops.npz", BUNDLES / "gsc12.npz"]
    rows = report.rows(paths)
    for p, r in zip(paths, rows, strict=True):
        b = load_bundle(p)
        assert r["cycles"] == cycles_per_step(b.arch)
        assert r["bytes"]["total"] == memory_footprint(b.arch, b.formats)["total_bits"] // 8
    assert rows[0]["cycles"] != rows[1]["cycles"]          # L=2 embedding vs L=4 framed: different networks


def test_table_has_a_cycles_column(capsys):
    assert report.main([str(BUNDLES / "text.npz")]) == 0
    head, rule, row = capsys.readouterr().out.splitlines()[:3]
    cols = [c.strip() for c in head.strip("|").split("|")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cols) == len(cells) == rule.count("|") - 1
    assert int(cells[cols.index("RTL cycles/step")]) == cycles_per_step(load_bundle(BUNDLES / "text.npz").arch)
