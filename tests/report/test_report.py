"""The deploy report (shipshape/report.py): building, downsampling, Markdown and the PNG chart. Pure: no host."""
from __future__ import annotations

import json

import pytest

from shipshape import report
from shipshape.history import to_json
from tests.report.samples import ROLLBACK, SUCCESS, entry, step, timeline


@pytest.mark.parametrize("reads, limit, expected", [
    (0, 30, 0), (1, 30, 1), (30, 30, 30), (31, 30, 30), (1000, 30, 30), (1000, 5, 5), (7, 3, 3)])
def test_downsample_keeps_at_most_limit_reads_with_the_first_and_last(reads, limit, expected):
    rows = timeline(reads)
    kept = report.downsample(rows, limit)
    assert len(kept) == expected
    if rows:
        assert kept[0] == [0.0, *rows[0][1:]] and kept[-1] == [round(rows[-1][0], 2), *rows[-1][1:]]
        assert [r[0] for r in kept] == sorted(r[0] for r in kept)


def test_downsample_rounds_seconds_and_makes_counts_integers():
    assert report.downsample([(1.23456, 3.0, 0, 0, 9, 1, 0)]) == [[1.23, 3, 0, 0, 9, 1, 0]]


def test_a_step_record_has_the_verdict_the_tallies_and_its_start():
    result = step("advance", 300)
    record = report.canary_step(10, result, 5.5, 9.123)
    assert record["percent"] == 10 and record["action"] == "advance" and record["probes"] == 3
    assert record["start"] == 5.5 and record["seconds"] == 3.62 and record["elapsed"] == 74.75
    assert record["candidate"] == {"requests": 2990, "errors": 0, "slow": 0}
    assert len(record["timeline"]) == report.POINTS


def test_steps_start_where_the_last_ended_or_where_the_canary_began():
    phases = [report.phase("start", 1.0, 2.0, "ok"), report.phase("canary", 3.0)]
    assert report.step_start(phases, []) == 3.0
    assert report.step_start(phases, [{"start": 3.0, "seconds": 2.5}]) == 5.5


def test_a_report_stays_a_few_kb_in_its_history_line():
    line = to_json(SUCCESS())
    assert 500 < len(line.encode()) < 6000, len(line)
    assert json.loads(line)["report"]["steps"][2]["percent"] == 100


def test_the_chart_series_has_one_segment_per_step_over_the_whole_canary():
    data = report.series(SUCCESS().report)
    assert [p for _, p in data["steps"]] == [10, 50, 100] and data["steps"][0] == (0.0, 10)
    assert data["steps"][1][0] == 3.0 and data["decisions"][0] == (2.0, "advance")
    xs = [x for segment in data["segments"] for x in segment["x"]]
    assert xs == sorted(xs) and [len(s["x"]) for s in data["segments"]] == [9, 5, report.POINTS]
    first, last = data["segments"][0], data["segments"][-1]
    assert first["candidate"]["error_pct"][0] is None and first["candidate"]["requests"][-1] == 80
    assert last["live"]["error_pct"][-1] == round(100 * 4 / (1080 + 90 * 199), 2)


def test_markdown_of_a_success_names_each_phase_and_step():
    text = report.markdown(SUCCESS())
    assert text.startswith("# Deploy 20261121120000-abcdef123456\n")
    assert "`abcdef1234567890`" in text and "alice@laptop" in text and "**success**" in text
    assert "![canary chart](20261121120000-abcdef123456.png)" in text
    for name in ("upload", "prepare", "backup", "migrate", "start", "canary"):
        assert f"| {name} | " in text
    assert "| promote | " in text and "| - | running |" in text  # the history line is written during it
    assert "| 10% | advance | 2.00 | 80 | 0.0% | 0.0% | 720 | 0.1% | 3 | not worse |" in text
    assert "| 50% | advance |" in text and "| 100% | advance |" in text


def test_markdown_of_a_rollback_shows_the_decision_and_the_reason():
    text = report.markdown(ROLLBACK())
    assert "**rolled_back at canary**" in text and "- reason: at 50%: errors 30.0% worse" in text
    assert "| canary | 5.50 | 9.00 | failed |" in text
    assert "| 50% | rollback | 1.25 |" in text and "errors 30.0% of 130 \\| worse |" in text  # | escaped
    assert "| 100% |" not in text


def test_markdown_without_a_canary_says_so():
    text = report.markdown(entry("failed", [], reason="boom", step_name="migrate"))
    assert "No canary step ran." in text and "**failed at migrate**" in text


@pytest.mark.parametrize("make", [SUCCESS, ROLLBACK, lambda: entry("failed", [], "boom", "migrate")],
                         ids=["success", "rollback", "no-canary"])
def test_png_is_a_real_chart(make, tmp_path):
    from matplotlib import image

    md, png = report.write(make(), tmp_path / "out")
    assert md.name == "20261121120000-abcdef123456.md" and md.read_text() == report.markdown(make())
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert image.imread(png).shape[:2] == (650, 1000)  # 10 x 6.5 in at 100 dpi
