#!/usr/bin/python3
"""The admin socket: status, the decrypt kill switch (durable across
restarts), reload (SIGHUP and the admin op, with a bad config kept out),
and the decrypt breaker."""
import json
import os
import signal
import stat
import time

from harness import Kmsd, Raw, case, check, eq, kmsctl, run_cases

CONFIG = """
[kmsd]
state_dir = {dir}/state
admin_socket = {dir}/admin.sock
audit_log = {dir}/audit.log

[key default]
key_id = local/dev

[socket app]
path = {dir}/app.sock
allow = generate, encrypt, decrypt, rewrap
"""


def admin(k, *args):
    return kmsctl(k.path("admin.sock"), "admin", *args)


def status(k):
    p = admin(k, "status")
    eq(p.returncode, 0, p.stderr)
    return json.loads(p.stdout)


def with_kmsd(fn, config=CONFIG):
    k = Kmsd(config=config)
    try:
        k.start()
        fn(k)
        k.stop()
    finally:
        k.cleanup()


def roundtrip(k):
    r = Raw(k.path("app.sock"))
    g = r.call({"id": 1, "op": "generate", "key": "default"})
    d = r.call({"id": 2, "op": "decrypt", "key": "default",
                "ciphertext": g["ciphertext"]})
    r.close()
    return g, d


@case
def status_describes_the_daemon():
    def t(k):
        st = status(k)
        eq(st["decrypt_disabled"], False)
        eq([x["name"] for x in st["keys"]], ["default"])
        eq(st["keys"][0]["versions"][0]["provider"], "local")
        eq(sorted(s["name"] for s in st["sockets"]), ["admin", "app"])
        eq(os.stat(k.path("admin.sock")).st_uid, 0)
        eq(stat.S_IMODE(os.stat(k.path("admin.sock")).st_mode), 0o600)
    with_kmsd(t)


@case
def admin_ops_only_on_the_admin_socket():
    def t(k):
        r = Raw(k.path("app.sock"))
        for op in ("status", "disable_decrypt", "enable_decrypt", "reload"):
            eq(r.call({"id": 1, "op": op})["error"]["code"],
               "permission_denied", op)
        r.close()
        a = Raw(k.path("admin.sock"))
        for op in ("generate", "decrypt", "stats", "keys"):
            eq(a.call({"id": 1, "op": op, "key": "default",
                       "ciphertext": "v1:AAAA"})["error"]["code"],
               "permission_denied", op)
        a.close()
        eq(status(k)["decrypt_disabled"], False)
    with_kmsd(t)


@case
def kill_switch_survives_restart():
    k = Kmsd(config=CONFIG)
    try:
        k.start()
        g, d = roundtrip(k)
        eq(d["plaintext"], g["plaintext"])
        p = admin(k, "disable-decrypt", "--reason", "incident 42")
        eq(p.returncode, 0, p.stderr)
        check(os.path.exists(k.path("state/decrypt-disabled")))
        r = Raw(k.path("app.sock"))
        eq(r.call({"id": 1, "op": "decrypt", "key": "default",
                   "ciphertext": g["ciphertext"]})["error"]["code"],
           "decrypt_disabled")
        eq(r.call({"id": 2, "op": "rewrap", "key": "default",
                   "ciphertext": g["ciphertext"]})["error"]["code"],
           "decrypt_disabled")
        check("ciphertext" in r.call({"id": 3, "op": "generate",
                                      "key": "default"}))
        check("ciphertext" in r.call({"id": 4, "op": "encrypt",
                                      "key": "default", "plaintext": b"x"}))
        r.close()
        k.stop()
        k.start()
        st = status(k)
        eq(st["decrypt_disabled"], True)
        check("incident 42" in st["disabled_reason"], st)
        eq(roundtrip(k)[1]["error"]["code"], "decrypt_disabled")
        eq(admin(k, "enable-decrypt").returncode, 0)
        check(not os.path.exists(k.path("state/decrypt-disabled")))
        g, d = roundtrip(k)
        eq(d["plaintext"], g["plaintext"])
        k.stop()
        k.start()
        eq(status(k)["decrypt_disabled"], False)
        k.stop()
    finally:
        k.cleanup()


NEW_KEY = """
[key extra]
key_id = insecure-test-key
"""


