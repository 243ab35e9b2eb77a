"""Ways to break exactly one property of the deployed local stack, and to put it back.

Each `Break` builds its commands from the stack, the layout and the host facts (pure functions of
them); the test runs them through a Runner, runs `pytest checks/`, and restores in a finalizer.
`fails` must fail; `also` (prefixes) are honest consequences that may fail with it (a stopped slot
also takes the site down); every other check must still pass. `shows` is what the site answers once
the break is in effect, waited for before the checks run (a restarted app takes a moment to be back).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Callable

from shipshape import nginx
from shipshape.provision import provision_script
from shipshape.remote import Script
from shipshape.runtimes.pm2 import Pm2

HTTP = ("test_http::", "test_access::")
ASIDE = ".checks-aside"


@dataclass(frozen=True)
class Answer:
    """What the site answers on `path` (through nginx): `status`, with `text` in the body."""

    path: str
    status: int
    text: str = ""


@dataclass(frozen=True)
class Break:
    name: str
    apply: Callable      # (stack, layout, facts) -> list[Command]
    restore: Callable    # (stack, layout, facts) -> list[Command]
    fails: frozenset
    also: tuple = ()
    restarts_app: bool = False
    config: dict = field(default_factory=dict)
    secrets: Callable | None = None  # (stack) -> {KEY: value} overriding the variant's .secrets/local.env
    shows: Callable | None = None    # (stack, facts) -> Answer once the break is in effect


def _redis(stack, layout, command: str) -> Script:
    # The password travels from secrets.env through the environment, never argv.
    return Script(f"set -a; . {shlex.quote(layout.secrets_env)}; set +a; "
                  f"REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli --no-auth-warning -p {stack.redis.port} {command}")


def _redis_password(stack, layout, value: str) -> Script:
    return Script(f"set -a; . {shlex.quote(layout.secrets_env)}; set +a; printf 'CONFIG SET requirepass \"%s\"\\n' "
                  f"{value} | REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli --no-auth-warning -p {stack.redis.port}")


def _aside(path: str) -> list:
    return [["cp", "-p", path, path + ASIDE]]


def _back(path: str) -> list:
    return [["mv", "-f", path + ASIDE, path]]


def _live(facts) -> str:
    return next(iter(facts.serving_slots()))


def _release_dir(layout, facts) -> str:
    return layout.release(facts.serving_slots()[_live(facts)]["release"])


def _pm2(stack, layout, action: str, facts) -> list:
    """`pm2 ACTION` on the live slot; "restart" deletes and starts it again from its ecosystem file, so
    its restart count (test_app_not_crash_looping) starts from zero as after a deploy."""
    runtime = Pm2.for_stack(stack, layout)
    name = runtime.process_name(_live(facts))
    if action == "restart":
        return [runtime.pm2("delete", name), runtime.pm2("start", runtime.ecosystem_path(_live(facts)))]
    return [runtime.pm2(action, name)]


def _crash_loop(stack, layout, facts) -> list:
    """The live slot's app killed (-9) four times, PM2 bringing it back each time: 4 restarts > 3."""
    runtime = Pm2.for_stack(stack, layout)
    pid = shlex.join(runtime.pm2("pid", runtime.process_name(_live(facts))))
    return [Script(f"for n in 1 2 3 4; do old=$({pid}); kill -9 \"$old\"; "
                   f"for t in $(seq 100); do new=$({pid}); [ -n \"$new\" ] && [ \"$new\" != 0 ] && "
                   f"[ \"$new\" != \"$old\" ] && break; sleep 0.1; done; done")]


def _pending_migration(stack, layout, facts) -> list:
    release = facts.serving_slots()[_live(facts)]["release"]
    head = facts["heads"][release][0]
    path = f"{layout.release(release)}/migrations/versions/9999_checks_pending.py"
    text = f'revision = "checks_pending"\ndown_revision = "{head}"\n'
    return [Script(f"printf %s {shlex.quote(text)} > {shlex.quote(path)}")]


GUARD = ('/^async def reports/a\\    if request.state.user["role"] == "viewer": '
         'return JSONResponse({"error": "forbidden"}, status_code=403)')


def _refuse_viewer(stack, layout, facts) -> list:
    """A release whose /api/reports blocks a valid role: the guard becomes reports()' first line."""
    api = f"{_release_dir(layout, facts)}/app/api.py"
    return [*_aside(api), ["sed", "-i", GUARD, api], *_pm2(stack, layout, "restart", facts)]


