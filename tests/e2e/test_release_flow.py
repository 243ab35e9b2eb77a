"""The release flow end to end on the real local stack. Tests run in order and build on each other
(one host): setup, deploy, second version, rollback, faults, lock, kill, retention, secrets."""
from __future__ import annotations

import json
import re
import time

import pytest

from tests.e2e.conftest import E2E, ROOT, Load, deploy_killed_at, host_sh, http, wait_for

pytestmark = pytest.mark.timeout(600)


def served_sha() -> str:
    status, body = http("/version")
    assert status == 200, body
    return json.loads(body)["git_sha"]


def slots() -> dict:
    return json.loads(host_sh(f"cat {ROOT}/state/slots.json"))


def history() -> list[dict]:
    return [json.loads(line) for line in host_sh(f"cat {ROOT}/state/history.jsonl").splitlines()]


def psql(sql: str) -> str:
    return host_sh(f"cd / && runuser -u postgres -- psql -p {E2E['db_port']} -d app -tAc \"{sql}\"").strip()


def test_setup_twice_changes_nothing_the_second_time(local_stack):
    assert "change(s)" in local_stack.first_setup.stderr or "nothing to change" in local_stack.first_setup.stderr
    second = local_stack.fab("setup")
    assert "nothing to change" in second.stderr, second.stderr
    assert host_sh(f"stat -c '%a %U' {ROOT}/shared/secrets.env").strip() == f"600 {E2E['app_user']}"


def test_build_is_once_per_sha_and_refuses_dirty(local_stack):
    local_stack.fab("build")
    again = local_stack.fab("build")
    assert "already built (no-op)" in again.stderr
    (local_stack.clone / "examples/app/scratch.txt").write_text("x")
    refused = local_stack.fab("build", check=False)
    assert refused.returncode != 0 and "scratch.txt" in refused.stderr
    dirty = local_stack.fab("build", "--allow-dirty")
    assert "-dirty-" in dirty.stderr
    (local_stack.clone / "examples/app/scratch.txt").unlink()


def test_deploy_serves_the_app_through_nginx(local_stack):
    sha = local_stack.commit("e2e: v1")
    local_stack.fab("deploy")
    assert served_sha() == sha
    assert http("/readyz")[0] == 200
    assert slots()["slots"][slots()["live"]]["git_sha"] == sha
    again = local_stack.fab("deploy")  # same sha already live: nothing to do
    assert "nothing to do" in again.stderr


def crash_then_setup(local_stack) -> None:
    """Every process of the app user dies (PM2 and both slots, as in a reboot), then `fab setup` alone."""
    host_sh(f"pkill -KILL -u {E2E['app_user']} || true")
    wait_for(lambda: http("/readyz")[0] == 502, timeout=10)
    out = local_stack.fab("setup")
    assert "with its saved processes (pm2 resurrect)" in out.stderr
    wait_for(lambda: http("/readyz")[0] == 200, timeout=30)  # the app's own start-up


def test_after_a_crash_setup_alone_brings_the_same_release_back(local_stack):
    local_stack.fab("deploy")  # HEAD serves (usually already: nothing to do)
    sha = served_sha()
    crash_then_setup(local_stack)
    assert served_sha() == sha
    assert "nothing to do" in local_stack.fab("deploy").stderr  # its process is online again: no deploy needed


def test_second_version_canary_without_errors_then_rollback(local_stack):
    v1 = served_sha()
    v2 = local_stack.commit("e2e: v2", {"VERSION": "2\n"})
    with Load() as load:
        out = local_stack.fab("deploy")
    assert served_sha() == v2
    assert "10%:" in out.stderr and "50%:" in out.stderr
    assert all(status == 200 for status, _ in load.results), {s for s, _ in load.results}
    assert load.shas() == {v1, v2}  # both served during the canary, nothing else
    rolled = local_stack.fab("rollback")
    assert served_sha() == v1
    assert "not warm" not in rolled.stderr  # the old slot was warm: a weight flip only
    v2_release = next(e["release"] for e in reversed(history()) if e["git_sha"] == v2)
    local_stack.fab("rollback", "--to", v2_release)
    assert served_sha() == v2


