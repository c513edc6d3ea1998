#!/usr/bin/python3
"""The data-key cache ([key] cache_ttl, cache_max_uses): repeated decrypts
of one stored value reach the KMS once, every one is still audited (with
"cache":"hit") and counted, a different context or version is another
decrypt, and the cache is emptied when decryption is disabled, on reload
and when an entry expires or is used up."""
import json
import os
import signal
import subprocess
import time

from fault_kms import FaultKMS
from harness import KMSD, Kmsd, Raw, case, check, eq, kmsctl, run_cases

CONFIG = """
[kmsd]
state_dir = {dir}/state
admin_socket = {dir}/admin.sock
audit_log = {dir}/audit.log

[aws]
endpoint = %s
region = us-east-1

[key cloud]
key_id = arn:aws:kms:us-east-1:111122223333:key/cache
cache_ttl = %s
cache_max_uses = %d

[key plain]
key_id = arn:aws:kms:us-east-1:111122223333:key/nocache

[socket app]
path = {dir}/app.sock
allow = generate, encrypt, decrypt, stats
"""

ENV = {"AWS_ACCESS_KEY_ID": "AKIDCACHETEST", "AWS_SECRET_ACCESS_KEY":
       "cache/secret/key", "AWS_EC2_METADATA_DISABLED": "true"}
CTX = {"model_name": "User", "model_id": "7"}


def with_kmsd(fn, ttl="30s", uses=0):
    fake = FaultKMS()
    k = Kmsd(config=CONFIG % (fake.url, ttl, uses), env=ENV)
    try:
        k.start()
        fn(k, fake)
        k.stop()
    finally:
        fake.stop()
        k.cleanup()


def call(k, req):
    r = Raw(k.path("app.sock"))
    try:
        return r.call(req)
    finally:
        r.close()


def generate(k, key="cloud", ctx=CTX):
    g = call(k, {"id": 1, "op": "generate", "key": key, "context": ctx})
    check("ciphertext" in g, g)
    return g


def decrypt(k, g, key="cloud", ctx=CTX):
    d = call(k, {"id": 2, "op": "decrypt", "key": key,
                 "ciphertext": g["ciphertext"], "context": ctx})
    check("error" not in d, d)
    eq(d["plaintext"], g["plaintext"])
    return d


def decrypt_lines(k):
    """The decrypt entries of the audit log, in order (the daemon writes
    a turn's entries before answering, so they are there)."""
    with open(k.path("audit.log")) as f:
        return [e for e in map(json.loads, f) if e["op"] == "decrypt"]


def admin(k, *args):
    p = kmsctl(k.path("admin.sock"), "admin", *args)
    eq(p.returncode, 0, p.stderr)
    return p


def stats(k):
    return json.loads(call(k, {"id": 9, "op": "stats"})["body"])


@case
def repeated_decrypts_reach_the_kms_once():
    def t(k, fake):
        g = generate(k)
        before = fake.requests
        for _ in range(5):
            decrypt(k, g)
        eq(fake.requests - before, 1)
        lines = decrypt_lines(k)
        eq(len(lines), 5)
        eq([e.get("cache") for e in lines], [None] + ["hit"] * 4)
        for e in lines:
            eq(e["result"], "ok")
            eq(e["key"], "cloud")
        # A key without cache_ttl: every decrypt goes to the KMS.
        p = generate(k, "plain")
        before = fake.requests
        for _ in range(3):
            decrypt(k, p, "plain")
        eq(fake.requests - before, 3)
    with_kmsd(t)


@case
def another_context_is_another_decrypt():
    def t(k, fake):
        g = generate(k)
        decrypt(k, g)
        before = fake.requests
        # The fake does not bind contexts, so this one succeeds at the
        # KMS; it must not be answered from the first one's entry.
        decrypt(k, g, ctx={"model_name": "User", "model_id": "8"})
        decrypt(k, g, ctx=None)
        eq(fake.requests - before, 2)
        eq([e.get("cache") for e in decrypt_lines(k)], [None] * 3)
    with_kmsd(t)


@case
def max_uses_then_back_to_the_kms():
    def t(k, fake):
        g = generate(k)
        before = fake.requests
        for _ in range(7):
            decrypt(k, g)
        # miss, hit, hit, miss (used up), hit, hit, miss
        eq(fake.requests - before, 3)
        eq([e.get("cache") for e in decrypt_lines(k)],
           [None, "hit", "hit", None, "hit", "hit", None])
    with_kmsd(t, uses=2)


@case
def entries_expire():
    def t(k, fake):
        g = generate(k)
        decrypt(k, g)
        decrypt(k, g)
        time.sleep(1.3)
        before = fake.requests
        decrypt(k, g)
        eq(fake.requests - before, 1)
        eq([e.get("cache") for e in decrypt_lines(k)], [None, "hit", None])
    with_kmsd(t, ttl="1s")


@case
def disable_decrypt_and_reload_empty_it():
    def t(k, fake):
        g = generate(k)
        decrypt(k, g)
        decrypt(k, g)
        admin(k, "disable-decrypt", "--reason", "drill")
        d = call(k, {"id": 3, "op": "decrypt", "key": "cloud",
                     "ciphertext": g["ciphertext"], "context": CTX})
        eq(d["error"]["code"], "decrypt_disabled")
        admin(k, "enable-decrypt")
        before = fake.requests
        decrypt(k, g)
        eq(fake.requests - before, 1)      # not from the cache
        decrypt(k, g)
        eq(fake.requests - before, 1)      # cached again
        k.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "reloaded" not in k.logtext() and time.time() < deadline:
            time.sleep(0.05)
        check("reloaded" in k.logtext(), k.logtext())
        decrypt(k, g)
        eq(fake.requests - before, 2)      # the reload emptied it
        eq([e.get("cache") for e in decrypt_lines(k)],
           [None, "hit", None, None, "hit", None])
        # counted: operations as usual, hits on their own
        st = stats(k)
        eq(st["cache"]["hits"], 2)
        ok = [r for r in st["operations"] if r["op"] == "decrypt" and
              r["key"] == "cloud" and r["result"] == "ok"]
        eq(sum(r["count"] for r in ok), 5)
    with_kmsd(t)


@case
def cache_options_are_checked():
    for ttl, uses in (("2h", 0), ("soon", 0), ("30s", -1), ("0", 5)):
        fake = FaultKMS()
        k = Kmsd(config=CONFIG % (fake.url, ttl, uses), env=ENV)
        try:
            p = subprocess.run([KMSD, "--check-config", "--config",
                                k.conf], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=10)
            check(p.returncode != 0, f"{ttl} {uses} accepted")
            check(b"cache_" in p.stderr, p.stderr)
            check(os.path.basename(k.conf).encode() in p.stderr, p.stderr)
        finally:
            fake.stop()
            k.cleanup()


if __name__ == "__main__":
    run_cases()
