#!/usr/bin/python3
"""Load and abuse: 10,000 concurrent connections, running out of
descriptors, slowloris clients, a client that never reads, and 1,000,000
requests from 64 clients with exact counters, an unbroken audit chain and
flat memory. Figures are printed as TAP diagnostics (# lines)."""
import json
import os
import resource
import socket
import struct
import subprocess
import threading
import time

from harness import KMSCTL, Kmsd, Raw, case, check, eq, run_cases

LOADGEN = os.environ.get("LOADGEN", "build/tests/load/loadgen")

CONFIG = """
[kmsd]
state_dir = {dir}/state
frame_timeout = 1s
idle_timeout = 3s
max_connections = %d
%s

[key default]
key_id = local/dev

[socket app]
path = {dir}/app.sock
allow = generate, encrypt, decrypt, stats
"""


def note(msg):
    print(f"# {msg}", flush=True)


def fresh_hello(k, timeout=5):
    r = Raw(k.path("app.sock"), timeout=timeout)
    t = time.time()
    resp = r.call({"id": 1, "op": "hello"})
    r.close()
    eq(resp["id"], 1)
    return time.time() - t


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(n, soft)
    if hard != resource.RLIM_INFINITY and hard < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


@case
def ten_thousand_connections():
    limit = raise_nofile(10300)
    check(limit >= 10300, f"RLIMIT_NOFILE hard limit {limit} too low")
    k = Kmsd(config=CONFIG % (12000, "idle_timeout = 5m"))
    conns = []
    try:
        k.start()
        rss0 = k.rss_kib()
        for _ in range(10000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(k.path("app.sock"))
            conns.append(s)
        # every one of them is accepted and served
        conns[-1].sendall(struct.pack(">I", 14) +
                          b"\x82\xa2id\x05\xa2op\xa5hello")
        conns[-1].settimeout(10)
        check(len(conns[-1].recv(4096)) > 0)
        took = fresh_hello(k)
        rss1 = k.rss_kib()
        per = (rss1 - rss0) * 1024 / 10000
        note(f"10,000 idle connections: RSS {rss0} KiB -> {rss1} KiB, "
             f"{per:.0f} bytes per connection; a fresh hello took "
             f"{took * 1000:.1f} ms")
        check(took < 2, "daemon not responsive")
        check(per <= 8192, f"{per:.0f} bytes per idle connection")
    finally:
        for s in conns:
            s.close()
        try:
            k.stop()
        finally:
            k.cleanup()


@case
def out_of_descriptors_pauses_then_recovers():
    k = Kmsd(config=CONFIG % (10000, ""))

    def low_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    conns = []
    try:
        k.start(preexec=low_fds)
        # far more than the daemon's descriptors allow
        for _ in range(80):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(k.path("app.sock"))
            except OSError:
                s.close()
                continue
            conns.append(s)
        time.sleep(0.3)
        check(k.alive(), "kmsd died when out of descriptors")
        check("pausing" in k.logtext(), k.logtext()[-2000:])
        for s in conns:
            s.close()
        conns = []
        time.sleep(1.5)     # the listener resumes after its pause
        fresh_hello(k)
    finally:
        for s in conns:
            s.close()
        try:
            k.stop()
        finally:
            k.cleanup()


@case
def slowloris_clients_are_cut_off():
    k = Kmsd(config=CONFIG % (1000, ""))
    try:
        k.start()
        slow = []
        for _ in range(50):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(k.path("app.sock"))
            s.sendall(struct.pack(">I", 200))
            slow.append(s)
        closed = [False] * len(slow)
        t0 = time.time()
        served = 0
        while time.time() - t0 < 3 and not all(closed):
            for i, s in enumerate(slow):
                if closed[i]:
                    continue
                try:
                    s.send(b"\x85")     # one byte a while: never a frame
                except OSError:
                    closed[i] = True
            served += 1
            fresh_hello(k)
            time.sleep(0.25)
        for s in slow:
            s.settimeout(0.5)
            try:
                if s.recv(1) == b"":
                    pass
            except OSError:
                pass
        n_closed = 0
        for s in slow:
            try:
                s.send(b"\x85")
                s.send(b"\x85")
            except OSError:
                n_closed += 1
        note(f"slowloris: {n_closed}/50 cut off; {served} other requests "
             f"served meanwhile")
        eq(n_closed, 50)
        check(served >= 4)
        for s in slow:
            s.close()
    finally:
        try:
            k.stop()
        finally:
            k.cleanup()


@case
def client_that_never_reads_is_disconnected():
    k = Kmsd(config=CONFIG % (1000, ""))
    try:
        k.start()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(k.path("app.sock"))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        body = b"\x83\xa2id\x01\xa2op\xa8generate\xa3key\xa7default"
        frame = struct.pack(">I", len(body)) + body
        s.setblocking(False)
        sent = 0
        t0 = time.time()
        gone = False
        while time.time() - t0 < 10:
            try:
                sent += s.send(frame * 256)
            except BlockingIOError:
                time.sleep(0.05)
            except OSError:
                gone = True
                break
            fresh_hello(k) if int(time.time() * 10) % 10 == 0 else None
        rss = k.rss_kib()
        note(f"never-reading client: {sent} bytes sent before the daemon "
             f"stopped reading; disconnected: {gone}; kmsd RSS {rss} KiB")
        check(gone, "never-reading client was not disconnected")
        check(rss < 64 * 1024, f"RSS {rss} KiB")
        fresh_hello(k)
        s.close()
    finally:
        try:
            k.stop()
        finally:
            k.cleanup()


@case
def million_requests_exact_counters_chain_and_flat_memory():
    k = Kmsd(config=CONFIG % (1000, "audit_log = {dir}/audit.log"))
    try:
        k.start()
        sock = k.path("app.sock")
        # the first 64,000: every client's first full batch, so both
        # measurements see the same shape of traffic
        warm = subprocess.run([LOADGEN, sock, "default", "64", "64000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=300)
        eq(warm.returncode, 0, warm.stderr)
        rss_warm = k.rss_kib()
        p = subprocess.run([LOADGEN, sock, "default", "64", "936000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=600)
        eq(p.returncode, 0, p.stderr)
        rss_end = k.rss_kib()
        out = dict(x.split("=") for x in p.stdout.decode().split())
        eq(int(out["ok"]), 936000)
        eq(int(out["failed"]), 0)
        secs = float(out["seconds"])
        st = json.loads(subprocess.run(
            [KMSCTL, "-s", sock, "stats"], stdout=subprocess.PIPE,
            check=True).stdout)
        enc = [x for x in st["operations"] if x["op"] == "encrypt"]
        eq(sum(x["count"] for x in enc if x["result"] == "ok"), 1000000)
        eq(sum(x["count"] for x in enc if x["result"] != "ok"), 0)
        k.stop()
        v = subprocess.run([KMSCTL, "audit", "verify", k.path("audit.log")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=300)
        eq(v.returncode, 0, v.stderr)
        with open(k.path("audit.log"), "rb") as f:
            n_lines = sum(1 for _ in f)
        eq(n_lines, 1000000)
        note(f"1,000,000 encrypts from 64 clients: {936000 / secs:.0f} "
             f"requests/s with the audit log on; RSS after 64,000: "
             f"{rss_warm} KiB, after 1,000,000: {rss_end} KiB "
             f"({(rss_end - rss_warm) * 100 / rss_warm:+.1f}%); audit chain "
             f"of {n_lines} lines verified")
        check(rss_end <= rss_warm * 1.05, "memory grew")
    finally:
        if k.proc is not None:
            k.stop()
        k.cleanup()


if __name__ == "__main__":
    run_cases()