def test_after_a_rollback_a_crash_and_setup_bring_the_rolled_back_release_back(local_stack):
    before = served_sha()
    local_stack.fab("rollback")
    back = served_sha()
    assert back != before
    crash_then_setup(local_stack)
    assert served_sha() == back
    again = local_stack.fab("rollback")  # the idle slot came back too, warm: a weight flip only
    assert "not warm" not in again.stderr and served_sha() == before


def test_failing_migration_aborts_before_traffic_moves(local_stack):
    before_sha, users = served_sha(), psql("SELECT count(*) FROM users")
    revision = psql("SELECT version_num FROM alembic_version")
    bad = ('revision = "0099_broken"\ndown_revision = "0002_project_status"\nfrom alembic import op\n'
           'def upgrade():\n    op.execute("CREATE TABLE e2e_partial (id int)")\n'
           '    op.execute("INSERT INTO users SELECT * FROM users")\n    op.execute("SELECT 1/0")\n')
    local_stack.commit("e2e: broken migration", {"migrations/versions/0099_broken.py": bad})
    failed = local_stack.fab("deploy", check=False)
    assert failed.returncode != 0 and "failed at step migrate" in failed.stderr
    assert served_sha() == before_sha
    assert psql("SELECT count(*) FROM users") == users
    assert psql("SELECT version_num FROM alembic_version") == revision
    assert psql("SELECT to_regclass('e2e_partial')") == ""
    local_stack.commit("e2e: fix migration", remove=("migrations/versions/0099_broken.py",))


def test_release_that_never_gets_ready_gets_no_traffic(local_stack):
    before = served_sha()
    local_stack.commit("e2e: never ready", {"shipshape.env": "APP_FAULT_READINESS=1\n"})
    with Load() as load:
        failed = local_stack.fab("deploy", check=False)
    assert failed.returncode != 0 and "failed at step start" in failed.stderr, failed.stderr
    assert load.shas() == {before}
    assert served_sha() == before


def test_bad_release_is_rolled_back_by_the_canary_gate(local_stack):
    before = served_sha()
    local_stack.commit("e2e: bad release", {"shipshape.env": "APP_FAULT_ERROR_RATE=0.6\n"})
    with Load("/api/notes"):  # faults answer 500 on everything but health/readiness/version
        failed = local_stack.fab("deploy", check=False)
    assert failed.returncode != 0 and "failed at step canary" in failed.stderr, failed.stderr
    assert "error rate" in failed.stderr
    assert served_sha() == before
    assert history()[-1]["outcome"] == "rolled_back"
    assert slots()["slots"][slots()["live"]]["git_sha"] == before
    local_stack.commit("e2e: good again", remove=("shipshape.env",))


def test_a_lock_file_from_before_the_holder_blocks_until_unlocked_or_hours_old(local_stack):
    def plant(age: int):
        owner = json.dumps({"who": "alice@elsewhere", "pid": 4242, "task": "deploy", "started": int(time.time()) - age})
        host_sh(f"printf '%s\\n' '{owner}' > {ROOT}/state/lock")
    plant(60)
    refused = local_stack.fab("deploy", check=False)
    assert refused.returncode == 3 and "alice@elsewhere" in refused.stderr, refused.stderr
    local_stack.fab("unlock", "--force")
    local_stack.commit("e2e: after a forced unlock")
    local_stack.fab("deploy")
    plant(9000)  # older than any deploy: the next one takes over on its own
    local_stack.commit("e2e: after an abandoned lock")
    done = local_stack.fab("deploy")
    out = done.stdout + done.stderr
    assert "found an interrupted deploy by alice@elsewhere" in out, out
    assert "alice" not in host_sh(f"cat {ROOT}/state/lock 2>/dev/null || true")


