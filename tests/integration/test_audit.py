#!/usr/bin/python3
"""The audit log: one JSON line per operation, written before the answer,
hash-chained (kmsctl audit verify), fail-closed, reopened for logrotate,
and free of plaintexts and data keys."""
import base64
import json
import os
import signal
import struct
import subprocess
import time

import msgpack

from harness import KMSCTL, Kmsd, Raw, case, check, eq, run_cases

CONFIG = """
[kmsd]
state_dir = {dir}/state
audit_log = {dir}/audit.log

[key default]
key_id = local/dev

[socket app]
path = {dir}/app.sock
allow = generate, encrypt, decrypt, rewrap

[socket enc]
path = {dir}/enc.sock
allow = encrypt
"""


def verify(*files):
    return subprocess.run([KMSCTL, "audit", "verify", *files],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=30)


def lines(path):
    with open(path) as f:
        return [json.loads(x) for x in f]


def workload(k):
    """Some ok, failed and denied operations; returns the secrets seen."""
    r = Raw(k.path("app.sock"))
    g = r.call({"id": 1, "op": "generate", "key": "default",
                "context": {"user": "42"}})
    e = r.call({"id": 2, "op": "encrypt", "key": "default",
                "plaintext": b"TOPSECRET-PLAINTEXT-MARKER"})
    d = r.call({"id": 3, "op": "decrypt", "key": "default",
                "ciphertext": g["ciphertext"], "context": {"user": "42"}})
    bad = r.call({"id": 4, "op": "decrypt", "key": "default",
                  "ciphertext": g["ciphertext"], "context": {"user": "43"}})
    eq(bad["error"]["code"], "decryption_failed")
    r.close()
    r = Raw(k.path("enc.sock"))
    eq(r.call({"id": 5, "op": "decrypt", "key": "default",
               "ciphertext": e["ciphertext"]})["error"]["code"],
       "permission_denied")
    r.close()
    eq(d["plaintext"], g["plaintext"])
    return [g["plaintext"], b"TOPSECRET-PLAINTEXT-MARKER"]


def with_kmsd(fn, config=CONFIG):
    k = Kmsd(config=config)
    try:
        k.start()
        fn(k)
        k.stop()
    finally:
        k.cleanup()


@case
def entries_carry_who_what_and_result():
    def t(k):
        workload(k)
        ls = lines(k.path("audit.log"))
        eq([x["op"] for x in ls],
           ["generate", "encrypt", "decrypt", "decrypt", "decrypt"])
        eq([x["result"] for x in ls], ["ok", "ok", "ok", "failed", "denied"])
        eq(ls[3]["error"], "decryption_failed")
        eq(ls[4]["error"], "permission_denied")
        eq(ls[4]["socket"], "enc")
        for x in ls:
            eq(x["peer"]["uid"], os.getuid())
            eq(x["peer"]["pid"] > 0, True)
            check(x["peer"]["exe"].endswith("python3") or
                  "python" in x["peer"]["exe"], x["peer"])
            eq(x["key"], "default")
            eq(len(x["prev"]), 64)
            check(isinstance(x["duration_us"], int))
            check(x["time"].endswith("Z"))
        eq(ls[0]["context"], {"user": "42"})
        eq(ls[0]["version"], 1)
        eq(ls[0]["prev"], "0" * 64)
    with_kmsd(t)


@case
def verify_passes_then_fails_on_any_edit():
    def t(k):
        workload(k)
        path = k.path("audit.log")
        p = verify(path)
        eq(p.returncode, 0, p.stderr)
        with open(path, "rb") as f:
            orig = f.read()
        ls = orig.split(b"\n")
        # change one byte of line 2
        b = bytearray(orig)
        pos = len(ls[0]) + 1 + ls[1].index(b'"ok"') + 1
        b[pos] = ord("K")
        tampered = path + ".t1"
        with open(tampered, "wb") as f:
            f.write(bytes(b))
        p = verify(tampered)
        eq(p.returncode, 1)
        check(f"{tampered}:3:".encode() in p.stdout + p.stderr,
              p.stdout + p.stderr)
        # remove line 3
        removed = path + ".t2"
        with open(removed, "wb") as f:
            f.write(b"\n".join(ls[:2] + ls[3:]))
        p = verify(removed)
        eq(p.returncode, 1)
        check(f"{removed}:3:".encode() in p.stdout + p.stderr,
              p.stdout + p.stderr)
    with_kmsd(t)


