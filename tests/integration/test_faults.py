#!/usr/bin/python3
"""Fault injection against a real kmsd: a KMS endpoint that refuses,
hangs, fails and recovers, resets mid-body or sends garbage; an audit log
that stops being writable while running; a state directory that cannot
take the kill switch; a broken config on SIGHUP; SIGTERM with 100 requests
in flight. After each, the daemon still serves."""
import json
import os
import resource
import signal
import socket
import struct
import time

import msgpack

from fault_kms import FaultKMS, stop
from harness import Kmsd, Raw, case, check, eq, kmsctl, run_cases

CONFIG = """
[kmsd]
state_dir = {dir}/state
admin_socket = {dir}/admin.sock
audit_log = {dir}/audit.log

[aws]
endpoint = %s
region = us-east-1
timeout = 1500ms
max_inflight = 128

[key cloud]
key_id = arn:aws:kms:us-east-1:111122223333:key/fault

[key local]
key_id = local/l

[socket app]
path = {dir}/app.sock
allow = generate, encrypt, decrypt
"""

ENV = {"AWS_ACCESS_KEY_ID": "AKIDFAULTTEST", "AWS_SECRET_ACCESS_KEY":
       "fault/secret/key", "AWS_EC2_METADATA_DISABLED": "true"}


def start(fake, **kw):
    k = Kmsd(config=CONFIG % fake.url, env=ENV)
    k.start(**kw)
    return k


def call(k, req):
    r = Raw(k.path("app.sock"), timeout=10)
    try:
        return r.call(req)
    finally:
        r.close()


def local_ok(k):
    resp = call(k, {"id": 1, "op": "generate", "key": "local"})
    check("ciphertext" in resp, resp)


def cloud(k):
    return call(k, {"id": 2, "op": "generate", "key": "cloud"})


def code(resp):
    return resp.get("error", {}).get("code")


@case
def endpoint_refusing_connections():
    fake = FaultKMS()
    k = start(fake)
    try:
        check("ciphertext" in cloud(k))
        fake.set("reset")       # the kept-alive connection dies...
        fake.sock.close()       # ...and nothing listens any more
        time.sleep(0.1)
        eq(code(cloud(k)), "provider_unavailable")
        local_ok(k)
    finally:
        stop(k, fake)


@case
def failures_then_recovery():
    fake = FaultKMS()
    k = start(fake)
    try:
        fake.set("status:503", 2)       # two bad tries, the third works
        check("ciphertext" in cloud(k), "not retried to success")
        fake.set("status:500")
        eq(code(cloud(k)), "provider_unavailable")
        fake.set("status:429")
        eq(code(cloud(k)), "throttled")
        fake.set("ok")
        check("ciphertext" in cloud(k), "did not recover")
        local_ok(k)
    finally:
        stop(k, fake)


@case
def reset_malformed_truncated():
    fake = FaultKMS()
    k = start(fake)
    try:
        for fault in ("reset", "malformed", "truncated"):
            fake.set(fault)
            resp = cloud(k)
            check("ciphertext" not in resp, f"{fault}: {resp}")
            check(code(resp) in ("provider_unavailable", "internal"),
                  f"{fault}: {resp}")
            local_ok(k)
        fake.set("reset", 1)     # once, then fine: retried to success
        check("ciphertext" in cloud(k))
        check(k.alive())
    finally:
        stop(k, fake)


@case
def hung_endpoint_hits_deadline_while_others_served():
    fake = FaultKMS()
    k = start(fake)
    try:
        fake.set("slow:5000")
        r = Raw(k.path("app.sock"), timeout=10)
        t0 = time.time()
        r.send({"id": 5, "op": "generate", "key": "cloud"})
        local_ok(k)                    # answered while the cloud call hangs
        resp = r.recv()
        took = time.time() - t0
        check(code(resp) in ("timeout", "provider_unavailable"), resp)
        check(1.2 < took < 4, f"deadline after {took:.2f}s")
        r.close()
    finally:
        stop(k, fake)


@case
def audit_log_stops_being_writable_then_recovers():
    fake = FaultKMS()
    # The audit file may not grow past 64 KiB (as a quota would): writes
    # then fail with EFBIG while the daemon runs.
    cap = 64 * 1024

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))

    k = start(fake, preexec=limit)
    try:
        failed = None
        for i in range(2000):
            resp = call(k, {"id": i + 1, "op": "generate", "key": "local"})
            if "error" in resp:
                failed = resp
                break
            check("ciphertext" in resp)
        check(failed is not None, "audit log never filled")
        eq(code(failed), "audit_unavailable")
        check("plaintext" not in failed)
        eq(code(call(k, {"id": 1, "op": "generate", "key": "local"})),
           "audit_unavailable")
        # rotate: the new file is empty again and the chain goes on
        os.rename(k.path("audit.log"), k.path("audit.log.1"))
        k.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        local_ok(k)
        p = kmsctl(k.path("app.sock"), "audit", "verify",
                   k.path("audit.log.1"), k.path("audit.log"))
        eq(p.returncode, 0, p.stderr)
    finally:
        stop(k, fake)