def test_two_deploys_at_once_the_second_is_refused(local_stack):
    local_stack.commit("e2e: concurrent")
    first = local_stack.popen("deploy")
    wait_for(lambda: host_sh(f"cat {ROOT}/state/lock 2>/dev/null || true").strip(), timeout=30, interval=0.05)
    second = local_stack.fab("deploy", check=False)
    out, _ = first.communicate(timeout=240)
    local_stack.outputs.append(out)
    assert first.returncode == 0, out
    assert second.returncode == 3 and "root@" in second.stderr, second.stderr  # names the owner


STEPS = ["upload", "prepare", "backup", "migrate", "start", "canary", "promote"]


@pytest.mark.parametrize("marker", ["==> prepare", "==> migrate", "==> start", "==> canary"])
def test_sigkill_mid_deploy_leaves_the_site_serving_and_the_next_deploy_proceeds(local_stack, marker):
    before = served_sha()
    local_stack.commit(f"e2e: killed at {marker}")
    deploy_killed_at(local_stack, marker)
    assert http("/healthz")[0] == 200 and served_sha() in {before, *local_stack_shas(local_stack)}
    shown = local_stack.fab("lock").stdout  # `fab lock` prints to stdout
    step = re.search(r", at (\w+)\) for ", shown).group(1)  # the step the lock last noted: the marker's or later
    assert STEPS.index(step) >= STEPS.index(marker.split()[-1]) and "was interrupted" in shown, shown
    done = local_stack.fab("deploy")  # no `fab unlock`: the lock died with its deploy
    out = done.stdout + done.stderr
    assert "found an interrupted deploy by root@" in out and f"at step {step}" in out, out
    if step in ("start", "canary"):
        assert "its candidate in slot" in out, out
    assert http("/readyz")[0] == 200 and served_sha() == head(local_stack)
    interrupted, shipped = history()[-2:]
    assert (interrupted["step"], interrupted["reason"].split(":")[0], shipped["outcome"]) == \
        (step, "interrupted", "success"), (interrupted, shipped)


def head(local_stack) -> str:
    return host_sh(f"git -C {local_stack.clone} rev-parse HEAD").strip()


def local_stack_shas(local_stack) -> set:
    out = host_sh(f"git -C {local_stack.clone} log --format=%H -n 3")
    return set(out.split())


def test_retention_keeps_five_and_never_the_serving_release(local_stack):
    for n in range(3):
        local_stack.commit(f"e2e: retention {n}")
        local_stack.fab("deploy")
    kept = host_sh(f"ls {ROOT}/releases").split()
    assert len(kept) == 5, kept
    state = slots()
    for slot in ("a", "b"):
        if state["slots"][slot]:
            assert state["slots"][slot]["release"] in kept


def test_restart_is_zero_downtime(local_stack):
    sha = served_sha()
    with Load() as load:
        local_stack.fab("restart")
    assert all(status == 200 for status, _ in load.results)
    assert served_sha() == sha


def test_status_shows_slots_weights_and_lock(local_stack):
    out = local_stack.fab("status").stdout
    assert "weight 100" in out and "lock: free" in out


def test_no_secret_in_any_output_log_or_history(local_stack):
    values = [line.partition("=")[2] for line in host_sh(f"cat {ROOT}/shared/secrets.env").splitlines()]
    values += [line.partition("=")[2] for line in (local_stack.root / ".secrets/local.env").read_text().splitlines()]
    values = [v for v in values if len(v) >= 8]
    assert len(values) >= 8
    files = host_sh(f"cat {ROOT}/state/history.jsonl {ROOT}/logs/* {ROOT}/nginx/*.log {ROOT}/pm2/logs/* "
                    f"{ROOT}/pm2/*.json 2>/dev/null || true")
    text = "\n".join(local_stack.outputs) + files
    assert len(local_stack.outputs) > 10
    leaked = [v[:4] + "..." for v in values if v in text]
    assert not leaked, f"secrets found in outputs/logs: {leaked}"
