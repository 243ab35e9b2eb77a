"""`fab setup` as ONE idempotent bash script: app user, directories, secrets, PostgreSQL, Redis, PM2 or
Docker (the stack's runtime), nginx, cron.

The script depends on nothing but the host (the Pulumi VPS component reuses it verbatim as a startup
script). Each piece checks what is there and changes only the difference, printing `changed: WHAT`;
the last line is `changes: N`, so a second run proves itself a no-op with `changes: 0`. Secrets are
generated on the host, written once (mode 600, owned by the app user) and never echoed.
"""
from __future__ import annotations

import re
import shlex

from shipshape import backup, nginx
from shipshape.config import Runtime, Stack
from shipshape.layout import Layout
from shipshape.remote import chain
from shipshape.runtimes.pm2 import Pm2

PRELUDE = r"""set -euo pipefail
umask 022
CHANGES=0
changed() { echo "changed: $*"; CHANGES=$((CHANGES + 1)); }
# systemd hosts get units; hosts without it (containers, this machine) get daemons started by hand.
SYSTEMD=0; [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && SYSTEMD=1
alive() {  # the pid file names a running process (a killed one answers kill -0 until PID 1 reaps it)
  local pid; [ -f "$1" ] && pid=$(cat "$1") && kill -0 "$pid" 2>/dev/null \
    && ! sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | grep -q '^[ZX]'
}
put_file() {  # put_file PATH MODE OWNER: install stdin at PATH when it differs; true if changed
  local tmp; tmp=$(mktemp "$1.XXXX"); cat > "$tmp"; chmod "$2" "$tmp"; chown "$3" "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  mv "$tmp" "$1"
}
unit() {  # unit NAME USER EXEC...: a simple systemd service, enabled and started
  local name=$1 user=$2; shift 2
  printf '[Unit]\nAfter=network.target\n[Service]\nUser=%s\nExecStart=%s\nRestart=always\n[Install]\nWantedBy=multi-user.target\n' \
    "$user" "$*" | put_file "/etc/systemd/system/$name.service" 644 root:root && systemctl daemon-reload || true
  systemctl is-active -q "$name" || { systemctl enable --now -q "$name"; changed "started $name (systemd)"; }
}
"""

USER = r"""
id -u "$APP_USER" >/dev/null 2>&1 || { useradd --system --create-home --shell /bin/bash "$APP_USER"; changed "user $APP_USER"; }
for dir in {dirs}; do
  [ -d "$dir" ] || { install -d -m 750 -o "$APP_USER" -g "$APP_USER" "$dir"; changed "directory $dir"; }
done
"""

SECRETS = r"""
rand() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
if [ ! -s "$SECRETS" ]; then
  DB_PW=$(rand); REDIS_PW=$(rand)
  { echo "DATABASE_PASSWORD=$DB_PW"; echo "REDIS_PASSWORD=$REDIS_PW"; echo "SECRET_KEY=$(rand)$(rand)"
    echo "DATABASE_URL=postgresql://$DB_USER:$DB_PW@127.0.0.1:$DB_PORT/$DB_NAME"
    echo "REDIS_URL=redis://:$REDIS_PW@127.0.0.1:$REDIS_PORT/0"; } | put_file "$SECRETS" 600 "$APP_USER:$APP_USER"
  changed "generated $SECRETS"
fi
if [ "$(stat -c '%a %U' "$SECRETS")" != "600 $APP_USER" ]; then
  chmod 600 "$SECRETS"; chown "$APP_USER:$APP_USER" "$SECRETS"; changed "secrets file back to mode 600, owner $APP_USER"
fi
DATABASE_PASSWORD=$(sed -n 's/^DATABASE_PASSWORD=//p' "$SECRETS")
REDIS_PASSWORD=$(sed -n 's/^REDIS_PASSWORD=//p' "$SECRETS")
"""

POSTGRES = r"""
PG=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -x "$PG/$NAME" >/dev/null; then
  # UTF-8 explicitly: over SSH the locale is often unset, which would give a SQL_ASCII cluster.
  pg_createcluster "$PG" "$NAME" -p "$DB_PORT" --locale C.UTF-8 >/dev/null
  changed "PostgreSQL $PG cluster $NAME on 127.0.0.1:$DB_PORT"
fi
# pg_createcluster -o and pg_conftool both mis-quote an IP address here: write the line ourselves.
PG_CONF=/etc/postgresql/$PG/$NAME/postgresql.conf
if ! grep -qx "listen_addresses = '127.0.0.1'" "$PG_CONF"; then
  sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "$PG_CONF"; changed "PostgreSQL listens on 127.0.0.1 only"
  pg_ctlcluster "$PG" "$NAME" status >/dev/null 2>&1 && pg_ctlcluster "$PG" "$NAME" restart
fi
if [ "$SYSTEMD" = 1 ]; then
  systemctl is-active -q "postgresql@$PG-$NAME" || { systemctl enable --now -q "postgresql@$PG-$NAME"; changed "started PostgreSQL"; }
elif ! pg_ctlcluster "$PG" "$NAME" status >/dev/null 2>&1; then
  pg_ctlcluster "$PG" "$NAME" start; changed "started PostgreSQL"
fi
psql_q() { runuser -u postgres -- psql -p "$DB_PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ -z "$(psql_q -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" ]; then
  psql_q -c "CREATE ROLE \"$DB_USER\" LOGIN"; changed "database role $DB_USER"
fi
# The password goes through stdin, never argv (ps would show it); re-set quietly to stay in step with secrets.env.
psql_q <<SQL >/dev/null
ALTER ROLE "$DB_USER" PASSWORD '$DATABASE_PASSWORD';
SQL
if [ -z "$(psql_q -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]; then
  runuser -u postgres -- createdb -p "$DB_PORT" -O "$DB_USER" "$DB_NAME"; changed "database $DB_NAME"
fi
"""

