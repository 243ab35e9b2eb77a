"""nginx in front of the two app slots: the config text, applying it safely, and reading its traffic.

nginx runs without systemd as `nginx -c {layout.nginx_conf} -p {layout.nginx}/ -e {layout.nginx}/error.log`.
Slot a listens on `app.port`, slot b on `app.port + 1`; weights move traffic between them (canary).
Every function here is pure: it returns text or commands for `shipshape.remote.Runner`.

    runner.run_all(apply_commands(layout, site_config(stack, layout, {"a": 90, "b": 10})))
    stats = parse_traffic_stats(runner.run(traffic_stats_command(layout, 8002, since)).stdout)
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from shipshape.config import Target
from shipshape.layout import SLOTS, Layout
from shipshape.remote import Command, Script

# Tab-separated so awk -F'\t' splits it whatever the URI holds; $upstream_addr lists every upstream
# tried ("127.0.0.1:8001, 127.0.0.1:8002") and the last one is the one that answered.
LOG_FORMAT = r"$msec\t$upstream_addr\t$status\t$request_time\t$request_method\t$request_uri"
HEREDOC = "SHIPSHAPE_NGINX_CONF"

# A site's server block after `listen` (`_site`): security headers on every answer, a health location,
# shipshape:app.static's files if any, the proxy.
HEADERS = """        add_header X-Content-Type-Options nosniff always;
        add_header X-Frame-Options DENY always;
        add_header Referrer-Policy strict-origin-when-cross-origin always;
        add_header Content-Security-Policy "default-src 'self'; frame-ancestors 'none'" always;"""

HEALTH = """        location = /nginx-health {
            access_log off;
            default_type text/plain;
            return 200 "ok\\n";
        }"""

PROXY = """        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # A slot that refuses connections (stopped, restarting) is skipped, not answered with 502.
            # nginx never retries non-idempotent requests (POST...) once sent: no double writes.
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            # The security headers are the server block's: an app's own copies (an app that also runs
            # without nginx, on Cloud Run, sets them itself) are dropped, never sent twice.
            proxy_hide_header X-Content-Type-Options;
            proxy_hide_header X-Frame-Options;
            proxy_hide_header Referrer-Policy;
            proxy_hide_header Content-Security-Policy;
            proxy_hide_header Strict-Transport-Security;
        }"""

# shipshape:app.static: a name with a hex run of 8+ between dots (app.3f9a1c2e.js) never changes content.
STATIC_CACHE = """    map $uri $shipshape_static_cache {
        "~\\.[0-9a-fA-F]{8,}\\.[^/]*$" "public, max-age=31536000, immutable";
        default no-cache;
    }"""

# The site sets no MIME types of its own (default_type application/octet-stream), and with nosniff a
# browser refuses a script or style sheet sent as that: the static location names the usual ones.
STATIC_TYPES = """            types {
                text/html html htm;
                text/css css;
                application/javascript js mjs;
                application/json json map;
                application/manifest+json webmanifest;
                application/wasm wasm;
                application/pdf pdf;
                text/plain txt;
                text/xml xml;
                image/svg+xml svg;
                image/png png;
                image/jpeg jpg jpeg;
                image/gif gif;
                image/webp webp;
                image/avif avif;
                image/x-icon ico;
                font/woff woff;
                font/woff2 woff2;
                font/ttf ttf;
                font/otf otf;
                video/mp4 mp4;
                video/webm webm;
                audio/mpeg mp3;
            }"""


def slot_ports(stack) -> dict[str, int]:
    """{"a": app.port, "b": app.port + 1}."""
    return dict(zip(SLOTS, stack.app.slot_ports))


def check_weights(weights: dict[str, int]) -> dict[str, int]:
    """Weights per slot, 0..100 each, at least one above 0; a ValueError names the bad value."""
    unknown = set(weights) - set(SLOTS)
    if unknown:
        raise ValueError(f"nginx weights: unknown slot {sorted(unknown)[0]!r}; expected one of {list(SLOTS)}")
    for slot, weight in weights.items():
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise ValueError(f"nginx weights: {slot} = {weight!r}: expected an integer 0..100")
    if not any(weights.values()):
        raise ValueError(f"nginx weights: {weights}: at least one slot must have a weight above 0")
    return {slot: weights.get(slot, 0) for slot in SLOTS}


def _servers(stack, weights: dict[str, int]) -> str:
    # nginx weights must be >= 1, so a slot at 0 is marked `down`: it gets no requests at all.
    # max_fails=0: one refused connection on the only live slot must not take it out of the
    # upstream for fail_timeout (10 s of "no live upstreams"); slots are readiness-gated instead.
    lines = []
    for slot, port in slot_ports(stack).items():
        weight = weights[slot]
        state = f"weight={weight} max_fails=0" if weight else "down"
        lines.append(f"        server 127.0.0.1:{port} {state};  # slot {slot}")
    return "\n".join(lines)


def _listen(stack, port: int, ssl: bool = False) -> str:
    suffix = " ssl" if ssl else ""
    if stack.target is Target.vps:
        return f"listen {port}{suffix};"
    return f"listen 127.0.0.1:{port}{suffix};"


def _server(listen: str, body: str) -> str:
    return f"""    server {{
        {listen}
        server_name _;
{body}
    }}"""


def _static_location(stack, layout: Layout, weights: dict[str, int], headers: str) -> str:
    """shipshape:app.static, served by nginx from the slots' links, never by the app: the heavier slot's
    files first and the other slot's after, so during a canary a page from either slot finds its assets."""
    pattern = stack.app.static.url.replace(".", r"\.")
    order = sorted(SLOTS, key=lambda slot: -weights[slot])  # a tie keeps slot order
    tries = " ".join(f"{layout.static_slot(slot).removeprefix(layout.static)}/$shipshape_asset" for slot in order)
    repeated = "\n".join("    " + line for line in headers.splitlines())
    return f"""        # shipshape:app.static (docs/your-app.md): slot {order[0]}'s files first, then slot {order[1]}'s.
        location ~ ^{pattern}(?<shipshape_asset>.*)$ {{
            root {layout.static};
            try_files {tries} =404;
{STATIC_TYPES}
            # A location with add_headers of its own inherits none of the server's: repeated here.
{repeated}
            # Not `always`: a 404 (a name neither slot has yet) must not be cached for a year.
            add_header Cache-Control $shipshape_static_cache;
        }}"""


