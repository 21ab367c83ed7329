"""analysis.settings: small unless full is asked for; overrides; figures of the small setting stay out of git."""
from __future__ import annotations

import pytest

from analysis import settings


def test_setting_from_env(monkeypatch):
    for v in ("MGRADE_NB_SETTING", "MGRADE_NB_EXAMPLES", "MGRADE_NB_SEEDS", "MGRADE_NB_POINTS",
              "MGRADE_NB_MAX_STEPS", "MGRADE_FIGURE_DIR"):
        monkeypatch.delenv(v, raising=False)
    assert settings.current() is settings.SMALL
    monkeypatch.setenv("MGRADE_NB_SETTING", "full")
    s = settings.current()
    assert s is settings.FULL and len(s.seeds) >= 3 and s.examples("listops") >= 500 and s.examples("gsc12") is None
    assert s.max_steps is None and s.points is None and s.split("gsc12") == "test" and s.split("listops") == "test"
    monkeypatch.setenv("MGRADE_NB_EXAMPLES", "listops=500,gsc12=all")
    monkeypatch.setenv("MGRADE_NB_SEEDS", "3")
    monkeypatch.setenv("MGRADE_NB_POINTS", "4")
    s = settings.current()
    assert (s.examples("listops"), s.examples("gsc12"), s.seeds, s.points) == (500, None, (0, 1, 2), 4)
    monkeypatch.setenv("MGRADE_NB_SETTING", "huge")
    with pytest.raises(ValueError):
        settings.current()


def test_small_figures_do_not_touch_committed_ones(monkeypatch):
    monkeypatch.delenv("MGRADE_FIGURE_DIR", raising=False)
    assert settings.figure_dir(settings.SMALL) != settings.REPO / "notebooks" / "figures"
    assert ".cache" in settings.figure_dir(settings.SMALL).parts
    assert settings.figure_dir(settings.FULL) == settings.REPO / "notebooks" / "figures"