REDIS = r"""
REDIS_DIR=$ROOT/redis
[ -d "$REDIS_DIR" ] || { install -d -m 750 -o redis -g redis "$REDIS_DIR"; changed "directory $REDIS_DIR"; }
REDIS_CHANGED=0
printf 'port %s\nbind 127.0.0.1\nprotected-mode yes\nrequirepass %s\ndir %s\npidfile %s/redis.pid\nlogfile %s/redis.log\ndaemonize %s\n' \
  "$REDIS_PORT" "$REDIS_PASSWORD" "$REDIS_DIR" "$REDIS_DIR" "$REDIS_DIR" "$([ "$SYSTEMD" = 1 ] && echo no || echo yes)" \
  | put_file "$REDIS_DIR/redis.conf" 600 redis:redis && { changed "Redis config"; REDIS_CHANGED=1; }
if [ "$SYSTEMD" = 1 ]; then
  unit "$NAME-redis" redis "$(command -v redis-server) $REDIS_DIR/redis.conf"
  [ "$REDIS_CHANGED" = 1 ] && systemctl restart "$NAME-redis"
else
  if alive "$REDIS_DIR/redis.pid" && [ "$REDIS_CHANGED" = 1 ]; then
    kill "$(cat "$REDIS_DIR/redis.pid")"; while alive "$REDIS_DIR/redis.pid"; do sleep 0.1; done
  fi
  alive "$REDIS_DIR/redis.pid" || { runuser -u redis -- redis-server "$REDIS_DIR/redis.conf"; changed "started Redis on 127.0.0.1:$REDIS_PORT"; }
fi
"""

PM2 = r"""
# Each release gets a venv made by the system python (a user's pyenv python is not readable by the app user).
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || { apt-get install -y -q python3-venv >/dev/null; changed "installed python3-venv"; }
# Node runs PM2 itself and the Node apps: Debian's packages where the host has none.
{ command -v node && command -v npm; } >/dev/null || { apt-get install -y -q nodejs npm >/dev/null; changed "installed nodejs, npm"; }
command -v pm2 >/dev/null || { npm install -g --silent pm2@7.0.4 >/dev/null; changed "installed PM2"; }
if [ "$SYSTEMD" = 1 ]; then
  unit "pm2-$APP_USER" "$APP_USER" "/usr/bin/env PM2_HOME=$PM2_HOME $(command -v pm2) resurrect --no-daemon"
elif ! alive "$PM2_HOME/pm2.pid"; then
  # As the app user in PM2_HOME with PM2_KILL_SIGNAL=SIGTERM, exactly as deploys call it (the daemon reads
  # it when it starts: without it `pm2 stop` sends SIGINT, not the contract's SIGTERM).
  # After a reboot or a crash, resurrect starts the processes the last deploy, rollback or restart saved
  # (dump.pm2: both slots; nginx's weights still send all traffic to the live one): no deploy needed.
  if [ ! -f "$PM2_HOME/dump.pm2" ]; then
    {pm2} ping >/dev/null; changed "started PM2 for $APP_USER"
  elif {pm2} resurrect >/dev/null 2>&1; then
    changed "started PM2 for $APP_USER with its saved processes (pm2 resurrect)"
  else
    changed "started PM2 for $APP_USER, but pm2 resurrect failed: the next fab deploy starts the release"
  fi
fi
"""