def _site(stack, layout: Layout, weights: dict[str, int], headers: str) -> str:
    """A site's server block after `listen`: `headers` on every answer, health, static files, the proxy."""
    if not stack.app.static:
        return f"{headers}\n\n{HEALTH}\n\n{PROXY}"
    return f"{headers}\n\n{HEALTH}\n\n{_static_location(stack, layout, weights, headers)}\n\n{PROXY}"


def _servers_blocks(stack, layout: Layout, weights: dict[str, int]) -> str:
    """One plain-HTTP server; with shipshape:tls, an HTTPS one and a plain one that redirects to it."""
    tls = stack.tls
    plain = _listen(stack, stack.host.http_port)
    if not tls:
        return _server(plain, f"\n{_site(stack, layout, weights, HEADERS)}")
    redirect = f"""
        # certbot --webroot renewals answer ACME http-01 challenges over plain HTTP.
        location /.well-known/acme-challenge/ {{
            root {layout.acme_webroot};
        }}
{HEALTH}
        location / {{
            return 308 https://$host{tls.port_suffix}$request_uri;
        }}"""
    headers = f'        add_header Strict-Transport-Security "max-age={tls.hsts_max_age}" always;\n{HEADERS}'
    secure = f"""        ssl_certificate {tls.certificate};
        ssl_certificate_key {tls.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:shipshape_tls:1m;
        # Beside the other add_header lines: nginx inherits none of a level's add_headers once it has one.
{_site(stack, layout, weights, headers)}"""
    return f"{_server(plain, redirect)}\n\n{_server(_listen(stack, tls.https_port, ssl=True), secure)}"


