#!/usr/bin/python3
"""The SQLite example (examples/users.c) end to end against a real kmsd.

Issue 10, items 2 and 3. A row the Rails gems wrote (kms_encrypted's stored
key under insecure-test-key, Lockbox's email box: see
tests/vectors/lockbox/SOURCE.md) is read by the C program through kmsd; a
row the C program wrote is opened with Lockbox's layout by Python's
cryptography AESGCM (and by Lockbox itself when ruby-lockbox is installed),
after kmsd unwraps its key. Then: the encrypt-only socket cannot read, a
changed context or a moved or changed field cannot be read, and `rotate`,
on a socket that allows nothing but rewrap, moves every stored key from
version 1 to version 2 while the email boxes stay byte for byte the same.
"""
import base64
import json
import os
import shutil
import sqlite3
import subprocess

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harness import Kmsd, Raw, case, check, eq, run_cases

HERE = os.path.dirname(os.path.abspath(__file__))
USERS = os.environ.get("USERS_EXAMPLE", "")
VEC = json.load(open(os.path.join(HERE, "..", "vectors", "lockbox",
                                  "kms_key.json")))

# Version 1 of key "users" is kms_encrypted's test provider, so the gem's
# stored key reads; the rotation makes version 2 (a local key) current.
SOCKETS = """
[socket encrypt]
path = {dir}/encrypt.sock
allow = generate, encrypt

[socket decrypt]
path = {dir}/decrypt.sock
allow = decrypt

[socket rotate]
path = {dir}/rotate.sock
allow = rewrap
"""

V1 = """
[kmsd]
state_dir = {dir}/state

[key users]
key_id = insecure-test-key
""" + SOCKETS

V2 = """
[kmsd]
state_dir = {dir}/state

[key users]
version = 2
key_id = local/users2
key_id.1 = insecure-test-key
""" + SOCKETS


class Ctx:
    pass


