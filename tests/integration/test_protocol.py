#!/usr/bin/python3
"""Bad input gets a clear error and nothing else happens.

Each case sends something wrong over a raw socket, checks the answer, then
checks that the daemon is alive and still serves a fresh client.
"""
import struct
import time

import msgpack

from harness import Kmsd, Raw, case, check, eq, run_cases


def setup():
    return Kmsd().start()


def teardown(k):
    try:
        k.stop()
    finally:
        k.cleanup()


def still_serving(k):
    check(k.alive(), "kmsd died")
    r = Raw(k.path("decrypt.sock"))
    resp = r.call({"id": 7, "op": "hello"})
    r.close()
    eq(resp["id"], 7)
    check("error" not in resp, resp)


def err(resp, code, id_=None):
    check("error" in resp, f"expected error {code}, got {resp}")
    eq(resp["error"]["code"], code)
    check(isinstance(resp["error"]["message"], str) and resp["error"]["message"])
    if id_ is not None:
        eq(resp["id"], id_)


def body_case(k, body, code, id_=0, sock="decrypt.sock"):
    r = Raw(k.path(sock))
    r.send_body(body)
    err(r.recv(), code, id_)
    # the connection survives a bad frame whose length was sound
    resp = r.call({"id": 99, "op": "hello"})
    eq(resp["id"], 99)
    r.close()
    still_serving(k)


@case
def malformed_msgpack(k):
    body_case(k, b"\xc1", "bad_request")
    body_case(k, b"\x82\xa2id", "bad_request")          # truncated map
    body_case(k, b"\x81\xa2id\x01\x00", "bad_request")  # trailing byte


@case
def non_map_frame(k):
    body_case(k, msgpack.packb([1, "hello"]), "bad_request")
    body_case(k, msgpack.packb("hello"), "bad_request")


@case
def nested_container_bomb(k):
    # three nested array32 headers announcing 4G elements each
    body_case(k, b"\xdd\xff\xff\xff\xff" * 3, "bad_request")
    body_case(k, b"\x81\xa2id\xdf\xff\xff\xff\xff", "bad_request")


@case
def missing_or_wrong_fields(k):
    body_case(k, msgpack.packb({"op": "hello"}), "bad_request")
    body_case(k, msgpack.packb({"id": "1", "op": "hello"}), "bad_request")
    body_case(k, msgpack.packb({"id": -1, "op": "hello"}), "bad_request")
    body_case(k, msgpack.packb({"id": 5}), "bad_request", 5)
    body_case(k, msgpack.packb({"id": 5, "op": 3}), "bad_request", 5)
    body_case(k, msgpack.packb({"id": 5, "op": "generate"}), "bad_request", 5)
    body_case(k, msgpack.packb({"id": 5, "op": "generate", "key": 1}),
              "bad_request", 5)
    body_case(k, msgpack.packb({"id": 5, "op": "encrypt", "key": "test",
                                "plaintext": "a string"}), "bad_request", 5)
    body_case(k, msgpack.packb({"id": 5, "op": "decrypt", "key": "test",
                                "ciphertext": b"v1:AAAA"}, use_bin_type=True),
              "bad_request", 5)


@case
def unknown_op(k):
    body_case(k, msgpack.packb({"id": 6, "op": "explode"}), "unknown_op", 6)


@case
def unknown_key(k):
    body_case(k, msgpack.packb({"id": 8, "op": "generate", "key": "nope"}),
              "unknown_key", 8)


@case
def bad_contexts(k):
    # invalid UTF-8 in a value (raw str type with bad bytes)
    body = (b"\x84\xa2id\x09\xa2op\xa8generate\xa3key\xa4test"
            b"\xa7context\x81\xa1k\xa2\xc3\x28")
    body_case(k, body, "bad_request", 9)
    body_case(k, msgpack.packb({"id": 9, "op": "generate", "key": "test",
                                "context": {"k": 1}}), "bad_request", 9)
    body_case(k, msgpack.packb({"id": 9, "op": "generate", "key": "test",
                                "context": ["k", "v"]}), "bad_request", 9)