def site_config(stack, layout: Layout, weights: dict[str, int]) -> str:
    """A complete, self-contained nginx.conf splitting traffic between the slots by `weights`."""
    weights = check_weights(weights)
    base = layout.nginx
    static_cache = f"\n{STATIC_CACHE}\n" if stack.app.static else ""
    return f"""# Generated by shipshape for stack {stack.name}: do not edit, `fab` rewrites it.
daemon on;
worker_processes 2;
pid {base}/nginx.pid;
error_log {base}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    default_type application/octet-stream;
    server_tokens off;
    client_body_temp_path {base}/tmp/body;
    proxy_temp_path {base}/tmp/proxy;
    fastcgi_temp_path {base}/tmp/fastcgi;
    uwsgi_temp_path {base}/tmp/uwsgi;
    scgi_temp_path {base}/tmp/scgi;

    log_format shipshape "{LOG_FORMAT}";
    access_log {layout.access_log} shipshape;

    upstream app {{
{_servers(stack, weights)}
        keepalive 16;
    }}
{static_cache}
{_servers_blocks(stack, layout, weights)}
}}
"""


def _nginx(layout: Layout, *args: str) -> str:
    prefix = layout.nginx + "/"
    return shlex.join(["nginx", *args, "-p", prefix, "-e", f"{layout.nginx}/error.log"])


def read_config_command(layout: Layout) -> Command:
    """Print the live nginx.conf."""
    return ["cat", layout.nginx_conf]


def config_test_command(layout: Layout) -> Command:
    """`nginx -t` of the live config (preflight, checks); fails with nginx's message."""
    return Script(_nginx(layout, "-t", "-q", "-c", layout.nginx_conf))


def apply_commands(layout: Layout, config_text: str) -> list[Command]:
    """Write, test (`nginx -t`), then atomically install and reload (or start) nginx: one round trip.

    A config that fails the test is removed and raises RemoteError with nginx's message; the live
    config and the running nginx are untouched.
    """
    if HEREDOC in config_text:
        raise ValueError(f"nginx config must not contain the line {HEREDOC}")
    conf, new, pid = layout.nginx_conf, layout.nginx_conf + ".new", f"{layout.nginx}/nginx.pid"
    q = shlex.quote
    return [
        ["mkdir", "-p", f"{layout.nginx}/tmp"],
        ["install", "-d", "-m", "755", layout.acme_webroot],  # readable by nginx's workers (nobody)
        Script(f"cat > {q(new)} <<'{HEREDOC}'\n{config_text.rstrip()}\n{HEREDOC}"),
        Script(f"if ! out=$({_nginx(layout, '-t', '-q', '-c', new)} 2>&1); then\n"
               f"  rm -f {q(new)}; echo \"$out\" >&2; exit 1\nfi"),
        ["mv", "-f", new, conf],
        Script(_reload_or_start(layout, conf, pid)),
    ]


def reload_command(layout: Layout) -> Command:
    """Gracefully reload (or start) nginx with the live config, e.g. after a certificate renewal."""
    return Script(_reload_or_start(layout, layout.nginx_conf, f"{layout.nginx}/nginx.pid"))


def _reload_or_start(layout: Layout, conf: str, pid: str) -> str:
    # `nginx -s reload` only signals the master; wait (<= 2 s) until a new worker exists AND every
    # old worker has stopped accepting (it exited or says "shutting down"; the master tells them
    # ~100 ms after starting new ones), so traffic measured next is under the new weights only.
    q = shlex.quote
    return (
        f"if [ -s {q(pid)} ] && kill -0 \"$(cat {q(pid)})\" 2>/dev/null; then\n"
        f"  master=$(cat {q(pid)}); old=$(pgrep -P \"$master\" | sort | tr '\\n' ' ')\n"
        f"  {_nginx(layout, '-s', 'reload', '-c', conf)}\n"
        f"  for i in $(seq 40); do\n"
        f"    now=$(pgrep -P \"$master\" | sort | tr '\\n' ' '); fresh=0; busy=0\n"
        f"    for w in $now; do case \" $old \" in *\" $w \"*) ;; *) fresh=1;; esac; done\n"
        f"    for w in $old; do tr '\\0' ' ' < /proc/$w/cmdline 2>/dev/null | grep -q 'worker process *$' && busy=1; done\n"
        f"    [ $fresh = 1 ] && [ $busy = 0 ] && break\n"
        f"    sleep 0.02\n"
        f"  done\n"
        f"else\n"
        f"  {_nginx(layout, '-c', conf)}\n"
        f"fi"
    )