@case
def reload_adds_keys_without_dropping_connections():
    def t(k):
        held = Raw(k.path("app.sock"))
        eq(held.call({"id": 1, "op": "hello"})["id"], 1)
        with open(k.conf, "a") as f:
            f.write(NEW_KEY)
        p = admin(k, "reload")
        eq(p.returncode, 0, p.stderr)
        # the held connection sees the new key
        g = held.call({"id": 2, "op": "generate", "key": "extra"})
        check("ciphertext" in g, g)
        held.close()
    with_kmsd(t)


@case
def sighup_reloads_and_bad_config_is_kept_out():
    def t(k):
        with open(k.conf, "a") as f:
            f.write(NEW_KEY)
        k.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "reloaded" not in k.logtext() and time.time() < deadline:
            time.sleep(0.05)
        check("reloaded" in k.logtext(), k.logtext())
        with open(k.conf, "a") as f:
            f.write("[key broken]\nkey_id =\n")
        p = admin(k, "reload")
        eq(p.returncode, 1)
        check(b"kmsd.conf:" in p.stderr and b"empty" in p.stderr, p.stderr)
        # still serving, with the last good config
        r = Raw(k.path("app.sock"))
        check("ciphertext" in r.call({"id": 1, "op": "generate",
                                      "key": "extra"}))
        r.close()
        check(k.alive())
    with_kmsd(t)


@case
def reload_removes_a_socket():
    def t(k):
        extra = '\n[socket two]\npath = {dir}/two.sock\nallow = encrypt\n'
        with open(k.conf, "a") as f:
            f.write(extra.format(dir=k.dir))
        eq(admin(k, "reload").returncode, 0)
        check(os.path.exists(k.path("two.sock")))
        with open(k.conf, "w") as f:
            f.write(CONFIG.format(dir=k.dir))
        eq(admin(k, "reload").returncode, 0)
        check(not os.path.exists(k.path("two.sock")))
    with_kmsd(t)


BREAKER = CONFIG.replace("audit_log = {dir}/audit.log",
                         "audit_log = {dir}/audit.log\ndecrypt_limit = 5/min")


@case
def breaker_trips_at_limit_plus_one():
    def t(k):
        r = Raw(k.path("app.sock"))
        g = r.call({"id": 1, "op": "generate", "key": "default"})
        for i in range(5):
            d = r.call({"id": 10 + i, "op": "decrypt", "key": "default",
                        "ciphertext": g["ciphertext"]})
            eq(d.get("plaintext"), g["plaintext"], f"decrypt {i + 1}")
        d = r.call({"id": 20, "op": "decrypt", "key": "default",
                    "ciphertext": g["ciphertext"]})
        eq(d["error"]["code"], "decrypt_disabled")
        st = status(k)
        eq(st["decrypt_disabled"], True)
        check("breaker" in st["disabled_reason"], st)
        check("MESSAGE_ID=28c54d5b718b4b75be357e60a26fa78d" in k.logtext())
        check(os.path.exists(k.path("state/decrypt-disabled")))
        with open(k.path("audit.log")) as f:
            ops = [json.loads(x)["op"] for x in f]
        check("breaker_trip" in ops, ops)
        # generate still works; enable brings decrypt back
        check("ciphertext" in r.call({"id": 21, "op": "generate",
                                      "key": "default"}))
        eq(admin(k, "enable-decrypt").returncode, 0)
        r.close()
    with_kmsd(t, BREAKER)


PER_KEY = CONFIG.replace("key_id = local/dev",
                         "key_id = local/dev\ndecrypt_limit = 3/min")


@case
def per_key_breaker():
    def t(k):
        r = Raw(k.path("app.sock"))
        g = r.call({"id": 1, "op": "generate", "key": "default"})
        for i in range(3):
            check("plaintext" in r.call({"id": 2, "op": "decrypt",
                                         "key": "default",
                                         "ciphertext": g["ciphertext"]}))
        eq(r.call({"id": 3, "op": "decrypt", "key": "default",
                   "ciphertext": g["ciphertext"]})["error"]["code"],
           "decrypt_disabled")
        check("key default" in status(k)["disabled_reason"])
        r.close()
    with_kmsd(t, PER_KEY)


if __name__ == "__main__":
    run_cases()
