"""Ways to break exactly one property of the deployed local stack, and to put it back.

Each `Break` builds its commands from the stack, the layout and the host facts (pure functions of
them); the test runs them through a Runner, runs `pytest checks/`, and restores in a finalizer.
`fails` must fail; `also` (prefixes) are honest consequences that may fail with it (a stopped slot
also takes the site down); every other check must still pass.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Callable

from shipshape.provision import provision_script
from shipshape.remote import Script
from shipshape.runtimes.pm2 import Pm2

HTTP = ("test_http::", "test_access::")


@dataclass(frozen=True)
class Break:
    name: str
    apply: Callable      # (stack, layout, facts) -> list[Command]
    restore: Callable    # (stack, layout, facts) -> list[Command]
    fails: frozenset
    also: tuple = ()
    restarts_app: bool = False
    config: dict = field(default_factory=dict)


def _redis(stack, layout, command: str) -> Script:
    # The password travels from secrets.env through the environment, never argv.
    return Script(f"set -a; . {shlex.quote(layout.secrets_env)}; set +a; "
                  f"REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli --no-auth-warning -p {stack.redis.port} {command}")


def _redis_password(stack, layout, value: str) -> Script:
    return Script(f"set -a; . {shlex.quote(layout.secrets_env)}; set +a; printf 'CONFIG SET requirepass \"%s\"\\n' "
                  f"{value} | REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli --no-auth-warning -p {stack.redis.port}")


def _aside(path: str) -> list:
    return [["cp", "-p", path, path + ".checks-aside"]]


def _back(path: str) -> list:
    return [["mv", "-f", path + ".checks-aside", path]]


def _live(facts) -> str:
    return next(iter(facts.serving_slots()))


def _release_dir(layout, facts) -> str:
    return layout.release(facts.serving_slots()[_live(facts)]["release"])


def _pm2(stack, layout, action: str, facts) -> list:
    runtime = Pm2.for_stack(stack, layout)
    return [runtime.pm2(action, runtime.process_name(_live(facts)))]


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
    Break("disk-floor-above-free", lambda s, l, f: [], lambda s, l, f: [],
          frozenset({"test_host::test_disk_headroom"}), config={"disk_free_min_ratio": 0.999}),
    Break("latency-bound-below-actual", lambda s, l, f: [], lambda s, l, f: [],
          frozenset({"test_http::test_latency"}), config={"max_latency_ms": 1}),
    Break("memory-floor-above-free", lambda s, l, f: [], lambda s, l, f: [],
          frozenset({"test_host::test_memory_headroom"}), config={"memory_free_min_ratio": 0.999}),
]