OPEN_DOOR = ("\n_guarded_reports = reports\n\n\nasync def reports(request):  # checks break: anonymous let in\n"
             "    response = await _guarded_reports(request)\n"
             "    return JSONResponse({'report': 'open'}) if response.status_code == 401 else response\n")


def _let_anonymous_in(stack, layout, facts) -> list:
    """A release whose /api/reports answers anonymous requests 200 (signed-in roles unchanged)."""
    api = f"{_release_dir(layout, facts)}/app/api.py"
    return [*_aside(api), Script(f"printf %s {shlex.quote(OPEN_DOOR)} >> {shlex.quote(api)}"),
            *_pm2(stack, layout, "restart", facts)]


def _stop_postgres(stack, layout, facts) -> list:
    return [Script(f"pg_lsclusters -h | awk '$3 == {stack.database.port} {{print $1, $2}}' | "
                   "xargs -r sh -c 'pg_ctlcluster \"$0\" \"$1\" stop -m fast'")]


def _setup_again(stack, layout, facts) -> list:
    """`fab setup`'s own script starts whatever daemon is down (and changes nothing else)."""
    return [Script(provision_script(stack, layout))]


def _age_backups(layout) -> Script:
    return Script(f"cd {shlex.quote(layout.backups)} && for f in *.dump; do touch -r \"$f\" \"$f.checks-aside\"; "
                  "touch -d '30 hours ago' \"$f\"; done")


def _unage_backups(layout) -> Script:
    return Script(f"cd {shlex.quote(layout.backups)} && for f in *.dump; do touch -r \"$f.checks-aside\" \"$f\"; "
                  "rm -f \"$f.checks-aside\"; done")


def _without_front_page(stack, layout, facts) -> list:
    """A release shipped without its front end: the app answers GET / with 500 (the file is gone)."""
    index = f"{_release_dir(layout, facts)}/app/static/index.html"
    return [*_aside(index), ["rm", "-f", index]]


DEAD_HEALTH = ("\n\nasync def healthz(request):  # checks break: a release whose health endpoint fails\n"
               "    return JSONResponse({'status': 'broken'}, status_code=503)\n")


def _health_fails(stack, layout, facts) -> list:
    """A release whose /healthz answers 503: the redefinition replaces the one main.py routes to."""
    health = f"{_release_dir(layout, facts)}/app/health.py"
    return [*_aside(health), Script(f"printf %s {shlex.quote(DEAD_HEALTH)} >> {shlex.quote(health)}"),
            *_pm2(stack, layout, "restart", facts)]


def _env_file(layout, facts) -> str:
    """Shell: the live release's own env file (shipshape/runtimes/pm2.py: the launcher reads it first), into $f."""
    release = facts.serving_slots()[_live(facts)]["release"]
    return f"f={shlex.quote(layout.release_env(release))}"


def _readiness_fault(stack, layout, facts) -> list:
    """The app's own switch: APP_FAULT_READINESS=1 in the env it starts with, then a restart."""
    # cp -p then append in place: the file keeps its mode and owner (the secrets checks still pass).
    return [Script(f"{_env_file(layout, facts)}; cp -p \"$f\" \"$f{ASIDE}\"; echo APP_FAULT_READINESS=1 >> \"$f\""),
            *_pm2(stack, layout, "restart", facts)]


def _readiness_back(stack, layout, facts) -> list:
    return [Script(f"{_env_file(layout, facts)}; mv -f \"$f{ASIDE}\" \"$f\""), *_pm2(stack, layout, "restart", facts)]


UNSERVED = "checks-unserved-release"


def _ecosystem(stack, layout, facts) -> tuple:
    runtime = Pm2.for_stack(stack, layout)
    return runtime, runtime.process_name(_live(facts)), runtime.ecosystem_path(_live(facts))


def _relaunch(stack, layout, facts, edit: str) -> list:
    """The live slot's process deleted and started again from its PM2 ecosystem file edited by `edit`
    (a sed expression): `pm2 restart` would keep the old definition."""
    runtime, name, path = _ecosystem(stack, layout, facts)
    return [*_aside(path), ["sed", "-i", edit, path], runtime.pm2("delete", name), runtime.pm2("start", path)]


