#!/usr/bin/env bash
# Install everything shipshape and its tests need, from nothing; safe to run again (skips what is there).
#   apt: nginx, PostgreSQL 15, Redis 7, OpenSSH, Prometheus tools, load generators, Docker, debootstrap
#   npm: PM2 (pinned)          python: .venv with the pinned project (+ sample app and dev extras)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(nginx postgresql redis-server openssh-server openssh-client prometheus
              prometheus-alertmanager wrk hey rsync cron curl nodejs npm docker.io debootstrap zstd
              docker-registry)
PM2_VERSION=7.0.4

step() { printf '\n==> %s\n' "$*"; }

missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    step "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Debian's node/npm only if the machine has none (this image ships Node 20 outside apt).
    if command -v node >/dev/null && command -v npm >/dev/null; then
        missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
    fi
    apt-get install -y -qq --no-install-recommends ${missing[*]} >/dev/null
else
    step "apt: all packages present"
fi

if [[ "$(pm2 --version 2>/dev/null | tail -1)" != "$PM2_VERSION" ]]; then
    step "npm: installing pm2@$PM2_VERSION"
    npm install -g --silent "pm2@$PM2_VERSION" >/dev/null
else
    step "npm: pm2 $PM2_VERSION present"
fi

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -f $stamp ]]; then
    step "python: creating .venv with the pinned dependencies (~30 s the first time)"
    python3 -m venv .venv
    .venv/bin/pip install -q -e '.[app,dev]'
    rm -f .venv/.installed-* && touch "$stamp"
else
    step "python: .venv up to date"
fi