@case
def bad_ciphertexts(k):
    r = Raw(k.path("decrypt.sock"))
    good = r.call({"id": 1, "op": "encrypt", "key": "default",
                   "plaintext": b"abc"})["ciphertext"]
    n = 10
    for ct in ("AAAA", "v1", "v0:AAAA", "vX:AAAA", "v1:", "v1:!!!!",
               "v1:AAA", "v1:AAAA", good[:-8] + "AAAAAAA=",
               good[:3] + ("B" if good[3] != "B" else "C") + good[4:],
               good[:20]):
        resp = r.call({"id": n, "op": "decrypt", "key": "default",
                       "ciphertext": ct})
        err(resp, "decryption_failed", n)
        n += 1
    resp = r.call({"id": n, "op": "decrypt", "key": "default",
                   "ciphertext": "v7:" + good[3:]})
    err(resp, "version_not_active", n)
    eq(r.call({"id": 3, "op": "decrypt", "key": "default",
               "ciphertext": good})["plaintext"], b"abc")
    r.close()
    still_serving(k)


@case
def plaintext_limit(k):
    r = Raw(k.path("decrypt.sock"))
    ok = r.call({"id": 1, "op": "encrypt", "key": "default",
                 "plaintext": b"x" * 4096})
    check("ciphertext" in ok, ok)
    err(r.call({"id": 2, "op": "encrypt", "key": "default",
                "plaintext": b"x" * 4097}), "too_large", 2)
    r.close()
    still_serving(k)


@case
def oversized_frame_refused_from_length(k):
    r = Raw(k.path("decrypt.sock"))
    r.send_bytes(struct.pack(">I", 65537))   # no body follows
    err(r.recv(), "too_large", 0)
    check(r.closed(), "connection not closed after too_large")
    still_serving(k)


@case
def client_disconnects_mid_frame(k):
    for _ in range(20):
        r = Raw(k.path("decrypt.sock"))
        r.send_bytes(struct.pack(">I", 100) + b"\x85\xa2id")
        r.close()
    still_serving(k)


@case
def stalled_half_frame_is_closed(k):
    r = Raw(k.path("decrypt.sock"))
    r.send_bytes(struct.pack(">I", 100) + b"\x85")
    t = time.time()
    check(r.closed(timeout=5), "stalled client not closed")
    check(time.time() - t < 4, "closed too late")
    still_serving(k)


@case
def unknown_fields_ignored(k):
    r = Raw(k.path("decrypt.sock"))
    resp = r.call({"id": 4, "op": "generate", "key": "test", "extra": [1, 2],
                   "also": {"x": None}})
    eq(resp["id"], 4)
    check("ciphertext" in resp, resp)
    r.close()


@case
def pipelined_requests_all_answered(k):
    r = Raw(k.path("decrypt.sock"))
    blob = b""
    for i in range(1, 501):
        body = msgpack.packb({"id": i, "op": "generate", "key": "default",
                              "context": {"n": str(i)}})
        blob += struct.pack(">I", len(body)) + body
    r.send_bytes(blob)
    got = {}
    for _ in range(500):
        resp = r.recv()
        got[resp["id"]] = resp
    eq(sorted(got), list(range(1, 501)))
    # each decrypts to its key under its own context only
    for i in (1, 250, 500):
        resp = r.call({"id": 1000 + i, "op": "decrypt", "key": "default",
                       "ciphertext": got[i]["ciphertext"],
                       "context": {"n": str(i)}})
        eq(resp["plaintext"], got[i]["plaintext"])
    r.close()


@case
def client_that_never_reads(k):
    # Pipeline many requests and never read: kmsd stops reading from this
    # client (backpressure) and keeps serving others.
    r = Raw(k.path("decrypt.sock"))
    r.s.setblocking(False)
    body = msgpack.packb({"id": 1, "op": "generate", "key": "default"})
    frame = struct.pack(">I", len(body)) + body
    sent = 0
    deadline = time.time() + 3
    while time.time() < deadline and sent < 200000:
        try:
            r.s.send(frame * 64)
            sent += 64
        except BlockingIOError:
            time.sleep(0.01)
    still_serving(k)
    r.close()
    still_serving(k)


if __name__ == "__main__":
    run_cases(setup, teardown)
