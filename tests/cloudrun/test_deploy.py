"""`fab deploy / rollback / status / releases --stack` on Cloud Run, end to end against the fake.

The fake (tests/support/fake_gcp) runs each revision as a real container behind a router that splits
requests by the traffic list; the canary gate reads what that router counted through the real
Monitoring client. Tests run in order on one module stack, each leaving a good release serving.
"""
from __future__ import annotations

import json

import pytest
from google.api_core.exceptions import Conflict

from shipshape.targets import cloudrun_state as cr
from tests.cloudrun.conftest import APP, fab_env, run_fab
from tests.e2e.conftest import Load

pytestmark = [pytest.mark.docker]


def history(stack) -> list[dict]:
    return [json.loads(line) for line in stack.service().annotations.get(cr.HISTORY, "").splitlines() if line]


def served_sha(stack) -> str:
    status, body = stack.get("/version")
    assert status == 200, body
    return json.loads(body)["git_sha"]


def only_revision(stack) -> str:
    serving = stack.serving()
    assert list(serving.values()) == [100], serving
    return next(iter(serving))


def test_first_release_migrates_tags_canaries_and_promotes(cloudrun_stack):
    stack = cloudrun_stack
    before = only_revision(stack)
    sha = stack.commit("cloudrun: first release")
    with Load("/version", get=stack.get) as load:
        done = stack.fab("deploy")
    out = done.stdout + done.stderr
    assert "first fab release on this service" in out and before in out
    assert "execution" in out and "succeeded" in out          # the migrate job ran with the new image
    assert "50%:" in out and "100%:" in out                   # the canary steps, read from Monitoring
    revision = only_revision(stack)
    assert revision.startswith(f"{APP}-") and sha[:12] in revision
    assert served_sha(stack) == sha
    assert all(status == 200 for status, _ in load.results), [s for s, _ in load.results if s != 200]
    assert stack.job_image().endswith(":" + revision.split(f"{APP}-", 1)[1])  # the release's image ran the job
    assert history(stack)[-1]["outcome"] == "success" and history(stack)[-1]["git_sha"] == sha
    assert cr.CANDIDATE_TAG not in {t.tag for t in stack.service().traffic}
    assert cr.LOCK not in stack.service().annotations


def test_a_release_failing_requests_is_rolled_back_by_the_gate(cloudrun_stack):
    stack = cloudrun_stack
    before, revision = served_sha(stack), only_revision(stack)
    stack.commit("cloudrun: bad release", {"shipshape.env": "APP_FAULT_ERROR_RATE=0.6\n"})
    with Load("/api/notes", get=stack.get):
        failed = stack.fab("deploy", check=False)
    assert failed.returncode == 1 and "failed at step canary" in failed.stderr and "error rate" in failed.stderr
    assert only_revision(stack) == revision and served_sha(stack) == before
    assert history(stack)[-1]["outcome"] == "rolled_back"
    stack.commit("cloudrun: good again", remove=("shipshape.env",))


def test_a_failing_migration_stops_the_deploy_with_traffic_untouched(cloudrun_stack):
    stack = cloudrun_stack
    revision, revisions = only_revision(stack), stack.revisions()
    bad = ('revision = "0099_broken"\ndown_revision = "0002_project_status"\nfrom alembic import op\n'
           'def upgrade():\n    op.execute("SELECT 1/0")\n')
    stack.commit("cloudrun: broken migration", {"migrations/versions/0099_broken.py": bad})
    failed = stack.fab("deploy", check=False)
    assert failed.returncode == 1 and "failed at step migrate" in failed.stderr, failed.stderr
    assert only_revision(stack) == revision and stack.revisions() == revisions
    assert history(stack)[-1]["outcome"] == "failed" and history(stack)[-1]["step"] == "migrate"
    stack.commit("cloudrun: fix migration", remove=("migrations/versions/0099_broken.py",))


def test_a_concurrent_traffic_change_is_detected_never_overwritten(cloudrun_stack):
    stack = cloudrun_stack
    live = only_revision(stack)
    stack.commit("cloudrun: raced release")
    proc = stack.popen("deploy", "--stack", "crtest")
    seen = ""
    for line in proc.stdout:
        seen += line
        if "50%:" in line or "canary (steps" in line:
            break
    # Someone else (the console, gcloud) puts all traffic back on the live revision meanwhile.
    for _ in range(20):  # read-modify-write, as any careful client does: fab may write in between
        service = stack.service()
        service.traffic = cr.traffic({live: 100})
        try:
            stack.services.update_service(service=service).result(timeout=120)
            break
        except Conflict:
            continue
    seen += proc.stdout.read()
    assert proc.wait(timeout=120) == 1, seen
    assert "changed since this run read it" in seen and "their change is kept" in seen
    assert stack.serving() == {live: 100}


def test_rollback_and_rollback_to(cloudrun_stack):
    stack = cloudrun_stack
    first = only_revision(stack)
    sha = stack.commit("cloudrun: second release")
    stack.fab("deploy")
    second = only_revision(stack)
    assert second != first and served_sha(stack) == sha
    stack.fab("rollback")
    assert only_revision(stack) == first
    release = next(e["release"] for e in reversed(history(stack)) if e["git_sha"] == sha)
    stack.fab("rollback", "--to", release)
    assert only_revision(stack) == second and served_sha(stack) == sha
    kinds = [e["kind"] for e in history(stack)[-2:]]
    assert kinds == ["rollback", "rollback"]


def test_status_and_releases_show_revisions_traffic_and_history(cloudrun_stack):
    stack = cloudrun_stack
    status = stack.fab("status").stdout
    live = only_revision(stack)
    assert f"* {live}" in status and "traffic 100%" in status and "lock: free" in status
    releases = stack.fab("releases").stdout
    assert "rollback" in releases and "lead time" in releases and "change failure rate" in releases


@pytest.mark.parametrize("case", ["missing", "refused"])
def test_bad_credentials_give_one_clear_line(cloudrun_stack, tmp_path, case):
    stack = cloudrun_stack
    access = stack.fake.env(tmp_path, valid=False)
    if case == "missing":
        access["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "absent.json")
    env = fab_env(stack, **access, HOME=str(tmp_path))
    for task in ("deploy", "status", "rollback"):
        proc = run_fab(stack, task, env=env)
        assert proc.returncode != 0, proc.stdout
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "gcloud auth application-default login" in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
