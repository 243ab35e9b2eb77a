"""A tiny slot process for the PM2 tests: answers its env as JSON; /slow?s=N sleeps first.

On SIGTERM it stops accepting, finishes in-flight requests, then exits (the app contract's drain).
"""
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # headers and body are two writes: avoid the 40 ms delayed-ACK stall
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/slow":
            time.sleep(float(parse_qs(url.query).get("s", ["1"])[0]))
        keys = ("PORT", "RELEASE_ID", "GIT_SHA", "SECRET_KEY", "DATABASE_URL")
        body = json.dumps({k: os.environ.get(k) for k in keys} | {"cwd": os.getcwd()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = False  # server_close() joins in-flight request threads: the drain


def drain(signum, frame):
    threading.Thread(target=server.shutdown).start()


signal.signal(signal.SIGTERM, drain)
server.serve_forever(0.05)
server.server_close()