def users(ctx, *args, rc=0, socket=None):
    """Run the example; returns stdout. socket overrides -d."""
    cmd = [USERS, "-f", ctx.db, "-k", "users",
           "-e", ctx.k.path("encrypt.sock"),
           "-d", socket or ctx.k.path("decrypt.sock"), *args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if p.returncode != rc:
        raise AssertionError(f"users {' '.join(args)}: exit {p.returncode}"
                             f" (want {rc}), stderr {p.stderr!r}")
    ctx.stderr = p.stderr.decode()
    return p.stdout.decode()


def rows(ctx):
    with sqlite3.connect(ctx.db) as db:
        return {r[0]: (r[1], r[2]) for r in db.execute(
            "SELECT id, email_ciphertext, encrypted_kms_key FROM users")}


def sql(ctx, stmt, *params):
    with sqlite3.connect(ctx.db) as db:
        db.execute(stmt, params)


def unwrap(ctx, uid, stored):
    """The data key of user uid, unwrapped by kmsd (what show does)."""
    r = Raw(ctx.k.path("decrypt.sock"))
    resp = r.call({"id": 1, "op": "decrypt", "key": "users",
                   "context": {"model_name": "User", "model_id": str(uid)},
                   "ciphertext": stored})
    r.close()
    check("plaintext" in resp, resp)
    return resp["plaintext"]


def lockbox_open(key, box_b64, ad=None):
    """Lockbox's AES_GCM#decrypt: nonce(12) || ciphertext || tag(16)."""
    raw = base64.b64decode(box_b64, validate=True)
    return AESGCM(key).decrypt(raw[:12], raw[12:], ad)


def ruby_lockbox():
    """A ruby that has the Lockbox gem, or None."""
    ruby = shutil.which("ruby")
    if ruby is None:
        return None
    p = subprocess.run([ruby, "-rstringio", "-e", 'require "lockbox"'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return ruby if p.returncode == 0 else None


def setup():
    check(USERS and os.access(USERS, os.X_OK),
          "examples/users was not built (needs libsqlite3-dev; ./dev "
          "installs it)")
    ctx = Ctx()
    ctx.k = Kmsd(config=V1).start()
    ctx.db = ctx.k.path("users.db")
    ctx.emails = {}
    return ctx


def teardown(ctx):
    try:
        ctx.k.stop()
    finally:
        ctx.k.cleanup()


@case
def gem_row_reads_in_c(ctx):
    # The row a Rails app (has_kms_key + Lockbox, KMS_KEY_ID =
    # insecure-test-key) stores for User 1.
    eq(users(ctx, "list"), "")          # creates the table
    box = next(c for c in VEC["lockbox"] if c["name"] == "email")
    dk = VEC["data_key"]
    sql(ctx, "INSERT INTO users (id, email_ciphertext, encrypted_kms_key)"
        " VALUES (1, ?, ?)", box["ciphertext_b64"], dk["stored"])
    # kmsd unwraps the gem's stored key to the data key ...
    eq(unwrap(ctx, 1, dk["stored"]).hex(), dk["plaintext_hex"], "data key")
    # ... and the C program opens the gem's box with it
    want = bytes.fromhex(box["plaintext_hex"]).decode()
    eq(users(ctx, "show", "1"), want + "\n")
    ctx.emails[1] = want


@case
def create_then_show(ctx):
    for email in ("bob@example.org", "carol+tag@example.org", "dé@例え.jp"):
        uid = int(users(ctx, "create", email))
        ctx.emails[uid] = email
        eq(users(ctx, "show", str(uid)), email + "\n")
        box, stored = rows(ctx)[uid]
        check(stored.startswith("v1:insecure+data+A"), stored)
        # strict base64 of nonce || ciphertext || tag
        eq(len(base64.b64decode(box, validate=True)),
           12 + len(email.encode()) + 16, "box length")
    eq(sorted(ctx.emails), [1, 2, 3, 4])


@case
def c_boxes_open_with_lockbox_layout(ctx):
    # The reverse direction: what kms_box_seal wrote under a data key kmsd
    # generated opens as Lockbox opens it.
    ruby = ruby_lockbox()
    for uid in (2, 3, 4):
        box, stored = rows(ctx)[uid]
        key = unwrap(ctx, uid, stored)
        eq(len(key), 32)
        eq(lockbox_open(key, box).decode(), ctx.emails[uid], f"user {uid}")
        if ruby:
            p = subprocess.run(
                [ruby, "-rstringio", "-e",
                 'require "lockbox"; $stdout.write Lockbox.new('
                 'key: [ARGV[0]].pack("H*"), encode: true)'
                 '.decrypt(ARGV[1])', key.hex(), box],
                stdout=subprocess.PIPE, check=True)
            eq(p.stdout.decode(), ctx.emails[uid], "Lockbox gem")


@case
def encrypt_socket_cannot_show(ctx):
    users(ctx, "show", "2", rc=1, socket=ctx.k.path("encrypt.sock"))
    check("permission_denied" in ctx.stderr, ctx.stderr)


@case
def changed_context_is_unreadable(ctx):
    # another record's id, an extra pair, another model
    for pair in ("model_id=3", "tenant=acme", "model_name=Admin"):
        out = users(ctx, "--context", pair, "show", "2", rc=1)
        eq(out, "")
        check("decrypt: decryption_failed" in ctx.stderr, ctx.stderr)
    # a record made under an extra pair reads only with it
    uid = int(users(ctx, "--context", "tenant=acme", "create",
                    "dave@example.org"))
    users(ctx, "show", str(uid), rc=1)
    check("decryption_failed" in ctx.stderr, ctx.stderr)
    eq(users(ctx, "show", str(uid), "--context", "tenant=acme"),
       "dave@example.org\n")
    ctx.acme = uid


@case
def moved_or_changed_fields_are_unreadable(ctx):
    box, stored = rows(ctx)[2]
    # user 2's row copied to another id: its key is bound to model_id 2
    sql(ctx, "INSERT INTO users (id, email_ciphertext, encrypted_kms_key)"
        " VALUES (99, ?, ?)", box, stored)
    users(ctx, "show", "99", rc=1)
    check("decrypt: decryption_failed" in ctx.stderr, ctx.stderr)
    # with user 2's context the key unwraps, but a box it did not seal (user
    # 3's), or its own box with one bit changed, does not open
    raw = bytearray(base64.b64decode(box))
    raw[20] ^= 1
    for other in (rows(ctx)[3][0], base64.b64encode(bytes(raw)).decode()):
        sql(ctx, "UPDATE users SET email_ciphertext = ? WHERE id = 99",
            other)
        eq(users(ctx, "--context", "model_id=2", "show", "99", rc=1), "")
        check("open: decryption_failed" in ctx.stderr, ctx.stderr)
    sql(ctx, "DELETE FROM users WHERE id = 99")
    # the untouched row still reads
    eq(users(ctx, "show", "2"), ctx.emails[2] + "\n")


@case
def rotate_moves_v1_to_v2(ctx):
    for i in range(20):
        email = f"user{i}@example.org"
        ctx.emails[int(users(ctx, "create", email))] = email
    before = rows(ctx)
    check(all(s.startswith("v1:") for _, s in before.values()), before)
    listed = users(ctx, "list").splitlines()
    eq(len(listed), len(before))
    check(all(line.split("\t")[1] == "v1" for line in listed), listed)
    # rotation: version 2 becomes current, version 1 stays readable
    ctx.k.stop()
    with open(ctx.k.conf, "w") as f:
        f.write(V2.format(dir=ctx.k.dir))
    ctx.k.start()
    rot = ctx.k.path("rotate.sock")
    # the decrypt socket may not rewrap: nothing moves
    users(ctx, "rotate", rc=1)
    check("permission_denied" in ctx.stderr, ctx.stderr)
    eq(rows(ctx), before)
    # the rotate socket allows rewrap only: no plaintext can come back on
    # it. The tenant=acme user needs its own context: reported, the rest
    # moved.
    out = users(ctx, "rotate", rc=1, socket=rot)
    n = len(before)
    eq(out, f"rotated {n - 1} of {n} users to v2\n")
    check(f"user {ctx.acme}: decryption_failed" in ctx.stderr, ctx.stderr)
    out = users(ctx, "--context", "tenant=acme", "rotate", socket=rot)
    eq(out, f"rotated 1 of {n} users to v2\n")
    after = rows(ctx)
    for uid, (box, stored) in after.items():
        check(stored.startswith("v2:"), f"user {uid}: {stored[:20]}")
        check(not stored.startswith("v2:insecure"), "v2 is the local key")
        # the data key did not change, so the email box did not either
        eq(box, before[uid][0], f"user {uid} email box")
    # every user still reads, the gem's row included
    for uid, email in ctx.emails.items():
        extra = ["--context", "tenant=acme"] if uid == ctx.acme else []
        eq(users(ctx, *extra, "show", str(uid)), email + "\n", f"user {uid}")
    # nothing left to do; new users are born at v2
    eq(users(ctx, "--context", "tenant=acme", "rotate", socket=rot),
       f"rotated 0 of {n} users to v2\n")
    uid = int(users(ctx, "create", "erin@example.org"))
    check(rows(ctx)[uid][1].startswith("v2:"))
    eq(users(ctx, "show", str(uid)), "erin@example.org\n")


@case
def usage_errors(ctx):
    for args in ([], ["show"], ["show", "x"], ["show", "0"],
                 ["create"], ["create", ""], ["list", "extra"], ["nope"],
                 ["--context", "novalue", "list"]):
        users(ctx, *args, rc=2)
    users(ctx, "show", "12345", rc=1)
    check("no user 12345" in ctx.stderr, ctx.stderr)


if __name__ == "__main__":
    run_cases(setup, teardown)