def _report_other_release(stack, layout, facts) -> list:
    """The live process runs the serving code but under another RELEASE_ID (what /version reports);
    RELEASE_ID comes from the ecosystem file and wins over the env file."""
    release = facts.serving_slots()[_live(facts)]["release"]
    return _relaunch(stack, layout, facts, f's/"RELEASE_ID": "{release}"/"RELEASE_ID": "{UNSERVED}"/')


def _listen_on_all_interfaces(stack, layout, facts) -> list:
    """The live process started with `--host 0.0.0.0` (a start command that binds every interface)."""
    return _relaunch(stack, layout, facts, r's/--host 127\.0\.0\.1 /--host 0.0.0.0 /')


def _relaunch_as_deployed(stack, layout, facts) -> list:
    runtime, name, path = _ecosystem(stack, layout, facts)
    return [*_back(path), runtime.pm2("delete", name), runtime.pm2("start", path)]


def _drop_frame_options(stack, layout, facts) -> list:
    """The live config without its X-Frame-Options line (weights untouched), reloaded gracefully."""
    conf = layout.nginx_conf
    return [*_aside(conf), ["sed", "-i", "/add_header X-Frame-Options /d", conf],
            nginx.reload_command(layout)]


def _postgres(stack, sql: str) -> list:
    """Run SQL as the postgres superuser on the stack's cluster, then restart that cluster."""
    # cd /: runuser keeps root's (0700) cwd and psql would warn about it.
    psql = shlex.join(["runuser", "-u", "postgres", "--", "psql", "-p", str(stack.database.port),
                       "-v", "ON_ERROR_STOP=1", "-qc", sql])
    restart = (f"pg_lsclusters -h | awk '$3 == {stack.database.port} {{print $1, $2}}' | "
               "xargs -r sh -c 'pg_ctlcluster \"$0\" \"$1\" restart'")
    return [Script(f"cd / && {psql}"), Script(restart)]


def _wrong_password(role: str) -> Callable:
    """The variant's secrets give `role`'s check account a password the app does not know."""
    return lambda stack: {stack.checks.accounts[role].password.name: "not-the-checks-password"}


