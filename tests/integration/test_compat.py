#!/usr/bin/python3
"""Byte compatibility with kms_encrypted's insecure-test-key provider.

The vectors (tests/vectors/kms_encrypted_test_provider.json, see
tests/vectors/SOURCE.md) were made by running the real gem. A stored value
the gem wrote must decrypt in kmsd under the same context, and kmsd must
write exactly the bytes the gem writes (the test provider is
deterministic), so the gem can read what kmsd stores.
"""
import json
import os

from harness import Kmsd, Raw, case, check, eq, run_cases

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = json.load(open(os.path.join(HERE, "..", "vectors",
                                      "kms_encrypted_test_provider.json")))

CONFIG = """
[kmsd]
state_dir = {dir}/state
context_json = %s

[key test]
key_id = insecure-test-key
version = 2
key_id.1 = insecure-test-key

[socket s]
path = {dir}/s.sock
allow = encrypt, decrypt
"""


def usable(v):
    # kmsd contexts have string keys only; the gem's mixed symbol/string
    # case depends on Ruby symbols, which no kmsd client can send.
    return "symbol" not in v["name"]


def variants():
    """(style, vector, stored, context) for every vector and JSON style."""
    for v in VECTORS["vectors"]:
        if not usable(v):
            continue
        ctx = json.loads(v["context_json"]) if "context_json" in v else None
        yield "plain", v, v["stored"], ctx
        a = v.get("activesupport")
        yield "activesupport", v, (a["stored"] if isinstance(a, dict)
                                   else v["stored"]), ctx


def setup():
    ks = {}
    for style in ("plain", "activesupport"):
        ks[style] = Kmsd(config=CONFIG % style).start()
    return ks


def teardown(ks):
    for k in ks.values():
        try:
            k.stop()
        finally:
            k.cleanup()


def request(op, v, ctx, **kw):
    r = {"id": 1, "op": op, "key": "test", **kw}
    if ctx is not None:
        r["context"] = ctx
    return r


@case
def gem_values_decrypt_in_kmsd(ks):
    n = 0
    for style, v, stored, ctx in variants():
        r = Raw(ks[style].path("s.sock"))
        resp = r.call(request("decrypt", v, ctx, ciphertext=stored))
        r.close()
        check("plaintext" in resp, f"{v['name']} ({style}): {resp}")
        eq(resp["plaintext"].hex(), v["plaintext_hex"], v["name"])
        n += 1
    check(n >= 12, f"only {n} variants")


@case
def kmsd_writes_the_gem_bytes(ks):
    for style, v, stored, ctx in variants():
        # kmsd wraps with the current version, 2; the rest is the gem's
        want = stored[3:]
        r = Raw(ks[style].path("s.sock"))
        resp = r.call(request("encrypt", v, ctx,
                              plaintext=bytes.fromhex(v["plaintext_hex"])))
        r.close()
        check("ciphertext" in resp, resp)
        eq(resp["ciphertext"], "v2:" + want, f"{v['name']} ({style})")


@case
def wrong_context_is_refused(ks):
    for style, v, stored, ctx in variants():
        other = dict(ctx or {}, extra="1")
        r = Raw(ks[style].path("s.sock"))
        resp = r.call(request("decrypt", v, other, ciphertext=stored))
        r.close()
        eq(resp.get("error", {}).get("code"), "decryption_failed", v["name"])


@case
def activesupport_escapes_matter(ks):
    # The vector with < > & decrypts only under the style that wrote it.
    v = next(x for x in VECTORS["vectors"]
             if isinstance(x.get("activesupport"), dict))
    ctx = json.loads(v["context_json"])
    r = Raw(ks["plain"].path("s.sock"))
    resp = r.call(request("decrypt", v, ctx,
                          ciphertext=v["activesupport"]["stored"]))
    r.close()
    eq(resp.get("error", {}).get("code"), "decryption_failed")


if __name__ == "__main__":
    run_cases(setup, teardown)
