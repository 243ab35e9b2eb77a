"""Gather every host fact the post-deploy checks need and print them as one JSON object.

Runs ON THE HOST under the system python3 (stdlib only), shipped as text by shipshape.facts in a single
SSH round trip: `python3 - PARAMS_JSON`. It only reads: it never starts, stops or writes anything
(it does not even call `pm2 jlist` when the PM2 daemon is down, because that would spawn one).
Secret values read from the secrets file go to child processes through their environment, never
to argv (visible in `ps`) and never to the output.
"""
import glob
import json
import os
import pwd
import re
import subprocess
import sys
import time

TIMEOUT = 5  # a hung daemon must fail its check, not hang the whole suite


def run(argv, env=None, unset=(), limit=2000):
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT,
                              env={**environ, **(env or {})})
        output = (proc.stdout + proc.stderr).strip()
        return {"rc": proc.returncode, "output": output[-limit:] if limit else output}
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"rc": 127, "output": f"{type(error).__name__}: {error}"}


def read_env(path):
    values = {}
    try:
        with open(path) as handle:
            for line in handle:
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    values[key.strip()] = value.strip()
    except OSError:
        pass
    return values


def listeners():
    """Every listening TCP socket as {address, port}, from /proc (no dependency on ss/netstat)."""
    found = []
    for path, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # 0A = LISTEN
                continue
            hexaddr, hexport = fields[1].split(":")
            found.append({"address": decode_address(hexaddr, width), "port": int(hexport, 16)})
    return found


def decode_address(hexaddr, width):
    raw = bytes.fromhex(hexaddr)
    # /proc stores each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if width == 4:
        return ".".join(str(b) for b in words)
    import ipaddress
    return str(ipaddress.IPv6Address(words))


def file_facts(path):
    try:
        info = os.stat(path)
    except OSError:
        return None
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    return {"path": path, "mode": format(info.st_mode & 0o777, "03o"), "owner": owner, "mtime": info.st_mtime}


def latest_backup(directory):
    dumps = [file_facts(p) for p in glob.glob(os.path.join(directory, "*.dump"))]
    dumps = [d for d in dumps if d]
    return max(dumps, key=lambda d: d["mtime"]) if dumps else None


def migration_heads(release_dir):
    """Alembic heads of a release: revisions no other revision names as its down_revision."""
    revisions, parents = set(), set()
    for path in glob.glob(os.path.join(release_dir, "migrations", "versions", "*.py")):
        text = open(path).read()
        match = re.search(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
        if match:
            revisions.add(match.group(1))
        down = re.search(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", text, re.M)
        if down:
            parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return sorted(revisions - parents)


def shell(params, name):
    """Run one of the stack's own status commands (built by shipshape.nginx / shipshape.runtimes)."""
    guard = params.get("requires_pid_file", {}).get(name)
    if guard:
        try:
            os.kill(int(open(guard).read().strip()), 0)
        except (OSError, ValueError):
            # `pm2 jlist` would spawn a fresh daemon: a check must not change the host.
            return {"rc": 1, "output": f"not running (no live pid in {guard})"}
    # Whole output: a status command's JSON (`pm2 jlist`) is only useful complete.
    return run(["sh", "-c", params["commands"][name]], limit=None)


def database(params, secrets):
    db = params["db"]
    env = {"PGPASSWORD": secrets.get("DATABASE_PASSWORD", ""), "PGCONNECT_TIMEOUT": "3"}
    base = ["psql", "-h", "127.0.0.1", "-p", str(db["port"]), "-U", db["user"], "-d", db["name"], "-XAt"]
    return {
        "ready": run(["pg_isready", "-h", "127.0.0.1", "-p", str(db["port"]), "-t", "3"]),
        "revision": run([*base, "-c", "SELECT version_num FROM alembic_version"], env),
    }


def redis(params, secrets):
    base = ["redis-cli", "-h", "127.0.0.1", "-p", str(params["redis_port"])]
    return {
        "anonymous": run([*base, "PING"], unset=("REDISCLI_AUTH",)),
        "authenticated": run([*base, "--no-auth-warning", "PING"],
                             {"REDISCLI_AUTH": secrets.get("REDIS_PASSWORD", "")}),
    }


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle), None
    except (OSError, ValueError) as error:
        return None, f"{type(error).__name__}: {error}"


def main(params):
    secrets = read_env(params["secrets_env"])
    slots, slots_error = read_json(params["slots_file"])
    releases = [s["release"] for s in ((slots or {}).get("slots") or {}).values() if s]
    disk = os.statvfs(params["root"]) if os.path.isdir(params["root"]) else os.statvfs("/")
    meminfo = dict(re.findall(r"^(\w+):\s+(\d+)", open("/proc/meminfo").read(), re.M))
    return {
        "now": time.time(),
        "slots": slots, "slots_error": slots_error,
        "heads": {r: migration_heads(os.path.join(params["releases"], r)) for r in releases},
        "listeners": listeners(),
        "nginx_test": run(["nginx", "-t", "-c", params["nginx_conf"], "-p", params["nginx_prefix"]]),
        "commands": {name: shell(params, name) for name in params["commands"]},
        "database": database(params, secrets),
        "redis": redis(params, secrets),
        "latest_backup": latest_backup(params["backups"]),
        "secrets_file": file_facts(params["secrets_env"]),
        "disk_free_ratio": disk.f_bavail / disk.f_blocks if disk.f_blocks else 0.0,
        "memory_available_ratio": int(meminfo["MemAvailable"]) / int(meminfo["MemTotal"]),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
