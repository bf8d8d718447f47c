"""End-to-end runs of `pytest --arena-config ...` through pytester, with tiny models and the loopback judge."""

from __future__ import annotations

import pandas as pd


def test_full_arena_items_report_and_order(arena_project):
    arena_project.write(arena_project.config(questions=4))
    result = arena_project.run("-v")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["*test_battle?q001-tiny-a--vs--tiny-b? PASSED*", "*test_battle?q004-tiny-b--vs--tiny-c? PASSED*"])
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv")
    assert list(report.columns[:2]) == ["Model", "Elo_Rating"]
    assert list(report["Model"]) == ["tiny-a", "tiny-b", "tiny-c"]
