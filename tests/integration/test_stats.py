#!/usr/bin/python3
"""Counters equal the operations made, as JSON and as Prometheus text,
and the node-exporter textfile."""
import json
import os
import re
import time

from harness import Kmsd, Raw, case, check, eq, kmsctl, run_cases

CONFIG = """
[kmsd]
state_dir = {dir}/state
metrics_textfile = {dir}/kmsd.prom
metrics_interval = 200ms

[key default]
key_id = local/dev

[key other]
key_id = insecure-test-key

[socket app]
path = {dir}/app.sock
allow = generate, encrypt, decrypt, stats

[socket enc]
path = {dir}/enc.sock
allow = encrypt, stats
"""

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prom(text):
    """Validate the exposition format; return {(name, labels): value}."""
    out, helped, typed = {}, set(), set()
    check(text.endswith("\n"), "no final newline")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            check(name not in helped, f"two HELP for {name}")
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            check(kind in ("counter", "gauge"), line)
            check(name not in typed, f"two TYPE for {name}")
            typed.add(name)
            continue
        m = SAMPLE.match(line)
        check(m is not None, f"bad sample line {line!r}")
        labels = {}
        rest = m.group(3) or ""
        while rest:
            lm = LABEL.match(rest)
            check(lm is not None, f"bad labels in {line!r}")
            labels[lm.group(1)] = lm.group(2)
            rest = rest[lm.end():]
        check(m.group(1) in typed, f"sample before TYPE: {line}")
        out[(m.group(1), tuple(sorted(labels.items())))] = float(m.group(4))
    return out


def setup():
    k = Kmsd(config=CONFIG).start()
    r = Raw(k.path("app.sock"))
    g = [r.call({"id": i + 1, "op": "generate", "key": "default"})
         for i in range(7)]
    for i in range(3):
        check("plaintext" in r.call({"id": 100 + i, "op": "decrypt",
                                     "key": "default",
                                     "ciphertext": g[i]["ciphertext"]}))
    for i in range(2):
        eq(r.call({"id": 200 + i, "op": "decrypt", "key": "default",
                   "ciphertext": "v1:AAAAAAAA"})["error"]["code"],
           "decryption_failed")
    eq(r.call({"id": 300, "op": "generate", "key": "nosuch"})["error"]["code"],
       "unknown_key")
    r.close()
    e = Raw(k.path("enc.sock"))
    for i in range(4):
        eq(e.call({"id": 400 + i, "op": "decrypt", "key": "other",
                   "ciphertext": "v1:AAAA"})["error"]["code"],
           "permission_denied")
    e.close()
    return k


def teardown(k):
    try:
        k.stop()
    finally:
        k.cleanup()


def row(rows, **want):
    got = [x for x in rows if all(x.get(a) == b for a, b in want.items())]
    eq(len(got), 1, f"rows matching {want}:")
    return got[0]["count"]


@case
def json_counts_match(k):
    p = kmsctl(k.path("app.sock"), "stats", check_rc=0)
    st = json.loads(p.stdout)
    ops = st["operations"]
    eq(row(ops, op="generate", key="default", socket="app", result="ok"), 7)
    eq(row(ops, op="decrypt", key="default", socket="app", result="ok"), 3)
    eq(row(ops, op="decrypt", key="default", socket="app", result="failed"),
       2)
    eq(row(ops, op="decrypt", socket="enc", result="denied"), 4)
    eq(row(ops, op="generate", key="", socket="app", result="failed"), 1)
    eq(row(st["peers"], uid=os.getuid(), op="decrypt", result="denied"), 4)
    eq(st["decrypts"]["1m"], 3)
    eq(st["decrypts"]["15m"], 3)
    eq(st["decrypt_disabled"], False)


@case
def prometheus_text_is_valid_and_matches(k):
    p = kmsctl(k.path("app.sock"), "stats", "--prometheus", check_rc=0)
    m = parse_prom(p.stdout.decode())
    key = ("kmsd_operations_total", (("key", "default"), ("op", "generate"),
                                     ("result", "ok"), ("socket", "app")))
    eq(m[key], 7.0)
    eq(m[("kmsd_decrypts_recent", (("window", "1m"),))], 3.0)
    eq(m[("kmsd_decrypt_disabled", ())], 0.0)


@case
def textfile_written_atomically(k):
    path = k.path("kmsd.prom")
    deadline = time.time() + 5
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            if "result=\"denied\"" in text:
                break
        time.sleep(0.1)
    m = parse_prom(text)
    check(any(n == "kmsd_operations_total" for n, _ in m))
    left = [x for x in os.listdir(k.dir) if x.startswith("kmsd.prom.")]
    eq(left, [], "temporary files left:")


@case
def stats_needs_the_right(k):
    p = kmsctl(k.path("app.sock"), "stats")
    eq(p.returncode, 0)
    # a socket without the stats right
    r = Raw(k.path("app.sock"))
    eq(r.call({"id": 1, "op": "stats", "format": "yaml"})["error"]["code"],
       "bad_request")
    r.close()


if __name__ == "__main__":
    run_cases(setup, teardown)