@dataclass(frozen=True)
class TrafficStats:
    """What one slot served since a moment (the canary gate reads the log itself: shipshape/gate_watch.py)."""

    requests: int
    errors: int
    p95_ms: float
    host_now: float = 0.0  # the host's clock when read: the next window's `since` (no clock skew)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def traffic_stats_command(layout: Layout, upstream_port: int, since: float) -> Command:
    """Summarise the access log for requests answered by 127.0.0.1:`upstream_port` after `since` (epoch s).

    Prints `requests=N errors=E p95_ms=X now=HOST_EPOCH`; an absent log counts as no traffic.
    """
    log = shlex.quote(layout.access_log)
    # Read the log backwards and stop well before `since`: cost follows the window, not the log size.
    # The 60 s margin covers lines from two workers landing slightly out of order.
    pick = (f"awk -F'\\t' -v since={since:.3f} -v addr=127.0.0.1:{int(upstream_port)} "
            "'$1 < since - 60 { exit } "
            "$1 >= since { n = split($2, u, \", \"); if (u[n] == addr) print $4 * 1000, $3 }'")
    summary = ("awk '{ t[NR] = $1; if ($2 >= 500) e++ } END { i = int(NR * 0.95); if (i < NR * 0.95) i++; "
               "printf \"requests=%d errors=%d p95_ms=%.1f\\n\", NR, e, (NR ? t[i] : 0) }'")
    return Script(f"if [ -f {log} ]; then tac {log} | {pick}; fi | sort -n | {summary}\ndate +now=%s.%N")


STATS_LINE = re.compile(r"requests=(\d+) errors=(\d+) p95_ms=([\d.]+)(?:\s+now=([\d.]+))?")


def parse_traffic_stats(stdout: str) -> TrafficStats:
    """Parse `traffic_stats_command` output."""
    match = STATS_LINE.search(stdout)
    if not match:
        raise ValueError(f"unexpected traffic stats output: {stdout.strip()[:200]!r}")
    return TrafficStats(int(match.group(1)), int(match.group(2)), float(match.group(3)),
                        float(match.group(4) or 0.0))


def current_weights_command(layout: Layout) -> Command:
    """Print whether nginx runs, then the upstream servers of the config it serves."""
    pid, conf = shlex.quote(f"{layout.nginx}/nginx.pid"), shlex.quote(layout.nginx_conf)
    return Script(
        f"if [ -s {pid} ] && kill -0 \"$(cat {pid})\" 2>/dev/null; then echo running; else echo stopped; fi\n"
        f"grep -E '^[[:space:]]*server 127\\.0\\.0\\.1:' {conf} 2>/dev/null || true")


SERVER_LINE = re.compile(r"server 127\.0\.0\.1:(\d+) (?:weight=(\d+)|(down))")


def parse_current_weights(stdout: str, stack) -> dict[str, int]:
    """{"a": 90, "b": 10} as nginx serves now; {} when nginx is not running (it serves nothing)."""
    lines = stdout.splitlines()
    if not lines or lines[0].strip() != "running":
        return {}
    return weights_in_config(stdout, stack)


def weights_in_config(text: str, stack) -> dict[str, int]:
    """The slot weights a config's upstream gives ({} for no shipshape upstream)."""
    by_port = {port: slot for slot, port in slot_ports(stack).items()}
    weights = {}
    for match in SERVER_LINE.finditer(text):
        slot = by_port.get(int(match.group(1)))
        if slot:
            weights[slot] = int(match.group(2)) if match.group(2) else 0
    return weights