DOCKER = r"""
# The docker runtime: Debian's engine where the host has none, started by hand where systemd is not
# PID 1. It listens on its Unix socket only, with no bridge and no iptables rules: the slot
# containers use the host's network (shipshape/runtimes/docker.py says why).
command -v dockerd >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null; changed "installed docker.io"; }
# zstd unpacks shipped image layers (without it they travel gzip-compressed: bigger, slower).
command -v zstd >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q zstd >/dev/null; changed "installed zstd"; }
docker_up() { docker -H "unix://$DOCKER_SOCKET" version >/dev/null 2>&1; }
if ! docker_up; then
  if [ "$SYSTEMD" = 1 ] && [ "$DOCKER_SOCKET" = /run/docker.sock ]; then
    systemctl enable --now -q docker
  else
    mkdir -p "$(dirname "$DOCKER_SOCKET")" /run/shipshape-docker
    nohup dockerd --host "unix://$DOCKER_SOCKET" --data-root "$DOCKER_DATA_ROOT" \
      --exec-root "/run/shipshape-docker/$NAME" --pidfile "/run/shipshape-docker/$NAME.pid" \
      --bridge none --iptables=false --ip-masq=false >> "$ROOT/logs/dockerd.log" 2>&1 < /dev/null &
  fi
  for _ in $(seq 150); do docker_up && break; sleep 0.2; done
  docker_up || { echo "dockerd did not answer on $DOCKER_SOCKET within 30 s (log: $ROOT/logs/dockerd.log)" >&2; exit 1; }
  changed "started dockerd on unix://$DOCKER_SOCKET"
fi
"""

NGINX = r"""
# An existing nginx.conf carries the live weights: setup writes only the first one, deploys own it after.
if [ ! -f "$NGINX_CONF" ]; then
  ( {apply} )
  changed "nginx site $NGINX_CONF (started nginx on port $HTTP_PORT)"
elif [ "$SYSTEMD" = 0 ] && ! alive "$NGINX_DIR/nginx.pid"; then
  mkdir -p "$NGINX_DIR/tmp"; {start}; changed "started nginx on port $HTTP_PORT"
fi
"""

CRON = r"""
put_file "$BACKUP_SCRIPT" 700 root:root <<'SHIPSHAPE_BACKUP_SCRIPT' && changed "backup script $BACKUP_SCRIPT"
{backup}
SHIPSHAPE_BACKUP_SCRIPT
[ -n "$CRON_LINE" ] && { echo "$CRON_LINE" | put_file "/etc/cron.d/$NAME" 644 root:root && changed "backup schedule in /etc/cron.d/$NAME"; }
if [ "$SYSTEMD" = 0 ] && command -v cron >/dev/null && ! alive /var/run/crond.pid; then cron; changed "started cron"; fi
echo "changes: $CHANGES"
"""


def variables(stack: Stack, layout: Layout) -> str:
    """The script's inputs as shell assignments (every value quoted)."""
    values = {
        # One host can hold several roots (a test stack beside the real one): name daemons after the root.
        "NAME": re.sub(r"[^a-z0-9_]", "_", layout.root.rstrip("/").rsplit("/", 1)[-1].lower()),
        "APP_USER": stack.host.app_user, "ROOT": layout.root, "SECRETS": layout.secrets_env,
        "DB_USER": stack.database.user, "DB_NAME": stack.database.name, "DB_PORT": stack.database.port,
        "REDIS_PORT": stack.redis.port, "PM2_HOME": layout.pm2_home, "NGINX_DIR": layout.nginx,
        "NGINX_CONF": layout.nginx_conf, "HTTP_PORT": stack.host.http_port,
        "CRON_LINE": backup.cron_line(stack, layout), "BACKUP_SCRIPT": backup.backup_script_path(layout),
        "DOCKER_SOCKET": stack.docker.socket, "DOCKER_DATA_ROOT": stack.docker.data_root,
    }
    return "\n".join(f"{key}={shlex.quote(str(value))}" for key, value in values.items())


def provision_script(stack: Stack, layout: Layout | None = None) -> str:
    """The whole host setup as one bash script; safe to run any number of times."""
    layout = layout or Layout(stack.host.root)
    dirs = " ".join(shlex.quote(d) for d in layout.directories())
    return "\n".join([
        "#!/bin/bash", PRELUDE, variables(stack, layout),
        USER.replace("{dirs}", dirs), SECRETS, POSTGRES, REDIS,
        DOCKER if stack.runtime is Runtime.docker else PM2.replace("{pm2}", shlex.join(Pm2.for_stack(stack, layout).pm2())),
        _nginx_section(stack, layout), CRON.replace("{backup}", backup.backup_script(stack, layout).rstrip()),
    ])


def _nginx_section(stack: Stack, layout: Layout) -> str:
    """First run: shipshape.nginx writes, tests and starts the site (slot a at 100, answering 502 until
    the first deploy); later runs only start nginx if it is down."""
    apply = chain(nginx.apply_commands(layout, nginx.site_config(stack, layout, {"a": 100, "b": 0})))
    start = shlex.join(["nginx", "-c", layout.nginx_conf, "-p", layout.nginx + "/",
                        "-e", layout.nginx + "/error.log"])
    return NGINX.replace("{apply}", apply.text).replace("{start}", start)


def parse_changes(output: str) -> tuple[int, list[str]]:
    """(count, what changed) from the script's output."""
    lines = output.splitlines()
    what = [line[len("changed: "):] for line in lines if line.startswith("changed: ")]
    count = next((int(line.split()[1]) for line in reversed(lines) if line.startswith("changes: ")), len(what))
    return count, what
