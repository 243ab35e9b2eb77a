"""Audit history: the exact append command, parsing, and the DORA figures (table-driven)."""
from __future__ import annotations

import json

import invoke
import pytest

from shipshape import history
from shipshape.history import Entry
from shipshape.layout import Layout
from shipshape.remote import Runner, render
from shipshape.secrets import Sensitive

LAYOUT = Layout("/srv/shipshape")
H = 3600.0
DAY = 86400.0
NOW = 100 * DAY


def entry(started, outcome="success", kind="deploy", minutes=2, committed_hours_before=None):
    return Entry(release=f"r{int(started)}", git_sha="abc", who="alice@laptop", started=started,
                 finished=started + minutes * 60, outcome=outcome, kind=kind,
                 committed=started - committed_hours_before * H if committed_hours_before is not None else None)


def test_record_command_appends_one_line():
    e = Entry("20261121120000-abc", "abc", "alice@laptop", 10.0, 25.5, "failed", step="migrate", reason="boom")
    text = render(history.record_command(LAYOUT, e))
    assert text.startswith("mkdir -p /srv/shipshape/state && printf '%s\\n' '{")
    assert text.endswith("}' >> /srv/shipshape/state/history.jsonl")
    line = json.loads(text.split("'")[3])
    assert line["duration_s"] == 15.5 and line["step"] == "migrate" and line["outcome"] == "failed"


def test_record_masks_secrets_in_the_reason():
    e = Entry("r", "abc", "a@b", 0.0, 1.0, "failed", step="migrate", reason="auth failed for pw hunter2\nline")
    text = render(history.record_command(LAYOUT, e, secrets=[Sensitive("hunter2")]))
    assert "hunter2" not in text and "pw *** line" in text


@pytest.mark.parametrize("field, value", [("outcome", "ok"), ("kind", "hotfix")])
def test_entry_refuses_unknown_values(field, value):
    with pytest.raises(ValueError, match=field):
        Entry(**{"release": "r", "git_sha": "s", "who": "w", "started": 0.0, "finished": 1.0,
                 "outcome": "success", field: value})


def test_parse_skips_torn_and_foreign_lines():
    good = history.to_json(entry(1.0))
    stdout = "\n".join([good, '{"release": "half', "not json", '{"unrelated": 1}', good, ""])
    assert [e.release for e in history.parse(stdout)] == ["r1", "r1"]


def test_parse_round_trips():
    e = Entry("r", "abc", "a@b", 0.0, 1.0, "rolled_back", kind="deploy", step="canary 10%",
              reason="error rate 0.3 > 0.05", committed=-60.0)
    assert history.parse(history.to_json(e)) == [e]


CASES = {
    "nothing yet": ([], dict(deploys=0, lead_time_s=None, deploys_per_day=0.0,
                             change_failure_rate=None, time_to_restore_s=None)),
    "two good deploys": (
        [entry(NOW - 2 * DAY, committed_hours_before=1), entry(NOW - DAY, committed_hours_before=3)],
        # lead times: 1h + 2 min and 3h + 2 min -> median 2h02m
        dict(deploys=2, lead_time_s=2 * H + 120, deploys_per_day=round(2 / 30, 3),
             change_failure_rate=0.0, time_to_restore_s=None)),
    "failed then fixed": (
        [entry(NOW - 3 * H, "failed"), entry(NOW - 2 * H)],
        # failure finished at -3h+2m, next success finished at -2h+2m
        dict(deploys=2, deploys_per_day=round(1 / 30, 3), change_failure_rate=0.5, time_to_restore_s=H)),
    "a streak of failures is one incident": (
        [entry(NOW - 5 * H, "failed"), entry(NOW - 4 * H, "rolled_back"), entry(NOW - 3 * H), entry(NOW - H)],
        dict(deploys=4, change_failure_rate=0.5, time_to_restore_s=2 * H)),
    "manual rollback marks the deploy before it failed": (
        [entry(NOW - 10 * H), entry(NOW - 6 * H), entry(NOW - 5 * H, kind="rollback", minutes=1)],
        # bad deploy finished at -6h+2m; the rollback finished at -5h+1m
        dict(deploys=2, change_failure_rate=0.5, time_to_restore_s=H - 60)),
    "old entries fall outside the window": (
        [entry(NOW - 40 * DAY, "failed"), entry(NOW - DAY)],
        dict(deploys=1, change_failure_rate=0.0, time_to_restore_s=None)),
}


@pytest.mark.parametrize("entries, expected", CASES.values(), ids=CASES.keys())
def test_metrics(entries, expected):
    figures = history.metrics(entries, now=NOW)
    assert {k: getattr(figures, k) for k in expected} == expected


def test_record_and_read_with_a_real_shell(tmp_path):
    layout, runner = Layout(str(tmp_path)), Runner(invoke.Context())
    assert history.parse(runner.run(history.read_command(layout)).stdout) == []
    first, second = entry(1.0), entry(2.0, "failed")
    runner.run(history.record_command(layout, first))
    runner.run(history.record_command(layout, second))
    assert history.parse(runner.run(history.read_command(layout)).stdout) == [first, second]


def test_a_report_round_trips_and_an_entry_without_one_writes_no_key():
    from tests.report.samples import ROLLBACK

    with_report = ROLLBACK()
    assert history.parse(history.to_json(with_report)) == [with_report]
    bare = Entry("r", "abc", "a@b", 0.0, 1.0, "success")
    assert "report" not in json.loads(history.to_json(bare))
    assert history.parse(history.to_json(bare))[0].report is None


def test_lines_written_before_reports_still_parse():
    old = ('{"committed": null, "duration_s": 1.0, "finished": 1.0, "git_sha": "abc", "kind": "deploy", '
           '"outcome": "success", "reason": null, "release": "r", "started": 0.0, "step": null, "who": "a@b"}')
    assert history.parse(old) == [Entry("r", "abc", "a@b", 0.0, 1.0, "success")]
