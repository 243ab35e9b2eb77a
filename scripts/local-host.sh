#!/usr/bin/env bash
# Turn this machine into a VPS-like host for the `local` stack, the way a fresh VPS is handed over:
# sshd listening on 127.0.0.1 (port from Pulumi.local.yaml, default 2222) with a generated key pair,
# and the packages a VPS would get (installed by scripts/install.sh). Starts only sshd: nginx,
# PostgreSQL, Redis and PM2 are started by `fab setup`. Idempotent: a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SSH_DIR=$ROOT/.local/ssh            # git-ignored: keys never enter the repository
PORT=${SHIPSHAPE_SSH_PORT:-$(awk '/shipshape:host:/{h=1} h&&/^ +port:/{print $2; exit}' Pulumi.local.yaml)}
PORT=${PORT:-2222}

mkdir -p "$SSH_DIR" /run/sshd
chmod 700 "$SSH_DIR"
[[ -f $SSH_DIR/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/ssh_host_ed25519_key"
[[ -f $SSH_DIR/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C shipshape-local -f "$SSH_DIR/id_ed25519"
cp "$SSH_DIR/id_ed25519.pub" "$SSH_DIR/authorized_keys"

cat > "$SSH_DIR/sshd_config.new" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/ssh_host_ed25519_key
AuthorizedKeysFile $SSH_DIR/authorized_keys
PidFile $SSH_DIR/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp internal-sftp
CONF
mv "$SSH_DIR/sshd_config.new" "$SSH_DIR/sshd_config"

# known_hosts for clients (Fabric, testinfra's ssh:// backend, plain ssh), so nothing prompts.
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$SSH_DIR/ssh_host_ed25519_key.pub")" > "$SSH_DIR/known_hosts"
cat > "$SSH_DIR/config" <<CONF
Host shipshape-local 127.0.0.1
  HostName 127.0.0.1
  Port $PORT
  User root
  IdentityFile $SSH_DIR/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $SSH_DIR/known_hosts
  StrictHostKeyChecking yes
  ControlMaster auto
  ControlPath /tmp/shipshape-ssh-$PORT
  ControlPersist 60
CONF

/usr/sbin/sshd -t -f "$SSH_DIR/sshd_config"
if [[ -f $SSH_DIR/sshd.pid ]] && kill -0 "$(cat "$SSH_DIR/sshd.pid")" 2>/dev/null; then
    echo "sshd already listening on 127.0.0.1:$PORT"
else
    /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "$SSH_DIR/sshd.log"
    for _ in $(seq 50); do
        ssh -F "$SSH_DIR/config" -o ControlMaster=no -o BatchMode=yes shipshape-local true 2>/dev/null && break
        sleep 0.1
    done
    echo "sshd started on 127.0.0.1:$PORT"
fi
ssh -F "$SSH_DIR/config" -o ControlMaster=no -o BatchMode=yes shipshape-local true
echo "local host reachable: ssh -F .local/ssh/config shipshape-local"
