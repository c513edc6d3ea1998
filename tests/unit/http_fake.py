#!/usr/bin/python3
"""http_fake.py: the loopback HTTP/1.1 server test_http.c drives.

Started by the test with the standard library only. Listens on 127.0.0.1,
port chosen by the kernel, and prints "HTTP_PORT HTTPS_PORT" on one line
(HTTPS_PORT is 0 unless --cert and --key are given). Exits when its stdin
reaches EOF, so a test process that dies cannot leave it behind.

Behaviour is chosen by the path; anything after the recognised prefix is a
free tag, so each test can use paths nobody else counted:

  /ok/...            200, the request body echoed back ("ok" when empty)
  /status/CODE/...   CODE, a short body
  /flaky/N/...       503 for the first N requests to this exact path, then 200
  /slow/MS/...       200 after MS milliseconds (concurrency is recorded)
  /hang/...          never answers; returns when the client goes away
  /big/...           200 with a Content-Length body one byte over the cap
  /bigchunked/...    the same size, chunked (no length up front)
  /exact/...         200 with a body of exactly the cap
  /headers/...       200, the method line and the request headers as body
  /stats?path=P      JSON: connections, max_slow, count (requests to P)
  /reset             zero every counter

Connections are kept alive (HTTP/1.1). A connection is counted when its
first request is not /stats or /reset, so the test's own probes, which use
fresh connections, do not disturb the count.
"""

import argparse
import json
import os
import select
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 256 * 1024  # HTTP_MAX_BODY in daemon/http.h
HANG_LIMIT_S = 60      # a hung handler gives up after this long anyway


class State:
    lock = threading.Lock()
    connections = 0
    counts = {}
    slow_now = 0
    slow_max = 0

    @classmethod
    def reset(cls):
        with cls.lock:
            cls.connections = 0
            cls.counts = {}
            cls.slow_max = cls.slow_now


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each
    # response would wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.first = True
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body=b"", ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def hang(self):
        # Wait for the client to close (readable with EOF), never answer.
        end = time.monotonic() + HANG_LIMIT_S
        sock = self.connection
        while time.monotonic() < end:
            r, _, _ = select.select([sock], [], [], 0.05)
            if r:
                try:
                    if not sock.recv(1, 0):
                        break
                except (OSError, ssl.SSLError):
                    break
        self.close_connection = True

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        body = self.read_body()
        control = parts[0] in ("stats", "reset")
        if self.first:
            self.first = False
            if not control:
                with State.lock:
                    State.connections += 1
        if parts[0] == "stats":
            q = urllib.parse.parse_qs(url.query)
            p = q.get("path", [""])[0]
            with State.lock:
                out = {"connections": State.connections,
                       "max_slow": State.slow_max,
                       "count": State.counts.get(p, 0)}
            self.reply(200, json.dumps(out).encode(), "application/json")
            return
        if parts[0] == "reset":
            State.reset()
            self.reply(200, b"reset")
            return
        with State.lock:
            n = State.counts.get(url.path, 0) + 1
            State.counts[url.path] = n

        kind = parts[0]
        arg = parts[1] if len(parts) > 1 else ""
        if kind == "ok":
            self.reply(200, body if body else b"ok")
        elif kind == "status":
            self.reply(int(arg), b"status " + arg.encode())
        elif kind == "flaky":
            if n <= int(arg):
                self.reply(503, b"try again")
            else:
                self.reply(200, b"ok")
        elif kind == "slow":
            with State.lock:
                State.slow_now += 1
                State.slow_max = max(State.slow_max, State.slow_now)
            try:
                time.sleep(int(arg) / 1000.0)
            finally:
                with State.lock:
                    State.slow_now -= 1
            self.reply(200, b"ok")
        elif kind == "hang":
            self.hang()
        elif kind == "big":
            self.reply(200, b"x" * (MAX_BODY + 1))
        elif kind == "exact":
            self.reply(200, b"x" * MAX_BODY)
        elif kind == "bigchunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            left = MAX_BODY + 1
            while left > 0:
                k = min(left, 16384)
                self.wfile.write(b"%x\r\n" % k + b"y" * k + b"\r\n")
                left -= k
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "headers":
            lines = [self.command + " " + self.path]
            lines += ["%s: %s" % (k, v) for k, v in self.headers.items()]
            self.reply(200, ("\n".join(lines) + "\n").encode())
        else:
            self.reply(404, b"no such path")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = route


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops bursts of connects

    def handle_error(self, request, client_address):
        pass  # clients that go away mid-response are part of the tests


def lifeline():
    # The test holds our stdin open; EOF means it is gone.
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    a = ap.parse_args()

    plain = Server(("127.0.0.1", 0), Handler)
    servers = [plain]
    tls_port = 0
    if a.cert and a.key:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        tls = Server(("127.0.0.1", 0), Handler)
        # Handshake in the handler thread, not in the accept loop.
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True,
                                     do_handshake_on_connect=False)
        tls_port = tls.server_address[1]
        servers.append(tls)
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(plain.server_address[1], tls_port, flush=True)
    lifeline()


if __name__ == "__main__":
    main()
