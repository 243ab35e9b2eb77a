"""Run the Cloud Run fake as its own process (so a test process under load keeps its GIL to itself).

    python -m tests.support.fake_gcp --project P --region R \\
        --docker-host unix:///run/shipshape-test/cloudrun.sock --refresh-token T \\
        [--secret NAME=VALUE ...] [--port 0] [--scale-down-after 5] [--verbose]

Prints one JSON line once everything answers:
    {"run_endpoint": "http://127.0.0.1:P", "token_uri": "http://127.0.0.1:P/token",
     "monitoring_endpoint": "127.0.0.1:Q", "https_proxy": "http://127.0.0.1:P", "ca_file": "/tmp/.../ca.pem",
     "pid": N, "project": P, "region": R}
and serves until SIGTERM (or SIGINT); then it removes every container it started.

google-auth sends an authorized_user refresh to https://oauth2.googleapis.com/token whatever the ADC
file says (2.62 ignores its token_uri), so the API port is also an HTTPS proxy for that one host: a
client with HTTPS_PROXY=https_proxy, REQUESTS_CA_BUNDLE=ca_file and NO_PROXY=127.0.0.1 reaches /token.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from tests.support.fake_gcp.api import Api, CloudRun, Server
from tests.support.fake_gcp.containers import Engine
from tests.support.fake_gcp.counts import Counts
from tests.support.fake_gcp.monitoring import MonitoringFake
from tests.support.fake_gcp.router import Router


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_gcp", description=__doc__.split("\n")[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--docker-host", required=True, help="the engine revisions and executions run on")
    parser.add_argument("--refresh-token", required=True, help="the one refresh token /token accepts")
    parser.add_argument("--secret", action="append", default=[], metavar="NAME=VALUE",
                        help="a Secret Manager secret (id and value); repeatable")
    parser.add_argument("--port", type=int, default=0, help="the API's port (0: any free one)")
    parser.add_argument("--scale-down-after", type=float, default=5.0,
                        help="seconds before a revision with no traffic and no tag is stopped")
    parser.add_argument("--verbose", action="store_true", help="log every API request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    secrets = dict(item.split("=", 1) for item in args.secret)
    counts = Counts()
    router = Router(counts)
    monitoring = MonitoringFake(counts, project=args.project, location=args.region)
    engine = Engine(args.docker_host)
    engine.remove_stale()
    run = CloudRun(engine, router, secrets, scale_down_after=args.scale_down_after)
    tls = Path(tempfile.mkdtemp(prefix="fake-gcp-tls-"))
    server = Server(Api(run, args.refresh_token), tls, args.port, args.verbose)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ready = {"run_endpoint": server.url, "token_uri": f"{server.url}/token",
             "monitoring_endpoint": monitoring.start(), "https_proxy": server.url, "ca_file": str(server.ca_file),
             "pid": os.getpid(), "project": args.project, "region": args.region}
    print(json.dumps(ready), flush=True)
    stopping.wait()
    try:
        server.shutdown()
        run.close()
        router.close()
        monitoring.stop()
        shutil.rmtree(tls, ignore_errors=True)
    finally:
        sys.stdout.flush()
        os._exit(0)  # worker threads may still wait on a probe whose container is gone: do not join them


if __name__ == "__main__":
    main()