@case
def audit_limit_hit_inside_a_pipelined_batch():
    # Rounds of 25 pipelined generates (one batch or a few) until the
    # file-size limit is reached: every answer that carries a key has its
    # line in the file, none of the others does, and the chain verifies.
    fake = FaultKMS()
    cap = 48 * 1024

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))

    k = start(fake, preexec=limit)
    try:
        r = Raw(k.path("app.sock"))
        ok = set()
        for rnd in range(400):
            base = 1 + rnd * 25
            body = b"".join(
                struct.pack(">I", len(b)) + b for b in
                (msgpack.packb({"id": base + i, "op": "generate",
                                "key": "local"}) for i in range(25)))
            r.send_bytes(body)
            for i in range(25):
                resp = r.recv()
                eq(resp["id"], base + i)
                if "error" in resp:
                    eq(code(resp), "audit_unavailable")
                    check("plaintext" not in resp)
                else:
                    ok.add(resp["id"])
            if len(ok) < (rnd + 1) * 25:
                break
        check(0 < len(ok) < (rnd + 1) * 25, f"{len(ok)} answered")
        r.close()
        with open(k.path("audit.log")) as f:
            lines = [json.loads(x) for x in f if '"op":"generate"' in x]
        eq(len(lines), len(ok))
        p = kmsctl(k.path("app.sock"), "audit", "verify",
                   k.path("audit.log"))
        eq(p.returncode, 0, p.stderr)
    finally:
        stop(k, fake)


@case
def kill_switch_that_cannot_be_written_fails_loudly():
    fake = FaultKMS()
    k = start(fake)
    try:
        # the flag is written through decrypt-disabled.tmp: a directory
        # there makes the write fail even for root
        os.mkdir(k.path("state/decrypt-disabled.tmp"))
        p = kmsctl(k.path("admin.sock"), "admin", "disable-decrypt",
                   "--reason", "drill")
        eq(p.returncode, 1, p.stdout)
        check(b"will not survive a restart" in p.stderr, p.stderr)
        # not pretending either way: decryption is off now
        g = call(k, {"id": 1, "op": "generate", "key": "local"})
        eq(code(call(k, {"id": 2, "op": "decrypt", "key": "local",
                         "ciphertext": g["ciphertext"]})),
           "decrypt_disabled")
        check(not os.path.exists(k.path("state/decrypt-disabled")))
        os.rmdir(k.path("state/decrypt-disabled.tmp"))
        eq(kmsctl(k.path("admin.sock"), "admin", "enable-decrypt")
           .returncode, 0)
    finally:
        stop(k, fake)


@case
def sighup_with_broken_config_keeps_serving():
    fake = FaultKMS()
    k = start(fake)
    try:
        with open(k.conf, "a") as f:
            f.write("\n[socket broken]\npath = relative/path\n")
        k.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "reload failed" not in k.logtext() and time.time() < deadline:
            time.sleep(0.05)
        check("reload failed" in k.logtext() and "absolute" in k.logtext())
        local_ok(k)
        check("ciphertext" in cloud(k))
    finally:
        stop(k, fake)


@case
def sigterm_with_100_requests_in_flight():
    fake = FaultKMS()
    k = start(fake)
    try:
        fake.set("slow:700")
        r = Raw(k.path("app.sock"), timeout=20)
        blob = b""
        for i in range(100):
            body = msgpack.packb({"id": i + 1, "op": "generate",
                                  "key": "cloud"})
            blob += struct.pack(">I", len(body)) + body
        r.send_bytes(blob)
        deadline = time.time() + 5
        while fake.inflight < 100 and time.time() < deadline:
            time.sleep(0.01)
        eq(fake.inflight, 100, "requests in flight at the KMS")
        k.proc.send_signal(signal.SIGTERM)
        got = {}
        for _ in range(100):
            resp = r.recv()
            got[resp["id"]] = resp
        eq(sorted(got), list(range(1, 101)))
        ok = sum(1 for x in got.values() if "ciphertext" in x)
        eq(ok, 100, "answers during the drain")
        check(r.closed(), "connection left open after the drain")
        eq(k.proc.wait(15), 0)
        k.proc = None
    finally:
        k.cleanup()
        fake.stop()


if __name__ == "__main__":
    run_cases()