@case
def no_secrets_in_any_log():
    def t(k):
        secrets = workload(k)
        for path in (k.path("audit.log"), k.log.name):
            with open(path, "rb") as f:
                text = f.read()
            for sec in secrets:
                for form in (sec, base64.b64encode(sec), sec.hex().encode()):
                    check(form not in text, f"secret found in {path}")
    with_kmsd(t)


@case
def full_disk_fails_closed():
    cfg = CONFIG.replace("audit_log = {dir}/audit.log",
                         "audit_log = /dev/full")

    def t(k):
        r = Raw(k.path("app.sock"))
        for req in ({"id": 1, "op": "generate", "key": "default"},
                    {"id": 2, "op": "encrypt", "key": "default",
                     "plaintext": b"x"},
                    {"id": 3, "op": "decrypt", "key": "default",
                     "ciphertext": "v1:AAAA"}):
            resp = r.call(req)
            eq(resp["error"]["code"], "audit_unavailable", req["op"])
            check("plaintext" not in resp and "ciphertext" not in resp)
        # hello needs no audit entry and still works
        eq(r.call({"id": 4, "op": "hello"})["id"], 4)
        r.close()
        check("audit_unavailable" in k.logtext())
    with_kmsd(t, cfg)


@case
def failed_batch_answers_each_entry_in_order():
    # Pipelined requests in one write are audited as one batch (one
    # write(2) per loop turn); when it cannot be written every audited
    # answer in it becomes audit_unavailable, the others stay, in order.
    cfg = CONFIG.replace("audit_log = {dir}/audit.log",
                         "audit_log = /dev/full")

    def t(k):
        r = Raw(k.path("app.sock"))
        reqs = [{"id": 1, "op": "hello"},
                {"id": 2, "op": "generate", "key": "default"},
                {"id": 3, "op": "hello"},
                {"id": 4, "op": "encrypt", "key": "default",
                 "plaintext": b"secret"},
                {"id": 5, "op": "generate", "key": "nope"},
                {"id": 6, "op": "hello"}]
        body = [msgpack.packb(q, use_bin_type=True) for q in reqs]
        r.send_bytes(b"".join(struct.pack(">I", len(b)) + b for b in body))
        got = [r.recv() for _ in reqs]
        eq([g["id"] for g in got], [q["id"] for q in reqs])
        for q, g in zip(reqs, got):
            if q["op"] == "hello":
                check("error" not in g and "version" in g, g)
            else:
                eq(g["error"]["code"], "audit_unavailable", g)
                check("plaintext" not in g and "ciphertext" not in g, g)
        r.close()
    with_kmsd(t, cfg)


@case
def reopen_for_logrotate_keeps_the_chain():
    def t(k):
        workload(k)
        path = k.path("audit.log")
        os.rename(path, path + ".1")
        k.proc.send_signal(signal.SIGUSR1)
        deadline = time.time() + 5
        while "reopened" not in k.logtext() and time.time() < deadline:
            time.sleep(0.05)
        workload(k)
        eq(verify(path + ".1", path).returncode, 0)
        p = verify(path)
        eq(p.returncode, 0, p.stderr)   # mid-chain start is noted, not fatal
        eq(verify(path, path + ".1").returncode, 1)
    with_kmsd(t)


@case
def hmac_mode_hides_the_context():
    cfg = CONFIG.replace("audit_log = {dir}/audit.log",
                         "audit_log = {dir}/audit.log\naudit_context = hmac")

    def t(k):
        workload(k)
        ls = lines(k.path("audit.log"))
        check(all("context" not in x for x in ls))
        check(len(ls[0]["context_hmac"]) == 64)
        with open(k.path("audit.log"), "rb") as f:
            check(b'"user"' not in f.read())
        key = k.path("state/audit-hmac.key")
        eq(os.stat(key).st_mode & 0o777, 0o600)
        eq(verify(k.path("audit.log")).returncode, 0)
    with_kmsd(t, cfg)


if __name__ == "__main__":
    run_cases()
