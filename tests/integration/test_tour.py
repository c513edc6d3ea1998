#!/usr/bin/python3
"""The README tour and kmsctl's pinned output forms, against a real kmsd."""
import base64
import json
import os

from harness import Kmsd, case, check, eq, kmsctl, run_cases


def setup():
    return Kmsd().start()


def teardown(k):
    try:
        k.stop()
    finally:
        k.cleanup()


@case
def generate_prints_ciphertext_then_key(k):
    p = kmsctl(k.path("encrypt.sock"), "generate", "default", "-c",
               "user_id=42", check_rc=0)
    lines = p.stdout.decode().split("\n")
    eq(len(lines), 3, "two lines and a final newline:")
    eq(lines[2], "")
    check(lines[0].startswith("v1:"), lines[0])
    eq(len(base64.b64decode(lines[1], validate=True)), 32)
    # the same key comes back through the decrypt socket
    p2 = kmsctl(k.path("decrypt.sock"), "decrypt", "default", "-c",
                "user_id=42", lines[0], check_rc=0)
    eq(p2.stdout, base64.b64decode(lines[1]))


@case
def generate_json(k):
    p = kmsctl(k.path("encrypt.sock"), "--json", "generate", "test",
               check_rc=0)
    obj = json.loads(p.stdout)
    eq(sorted(obj), ["ciphertext", "plaintext"])
    check(obj["ciphertext"].startswith("v1:insecure+data+A"))
    eq(len(base64.b64decode(obj["plaintext"])), 32)


@case
def encrypt_then_decrypt(k):
    p = kmsctl(k.path("encrypt.sock"), "encrypt", "default", "-c", "a=1",
               input=b"secret", check_rc=0)
    ct = p.stdout.decode().strip()
    check(ct.startswith("v1:"))
    eq(p.stdout.decode(), ct + "\n")
    d = kmsctl(k.path("decrypt.sock"), "decrypt", "default", "-c", "a=1",
               ct, check_rc=0)
    eq(d.stdout, b"secret")
    # ciphertext on stdin works too
    d = kmsctl(k.path("decrypt.sock"), "decrypt", "default", "-c", "a=1",
               input=(ct + "\n").encode(), check_rc=0)
    eq(d.stdout, b"secret")


@case
def encrypt_only_socket_refuses_decrypt(k):
    ct = kmsctl(k.path("encrypt.sock"), "encrypt", "default",
                input=b"x", check_rc=0).stdout.decode().strip()
    d = kmsctl(k.path("encrypt.sock"), "decrypt", "default", ct)
    eq(d.returncode, 1)
    eq(d.stdout, b"")
    check(d.stderr.decode().startswith("kmsctl: permission_denied: "),
          d.stderr)


@case
def wrong_context_fails(k):
    for key in ("default", "test"):
        ct = kmsctl(k.path("encrypt.sock"), "encrypt", key, "-c", "id=1",
                    input=b"x", check_rc=0).stdout.decode().strip()
        for args in (["-c", "id=2"], ["-c", "id=1", "-c", "x=y"], [],
                     ["--empty-context"]):
            d = kmsctl(k.path("decrypt.sock"), "decrypt", key, *args, ct)
            eq(d.returncode, 1, f"{key} {args}")
            check(d.stderr.decode().startswith(
                "kmsctl: decryption_failed: "), d.stderr)


@case
def empty_context_differs_from_none(k):
    for key in ("default", "test"):
        ct = kmsctl(k.path("encrypt.sock"), "encrypt", key,
                    "--empty-context", input=b"e",
                    check_rc=0).stdout.decode().strip()
        d = kmsctl(k.path("decrypt.sock"), "decrypt", key, ct)
        eq(d.returncode, 1)
        d = kmsctl(k.path("decrypt.sock"), "decrypt", key,
                   "--empty-context", ct, check_rc=0)
        eq(d.stdout, b"e")


@case
def unknown_key(k):
    d = kmsctl(k.path("decrypt.sock"), "generate", "nosuchkey")
    eq(d.returncode, 1)
    check(d.stderr.decode().startswith("kmsctl: unknown_key: "), d.stderr)


@case
def encrypt_only_test_key_never_decrypts(k):
    ct = kmsctl(k.path("encrypt.sock"), "encrypt", "enconly", input=b"z",
                check_rc=0).stdout.decode().strip()
    d = kmsctl(k.path("decrypt.sock"), "decrypt", "enconly", ct)
    eq(d.returncode, 1)
    check(d.stderr.decode().startswith("kmsctl: decryption_failed: "))


@case
def hello_names_socket_and_rights(k):
    p = kmsctl(k.path("encrypt.sock"), "--json", "hello", check_rc=0)
    obj = json.loads(p.stdout)
    eq(obj["socket"], "encrypt")
    eq(sorted(obj["allow"]), ["encrypt", "generate"])
    names = sorted(x["name"] for x in obj["keys"])
    eq(names, ["default", "enconly", "test"])


@case
def usage_errors_exit_2(k):
    eq(kmsctl(k.path("encrypt.sock")).returncode, 2)
    eq(kmsctl(k.path("encrypt.sock"), "frobnicate").returncode, 2)
    eq(kmsctl(k.path("encrypt.sock"), "generate").returncode, 2)


@case
def missing_socket_is_a_clear_error(k):
    d = kmsctl(k.path("nothere.sock"), "hello")
    eq(d.returncode, 1)
    check(b"connection_failed" in d.stderr, d.stderr)


@case
def master_key_file_is_private(k):
    st = os.stat(k.path("state/local-dev.key"))
    eq(st.st_mode & 0o777, 0o600)
    eq(st.st_size, 32)
    eq(os.stat(k.path("encrypt.sock")).st_mode & 0o777, 0o600)


if __name__ == "__main__":
    run_cases(setup, teardown)