BREAKS = [
    Break("redis-password-dropped", lambda s, l, f: [_redis_password(s, l, "''")],
          lambda s, l, f: [_redis_password(s, l, '"$REDIS_PASSWORD"')],
          frozenset({"test_data::test_redis_refuses_anonymous"})),
    Break("redis-on-0.0.0.0", lambda s, l, f: [_redis(s, l, "CONFIG SET bind 0.0.0.0")],
          lambda s, l, f: [_redis(s, l, "CONFIG SET bind 127.0.0.1")],
          frozenset({"test_data::test_redis_not_public"})),
    Break("secrets-file-world-readable", lambda s, l, f: [["chmod", "644", l.secrets_env]],
          lambda s, l, f: [["chmod", "600", l.secrets_env]],
          frozenset({"test_host::test_secrets_file_mode"})),
    Break("secrets-file-owned-by-root", lambda s, l, f: [["chown", "root", l.secrets_env]],
          lambda s, l, f: [["chown", s.host.app_user, l.secrets_env]],
          frozenset({"test_host::test_secrets_file_owner"})),
    Break("backup-30-hours-old", lambda s, l, f: [_age_backups(l)], lambda s, l, f: [_unage_backups(l)],
          frozenset({"test_data::test_latest_backup_recent"})),
    Break("migration-pending", _pending_migration,
          lambda s, l, f: [["rm", "-f", f"{_release_dir(l, f)}/migrations/versions/9999_checks_pending.py"]],
          frozenset({"test_data::test_migrations_at_head"})),
    Break("nginx-config-invalid",
          lambda s, l, f: [*_aside(l.nginx_conf), Script(f"echo 'this is not nginx;' >> {shlex.quote(l.nginx_conf)}")],
          lambda s, l, f: _back(l.nginx_conf),
          frozenset({"test_app_host::test_nginx_config_valid"})),
    Break("nginx-weights-drifted",
          lambda s, l, f: [*_aside(l.nginx_conf), ["sed", "-i", "-E", r"s/weight=[0-9]+/weight=7/", l.nginx_conf]],
          lambda s, l, f: _back(l.nginx_conf),
          frozenset({"test_app_host::test_nginx_weights_match_state"})),
    Break("module-refuses-viewer", _refuse_viewer,
          lambda s, l, f: [*_back(f"{_release_dir(l, f)}/app/api.py"), *_pm2(s, l, "restart", f)],
          frozenset({"test_access::test_module_open_to_role[viewer-/api/reports]"}), restarts_app=True),
    Break("module-lets-anonymous-in", _let_anonymous_in,
          lambda s, l, f: [*_back(f"{_release_dir(l, f)}/app/api.py"), *_pm2(s, l, "restart", f)],
          frozenset({"test_access::test_module_refuses_anonymous[/api/reports]"}), restarts_app=True),
    Break("redis-stopped", lambda s, l, f: [Script(_redis(s, l, "SHUTDOWN NOSAVE").text + " || true")],
          _setup_again, frozenset({"test_data::test_redis_answers"}),
          also=(*HTTP, "test_data::test_redis_"), restarts_app=True),
    Break("postgres-stopped", _stop_postgres, _setup_again, frozenset({"test_data::test_postgres_answers"}),
          also=(*HTTP, "test_data::test_postgres_", "test_data::test_migrations_at_head"), restarts_app=True),
    Break("serving-slot-stopped", lambda s, l, f: _pm2(s, l, "stop", f),
          lambda s, l, f: _pm2(s, l, "restart", f),
          frozenset({"test_app_host::test_app_processes_online", "test_app_host::test_serving_port_loopback_only"}),
          also=HTTP, restarts_app=True),
    Break("serving-slot-crash-looping", _crash_loop, lambda s, l, f: _pm2(s, l, "restart", f),
          frozenset({"test_app_host::test_app_not_crash_looping"}), also=HTTP, restarts_app=True),
    Break("disk-floor-above-free", lambda s, l, f: [], lambda s, l, f: [],
          frozenset({"test_host::test_disk_headroom"}), config={"disk_free_min_ratio": 0.999}),
    Break("latency-bound-below-actual", lambda s, l, f: [], lambda s, l, f: [],
          frozenset({"test_http::test_latency"}), config={"max_latency_ms": 1}),
    Break("memory-floor-above-free", lambda s, l, f: [], lambda s, l, f: [],
          frozenset({"test_host::test_memory_headroom"}), config={"memory_free_min_ratio": 0.999}),
    Break("front-page-missing", _without_front_page,
          lambda s, l, f: _back(f"{_release_dir(l, f)}/app/static/index.html"),
          frozenset({"test_http::test_site_reachable"})),
    # The latency check samples /healthz too: it fails with it, as it must.
    Break("health-endpoint-fails", _health_fails,
          lambda s, l, f: [*_back(f"{_release_dir(l, f)}/app/health.py"), *_pm2(s, l, "restart", f)],
          frozenset({"test_http::test_health"}), also=("test_http::test_latency",), restarts_app=True,
          shows=lambda s, f: Answer(s.app.health_path, 503)),
    Break("readiness-fault", _readiness_fault, _readiness_back, frozenset({"test_http::test_readiness"}),
          restarts_app=True, shows=lambda s, f: Answer(s.app.readiness_path, 503, "fault: APP_FAULT_READINESS=1")),
    Break("version-reports-unserved-release", _report_other_release, _relaunch_as_deployed,
          frozenset({"test_http::test_version_is_serving_release"}), restarts_app=True,
          shows=lambda s, f: Answer(s.app.version_path, 200, UNSERVED)),
    # A viewer that cannot sign in has no session: its module checks skip (see `signed_in`).
    Break("viewer-password-wrong", lambda s, l, f: [], lambda s, l, f: [],
          frozenset({"test_access::test_login[viewer]"}), also=("test_access::test_module_open_to_role[viewer-",),
          secrets=_wrong_password("viewer")),
    Break("security-header-dropped", _drop_frame_options, lambda s, l, f: [*_back(l.nginx_conf), nginx.reload_command(l)],
          frozenset({"test_http::test_security_headers"})),
    Break("postgres-on-0.0.0.0", lambda s, l, f: _postgres(s, "ALTER SYSTEM SET listen_addresses = '0.0.0.0'"),
          lambda s, l, f: _postgres(s, "ALTER SYSTEM RESET listen_addresses"),
          frozenset({"test_data::test_postgres_not_public"}), restarts_app=True),
    Break("serving-slot-on-0.0.0.0", _listen_on_all_interfaces, _relaunch_as_deployed,
          frozenset({"test_app_host::test_serving_port_loopback_only"}), restarts_app=True),
]
