"""The host probe: every fact the deploy and the post-deploy checks read, printed as one JSON object.

Runs ON THE HOST under the system python3 (stdlib only), shipped as text by shipshape.facts in a single
SSH round trip: `python3 - PARAMS_JSON`. PARAMS names the sections to gather (see SECTIONS; the
deploy's state asks for fewer than the checks), each in a thread of its own.

It only reads: it never starts, stops or writes anything (it does not even call `pm2 jlist` when the
PM2 daemon is down, because that would spawn one). Every child process has a timeout, so a hung
daemon fails its fact instead of hanging the caller. Secret values read from the secrets file go to
child processes through their environment, never to argv (visible in `ps`); they are replaced by ***
in everything printed, and only `"mask": true` (the deploy's Runner, to mask them in later output)
hands them back, as the `mask` list.
"""
import glob
import json
import os
import pwd
import re
import subprocess
import sys
import threading
import time

TIMEOUT = 5      # a hung daemon must fail its fact, not hang the deploy or the checks
MIN_SECRET = 8   # shorter values (a port, "app") are not secrets and would garble every output
MASK = "***"


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


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle), None
    except (OSError, ValueError) as error:
        return None, f"{type(error).__name__}: {error}"


def lock_held(lock_file):
    """Whether a live process holds the deploy lock's flock (shipshape/lock_holder.py); None: no lock file."""
    if not os.path.exists(lock_file):
        return None
    import fcntl
    try:
        fd = os.open(lock_file + ".flock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


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


def releases(directory):
    """{release id: its RELEASE manifest}; a release still being unpacked (no valid manifest) is left out."""
    try:
        names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
    except OSError:
        return {}
    manifests = {name: read_json(os.path.join(directory, name, "RELEASE"))[0] for name in names}
    return {name: manifest for name, manifest in manifests.items() if isinstance(manifest, dict)}


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
            # `pm2 jlist` would spawn a fresh daemon: reading must not change the host.
            return {"rc": 1, "output": f"not running (no live pid in {guard})"}
    # Whole output: a status command's JSON (`pm2 jlist`) is only useful complete.
    return run(["sh", "-c", params["commands"][name]], limit=None)


def database_ready(params):
    return run(["pg_isready", "-h", "127.0.0.1", "-p", str(params["db"]["port"]), "-t", "3"])


def app_psql(params, secrets, *queries):
    """`psql` as the app's own database user, one output line per row of each query."""
    db = params["db"]
    env = {"PGPASSWORD": secrets.get("DATABASE_PASSWORD", ""), "PGCONNECT_TIMEOUT": "3"}
    return run(["psql", "-h", "127.0.0.1", "-p", str(db["port"]), "-U", db["user"], "-d", db["name"], "-XAt",
                *(arg for query in queries for arg in ("-c", query))], env)


def schema(params, secrets):
    """The Alembic revision(s) applied, as the app's own database user sees them."""
    return app_psql(params, secrets, "SELECT version_num FROM alembic_version")


def accounts(params, secrets):
    """The check accounts' fingerprint (shipshape.accounts) and the identity of the database they are in:
    `<cluster system identifier>/<database oid>`, new when the database or its cluster is made anew."""
    identity = app_psql(params, secrets, "SELECT system_identifier FROM pg_control_system()",
                        "SELECT oid FROM pg_database WHERE datname = current_database()")
    return {"fingerprint": (read_text(params["accounts_file"]) or "").strip() or None,
            "database_id": "/".join(identity["output"].split()) if identity["rc"] == 0 else None}


def redis(params, secrets):
    base = ["redis-cli", "-h", "127.0.0.1", "-p", str(params["redis_port"])]
    return {
        "anonymous": run([*base, "PING"], unset=("REDISCLI_AUTH",)),
        "authenticated": run([*base, "--no-auth-warning", "PING"],
                             {"REDISCLI_AUTH": secrets.get("REDIS_PASSWORD", "")}),
    }


def disk(root):
    stat = os.statvfs(root if os.path.isdir(root) else "/")
    return {"disk_free_ratio": stat.f_bavail / stat.f_blocks if stat.f_blocks else 0.0,
            "disk_available_kb": stat.f_bavail * stat.f_frsize // 1024}


def memory():
    meminfo = dict(re.findall(r"^(\w+):\s+(\d+)", open("/proc/meminfo").read(), re.M))
    return {"memory_available_ratio": int(meminfo["MemAvailable"]) / int(meminfo["MemTotal"])}


class Host:
    """What every section may need, read once: the params, the secrets file, slots.json."""

    def __init__(self, params):
        self.params = params
        self.secrets = read_env(params["secrets_env"])
        self.slots, self.slots_error = read_json(params["slots_file"])

    def serving_releases(self):
        return [s["release"] for s in ((self.slots or {}).get("slots") or {}).values() if s]


# section -> the keys it adds to the output (a dict value is merged into the same key's: "commands").
SECTIONS = {
    "now": lambda h: {"now": time.time()},
    "slots": lambda h: {"slots": h.slots, "slots_error": h.slots_error},
    "releases": lambda h: {"releases": releases(h.params["releases"])},
    "heads": lambda h: {"heads": {r: migration_heads(os.path.join(h.params["releases"], r))
                                  for r in h.serving_releases()}},
    "listeners": lambda h: {"listeners": listeners()},
    "nginx_test": lambda h: {"nginx_test": run(["sh", "-c", h.params["nginx_test"]])},
    "weights": lambda h: {"commands": {"weights": shell(h.params, "weights")}},
    "processes": lambda h: {"commands": {"processes": shell(h.params, "processes")}},
    "lock": lambda h: {"lock": read_text(h.params["lock_file"]), "lock_held": lock_held(h.params["lock_file"])},
    "database": lambda h: {"database": {"ready": database_ready(h.params)}},
    "schema": lambda h: {"database": {"revision": schema(h.params, h.secrets)}},
    "accounts": lambda h: {"accounts": accounts(h.params, h.secrets)},
    "redis": lambda h: {"redis": redis(h.params, h.secrets)},
    "latest_backup": lambda h: {"latest_backup": latest_backup(h.params["backups"])},
    "secrets_file": lambda h: {"secrets_file": file_facts(h.params["secrets_env"])},
    "disk": lambda h: disk(h.params["root"]),
    "memory": lambda h: memory(),
    "artifact": lambda h: {"artifact": os.path.isfile(h.params["artifact"]) if h.params.get("artifact") else None},
}


def scrub(value, secrets):
    """`value` with every secret replaced by ***, in every string it holds."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {key: scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, secrets) for item in value]
    return value


def gather(host, names):
    """{section: its keys, or the exception it raised}, every section in a thread of its own."""
    results = {}

    def one(name):
        try:
            results[name] = SECTIONS[name](host)
        except Exception as error:  # one broken fact must not hide the others
            results[name] = error

    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def main(params):
    host = Host(params)
    out, errors, results = {}, {}, gather(host, params["sections"])
    for name, result in ((name, results[name]) for name in params["sections"]):
        if isinstance(result, Exception):
            errors[name] = f"{type(result).__name__}: {result}"
            continue
        for key, value in result.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key].update(value)
            else:
                out[key] = value
    out["errors"] = errors
    # Longest first: DATABASE_URL holds DATABASE_PASSWORD, and must be masked whole.
    secrets = sorted({v for v in host.secrets.values() if len(v) >= MIN_SECRET}, key=lambda v: (-len(v), v))
    out = scrub(out, secrets)
    if params.get("mask"):
        out["mask"] = secrets
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
