#!/usr/bin/python3
"""The Vault transit provider against a strict fake Vault (vault_fake.py).

One fake Vault runs on a loopback port for the whole script. The main kmsd
uses a token file and the namespace team-a; other cases start their own
kmsd (token renewal, AppRole, environment variables, limits, bad
configurations). Every case checks what kmsd answered and what the fake
saw; the last case checks the fake recorded no protocol violation.
"""
import base64
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time

import msgpack

from harness import KMSD, Kmsd, Raw, case, check, eq, kmsctl, run_cases
from vault_fake import FakeVault, hkdf32

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = json.load(open(os.path.join(HERE, "..", "vectors", "vault",
                                  "transit_derived.json")))
NS = "team-a"
MAIN_KEYS = ("orders", "plain", "vec", "rot", "old", "new")

# kmsd must not pick up the developer's own Vault settings or token.
for _v in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT"):
    os.environ.pop(_v, None)
_HOME = tempfile.mkdtemp(prefix="kmsd-vault-home-")
os.environ["HOME"] = _HOME

KEYS = """
[key orders]
key_id = vault/orders

[key plain]
key_id = vault/plain

[key vec]
key_id = vault/vec

[key rot]
version = 2
key_id = vault/rot
key_id.1 = vault/rot

[key old]
key_id = vault/old

[key move]
version = 2
key_id = vault/new
key_id.1 = vault/old

[key m1]
key_id = local/m

[key mixed]
version = 2
key_id = vault/orders
key_id.1 = local/m

[key secret]
key_id = vault/secret

[key absent]
key_id = vault/absent
"""

SOCKET = """
[socket s]
path = {dir}/s.sock
allow = generate, encrypt, decrypt, rewrap, context_hash
"""


def config(vault, keys=KEYS):
    return ("[kmsd]\nstate_dir = {dir}/state\n\n[vault]\n" + vault +
            keys + SOCKET)


def ruby_encode64(b):
    """Ruby's Base64.encode64: 60 characters a line, each ending in \\n."""
    s = base64.b64encode(b).decode()
    return "".join(s[i:i + 60] + "\n" for i in range(0, len(s), 60))


def ctx_json(pairs):
    return json.dumps(dict(sorted(pairs.items())), separators=(",", ":"))


def cargs(pairs):
    out = []
    for k, v in pairs.items():
        out += ["-c", f"{k}={v}"]
    return out


def vault_string(stored):
    """The provider ciphertext inside a stored value: Vault's string."""
    check(stored.startswith("v"), stored)
    return base64.b64decode(stored.split(":", 1)[1], validate=True).decode()


def stored_value(version, vault_str):
    return f"v{version}:" + base64.b64encode(vault_str.encode()).decode()


def transit_since(f, before):
    """The fake's transit requests from index before on (auth requests
    such as a slow start-up lookup are left out)."""
    return [r for r in f.requests[before:] if r["path"].startswith("transit")]


def sock(k):
    return k.path("s.sock")


def run_ok(k, *args, input=b""):
    return kmsctl(sock(k), *args, input=input, check_rc=0).stdout


def run_err(k, *args, input=b""):
    p = kmsctl(sock(k), *args, input=input)
    eq(p.returncode, 1, f"kmsctl {args} exit code:")
    text = p.stderr.decode().strip()
    check(text.startswith("kmsctl: "), text)
    code, _, msg = text[len("kmsctl: "):].partition(": ")
    return code, msg


def encrypt(k, key, pt, pairs=None, empty=False):
    extra = ["--empty-context"] if empty else cargs(pairs or {})
    return run_ok(k, "encrypt", key, *extra, input=pt).decode().strip()


def decrypt(k, key, stored, pairs=None, empty=False):
    extra = ["--empty-context"] if empty else cargs(pairs or {})
    return run_ok(k, "decrypt", key, *extra, stored)


def pipeline(path, reqs, timeout=30):
    r = Raw(path, timeout=timeout)
    r.send_bytes(b"".join(struct.pack(">I", len(b)) + b for b in
                          (msgpack.packb(q, use_bin_type=True)
                           for q in reqs)))
    got = {}
    for _ in reqs:
        resp = r.recv()
        got[resp["id"]] = resp
    r.close()
    return [got[q["id"]] for q in reqs]


def start_kmsd(vault_section, keys=KEYS, env=None, token=None):
    k = Kmsd(config=config(vault_section, keys), env=env)
    if token is not None:
        with open(k.path("vault-token"), "w") as f:
            f.write(token + "\n")
    return k.start()


def stop(k):
    try:
        k.stop()
    finally:
        k.cleanup()


def wait_for(cond, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Ctx:
    pass


def setup():
    c = Ctx()
    c.fake = FakeVault(audit_salt=VEC["audit_hash"]["salt_example"]).start()
    try:
        f = c.fake
        for name in MAIN_KEYS:
            f.create_key(name, derived=name != "plain", ns=NS)
        f.create_key("secret", ns=NS)
        f.key("vec", ns=NS).versions = {
            1: bytes.fromhex(VEC["raw_key_v1_hex"])}
        policies = [f"transit/*/{n}" for n in MAIN_KEYS] + [
            "sys/audit-hash/*"]
        c.token = f.create_token(policies, ttl=3600, ns=NS)
        c.k = start_kmsd(f"address = {f.url}\ntoken_file = {{dir}}/"
                         f"vault-token\nnamespace = {NS}\n"
                         "timeout = 1500ms\n", token=c.token)
    except BaseException:
        c.fake.stop()
        raise
    return c


def teardown(c):
    try:
        stop(c.k)
    finally:
        c.fake.stop()
        shutil.rmtree(_HOME, ignore_errors=True)


# ---- the fake itself -------------------------------------------------

@case
def fake_reproduces_the_vectors(c):
    raw = bytes.fromhex(VEC["raw_key_v1_hex"])
    info = VEC["context_bytes_utf8"].encode()
    eq(hkdf32(raw, info).hex(), VEC["hkdf"]["derived_key_hex"])
    eq(ruby_encode64(info), VEC["context_field_as_sent_by_kms_encrypted"])
    k = c.fake.key("vec", ns=NS)
    ct = k.encrypt(bytes.fromhex(VEC["plaintext_hex"]), info,
                   nonce=bytes.fromhex(VEC["encrypt_derived"]["nonce_hex"]))
    eq(ct, VEC["encrypt_derived"]["ciphertext_field"])
    eq(stored_value(1, ct), VEC["encrypt_derived"]["kms_encrypted_stored"])
    eq(c.fake.audit_hash(VEC["context_field_as_sent_by_kms_encrypted"]),
       VEC["audit_hash"]["hash_of_context_as_sent_by_kms_encrypted"])
    eq(c.fake.audit_hash(VEC["context_field_strict_base64"]),
       VEC["audit_hash"]["hash_of_strict_base64_context"])


# ---- operations --------------------------------------------------------

@case
def generate_and_decrypt_with_context(c):
    k, f = c.k, c.fake
    pairs = {"model_name": "User", "model_id": "42"}
    before = len(f.requests)
    out = run_ok(k, "generate", "orders", *cargs(pairs)).decode()
    stored, key64 = out.split("\n")[:2]
    check(stored.startswith("v1:"), stored)
    check(vault_string(stored).startswith("vault:v1:"), stored)
    eq(decrypt(k, "orders", stored, pairs), base64.b64decode(key64))
    reqs = transit_since(f, before)
    eq([r["path"] for r in reqs], ["transit/encrypt/orders",
                                   "transit/decrypt/orders"])
    for r in reqs:
        eq(r["namespace"], NS, "namespace header")
        eq(r["token"], c.token, "token header")
        eq(r["status"], 200)
    enc = json.loads(reqs[0]["body"])
    eq(sorted(enc), ["context", "plaintext"])
    # byte-compatible with kms_encrypted: Base64.encode64 of the JSON
    eq(enc["context"], ruby_encode64(ctx_json(pairs).encode()))
    eq(enc["plaintext"], ruby_encode64(base64.b64decode(key64)))
    dec = json.loads(reqs[1]["body"])
    eq(dec, {"ciphertext": vault_string(stored),
             "context": enc["context"]})


@case
def long_context_is_sent_in_60_column_lines(c):
    pairs = {"model_name": "Customer" * 8, "model_id": "9" * 40}
    before = len(c.fake.requests)
    stored = encrypt(c.k, "orders", b"payload", pairs)
    eq(decrypt(c.k, "orders", stored, pairs), b"payload")
    sent = json.loads(c.fake.requests[before]["body"])["context"]
    check(sent.count("\n") >= 3, repr(sent))
    eq(sent, ruby_encode64(ctx_json(pairs).encode()))


@case
def wrong_context_fails_as_decryption_failed(c):
    k = c.k
    stored = encrypt(k, "orders", b"secret", {"id": "1"})
    for extra in (["-c", "id=2"], ["-c", "id=1", "-c", "x=y"], [],
                  ["--empty-context"]):
        code, msg = run_err(k, "decrypt", "orders", *extra, stored)
        eq(code, "decryption_failed", f"{extra}: {msg}")
    # the fake really refused: the derived keys differ
    check(c.fake.count("transit/decrypt/orders", 400) >= 4)


@case
def no_context_and_empty_context_differ(c):
    k, f = c.k, c.fake
    before = len(f.requests)
    s_none = encrypt(k, "plain", b"a")
    s_empty = encrypt(k, "plain", b"b", empty=True)
    bodies = [json.loads(r["body"]) for r in transit_since(f, before)]
    eq(sorted(bodies[0]), ["plaintext"], "no context: no context field")
    eq(bodies[1]["context"], "e30=\n", "empty context: Base64 of {}")
    eq(decrypt(k, "plain", s_none), b"a")
    eq(decrypt(k, "plain", s_empty, empty=True), b"b")
    # a derived key needs a context to encrypt
    code, msg = run_err(k, "encrypt", "orders", input=b"x")
    eq(code, "bad_request", msg)
    # the empty context is a context: {} derives a key
    s = encrypt(k, "orders", b"e", empty=True)
    eq(decrypt(k, "orders", s, empty=True), b"e")


@case
def kms_encrypted_stored_value_decrypts(c):
    pairs = json.loads(VEC["context_bytes_utf8"])
    out = decrypt(c.k, "vec", VEC["encrypt_derived"]["kms_encrypted_stored"],
                  pairs)
    eq(out.hex(), VEC["plaintext_hex"])


@case
def corrupt_ciphertexts_fail(c):
    k, f = c.k, c.fake
    before = f.count("transit/decrypt/orders")
    code, _ = run_err(k, "decrypt", "orders", "-c", "a=1",
                      stored_value(1, "not-vault"))
    eq(code, "decryption_failed")
    eq(f.count("transit/decrypt/orders"), before, "refused locally")
    for bad in ("vault:v1:AAAA", "vault:v9:" + "A" * 40,
                "vault:v1:" + base64.b64encode(b"\0" * 40).decode()):
        code, msg = run_err(k, "decrypt", "orders", "-c", "a=1",
                            stored_value(1, bad))
        eq(code, "decryption_failed", f"{bad}: {msg}")


@case
def rotate_then_rewrap_inside_vault(c):
    k, f = c.k, c.fake
    pairs = {"user": "7"}
    # key rot: versions 1 and 2 of kmsd are the same Vault key
    v2 = encrypt(k, "rot", b"dk", pairs)
    old = "v1:" + v2.split(":", 1)[1]
    f.rotate("rot", ns=NS)
    before = len(f.requests)
    new = run_ok(k, "rewrap", "rot", *cargs(pairs),
                 input=(old + "\n").encode()).decode().strip()
    eq([r["path"] for r in transit_since(f, before)], ["transit/rewrap/rot"],
       "one transit rewrap, no decrypt:")
    check(new.startswith("v2:"), new)
    check(vault_string(new).startswith("vault:v2:"), new)
    eq(decrypt(k, "rot", new, pairs), b"dk")
    # another context: decrypt, then encrypt under the new one
    before = len(f.requests)
    moved = run_ok(k, "rewrap", "rot", *cargs(pairs), "--new-context",
                   "user=8", input=(old + "\n").encode()).decode().strip()
    eq([r["path"] for r in transit_since(f, before)],
       ["transit/decrypt/rot", "transit/encrypt/rot"])
    eq(decrypt(k, "rot", moved, {"user": "8"}), b"dk")


@case
def rewrap_to_another_vault_key(c):
    k, f = c.k, c.fake
    pairs = {"id": "3"}
    old = encrypt(k, "old", b"data-key", pairs)
    before = len(f.requests)
    new = run_ok(k, "rewrap", "move", *cargs(pairs),
                 input=(old + "\n").encode()).decode().strip()
    eq([r["path"] for r in transit_since(f, before)],
       ["transit/decrypt/old", "transit/encrypt/new"])
    check(new.startswith("v2:"), new)
    eq(decrypt(k, "move", new, pairs), b"data-key")


@case
def rewrap_from_local_to_vault(c):
    k = c.k
    pairs = {"id": "4"}
    old = encrypt(k, "m1", b"local-key", pairs)
    new = run_ok(k, "rewrap", "mixed", *cargs(pairs),
                 input=(old + "\n").encode()).decode().strip()
    check(new.startswith("v2:") and
          vault_string(new).startswith("vault:v"), new)
    eq(decrypt(k, "orders", "v1:" + new.split(":", 1)[1], pairs),
       b"local-key")


@case
def context_hash_finds_the_audit_entry(c):
    k, f = c.k, c.fake
    pairs = {"model_name": "User", "model_id": "77"}
    stored = encrypt(k, "orders", b"x", pairs)
    decrypt(k, "orders", stored, pairs)
    entry = [a for a in f.audit if a["path"] == "transit/decrypt/orders"][-1]
    h = run_ok(k, "context-hash", "orders", *cargs(pairs), "--audit-path",
               "file/").decode().strip()
    eq(h, entry["request"]["data"]["context"])
    eq(h, f.audit_hash(ruby_encode64(ctx_json(pairs).encode())))
    eq(f.requests_to("sys/audit-hash/*")[-1]["path"],
       "sys/audit-hash/file", "one URL for file/ and file:")
    # the published vector: same salt, kms_encrypted's context string
    h = run_ok(k, "context-hash", "vec", *cargs(
        json.loads(VEC["context_bytes_utf8"])), "--audit-path",
        "file").decode().strip()
    eq(h, VEC["audit_hash"]["hash_of_context_as_sent_by_kms_encrypted"])
    code, _ = run_err(k, "context-hash", "orders", "-c", "a=1",
                      "--audit-path", "../etc")
    eq(code, "bad_request")
    code, msg = run_err(k, "context-hash", "orders", "-c", "a=1",
                        "--audit-path", "nope/")
    eq(code, "provider_denied", msg)
    check("unknown audit backend" in msg, msg)


@case
def policy_denial_is_provider_denied(c):
    f = c.fake
    before = f.count("transit/encrypt/secret")
    code, msg = run_err(c.k, "encrypt", "secret", "-c", "a=1", input=b"x")
    eq(code, "provider_denied", msg)
    check("permission denied" in msg, msg)
    eq(f.count("transit/encrypt/secret"), before + 1, "no retry:")
    code, msg = run_err(c.k, "encrypt", "absent", "-c", "a=1", input=b"x")
    eq(code, "provider_denied", msg)


# ---- faults ------------------------------------------------------------

@case
def injected_503_and_429_are_retried(c):
    k, f = c.k, c.fake
    f.inject("transit/encrypt/orders", status=503, count=2,
             errors=["Vault is sealed"])
    before = f.count("transit/encrypt/orders")
    stored = encrypt(k, "orders", b"r", {"a": "1"})
    eq(f.count("transit/encrypt/orders"), before + 3)
    f.inject("transit/decrypt/orders", status=429, count=1)
    eq(decrypt(k, "orders", stored, {"a": "1"}), b"r")


@case
def sealed_vault_is_provider_unavailable(c):
    f = c.fake
    f.inject("transit/encrypt/orders", status=503, count=100,
             errors=["Vault is sealed"])
    try:
        code, msg = run_err(c.k, "encrypt", "orders", "-c", "a=1",
                            input=b"x")
    finally:
        f.clear_faults()
    eq(code, "provider_unavailable", msg)
    check("sealed" in msg, msg)


@case
def rate_limited_vault_is_throttled(c):
    f = c.fake
    f.inject("transit/encrypt/orders", status=429, count=100,
             errors=["request path \"transit/encrypt/orders\": rate limit "
                     "quota exceeded"])
    try:
        code, msg = run_err(c.k, "encrypt", "orders", "-c", "a=1",
                            input=b"x")
    finally:
        f.clear_faults()
    eq(code, "throttled", msg)


@case
def slow_answers(c):
    f = c.fake
    f.inject("transit/encrypt/orders", delay=0.3, count=1)
    encrypt(c.k, "orders", b"slow but in time", {"a": "1"})
    f.inject("transit/encrypt/orders", delay=2.5, count=1)
    t0 = time.time()
    code, msg = run_err(c.k, "encrypt", "orders", "-c", "a=1", input=b"x")
    eq(code, "provider_unavailable", msg)
    check("1500 ms" in msg, msg)
    check(time.time() - t0 < 2.4, "gave up at the 1.5 s timeout")


@case
def limits_give_busy(c):
    f = c.fake
    k = start_kmsd(f"address = {f.url}\ntoken_file = {{dir}}/vault-token\n"
                   f"namespace = {NS}\nmax_inflight = 1\nmax_queue = 1\n",
                   token=c.token)
    try:
        # the start-up lookup must not hold the one slot
        wait_for(lambda: "vault: token from" in k.logtext())
        f.inject("transit/encrypt/plain", delay=0.5, count=10)
        reqs = [{"id": i, "op": "encrypt", "key": "plain",
                 "plaintext": b"x"} for i in range(1, 5)]
        got = pipeline(sock(k), reqs)
        codes = sorted(r["error"]["code"] if "error" in r else "ok"
                       for r in got)
        eq(codes, ["busy", "busy", "ok", "ok"])
    finally:
        f.clear_faults()
        stop(k)


# ---- authentication ----------------------------------------------------

@case
def token_renewed_before_it_expires(c):
    f = c.fake
    tok = f.create_token(["transit/*"], ttl=3, max_ttl=120, ns=NS)
    k = start_kmsd(f"address = {f.url}\ntoken_file = {{dir}}/vault-token\n"
                   f"namespace = {NS}\n", token=tok)
    try:
        renews = f.count("auth/token/renew-self")
        t0, n = time.time(), 0
        stored = encrypt(k, "orders", b"v", {"t": "1"})
        while time.time() - t0 < 5:
            eq(decrypt(k, "orders", stored, {"t": "1"}), b"v")
            n += 1
            time.sleep(0.05)
        check(f.count("auth/token/renew-self") >= renews + 2,
              "renewed at two thirds of the 3 s TTL")
        check(f.token(tok).alive(), "the token is still alive")
        check(n >= 10, f"{n} requests")
        check("hvs." not in k.logtext(), "no token in the log")
    finally:
        stop(k)


@case
def token_file_read_again_after_a_refusal(c):
    f = c.fake
    tok = f.create_token(["transit/*"], ns=NS)
    k = start_kmsd(f"address = {f.url}\ntoken_file = {{dir}}/vault-token\n"
                   f"namespace = {NS}\n", token=tok)
    try:
        stored = encrypt(k, "orders", b"w", {"t": "2"})
        f.revoke(tok)
        tok2 = f.create_token(["transit/*"], ns=NS)
        with open(k.path("vault-token"), "w") as fp:
            fp.write(tok2 + "\n")
        eq(decrypt(k, "orders", stored, {"t": "2"}), b"w")
        last = f.requests_to("transit/decrypt/orders")[-2:]
        eq([(r["token"], r["status"]) for r in last],
           [(tok, 403), (tok2, 200)])
        # revoked and nothing new: provider_denied after one re-read
        f.revoke(tok2)
        code, msg = run_err(k, "decrypt", "orders", "-c", "t=2", stored)
        eq(code, "provider_denied", msg)
    finally:
        stop(k)


@case
def approle_login_renewal_and_relogin(c):
    f = c.fake
    f.add_role("kmsd-role", "s3cr3t-id", ttl=2, max_ttl=3, ns=NS)
    k = Kmsd(config=config(
        f"address = {f.url}\nrole_id_file = {{dir}}/role-id\n"
        "secret_id_file = {dir}/secret-id\n"), env={"VAULT_NAMESPACE": NS})
    with open(k.path("role-id"), "w") as fp:
        fp.write("kmsd-role\n")
    with open(k.path("secret-id"), "w") as fp:
        fp.write("s3cr3t-id\n")
    logins0 = f.count("auth/approle/login")
    first = len(f.requests)
    k.start()
    try:
        stored = encrypt(k, "orders", b"ar", {"t": "3"})
        t0, n = time.time(), 0
        while time.time() - t0 < 5:
            if time.time() - t0 > 2.5:
                f.refuse_renewal = True
            eq(decrypt(k, "orders", stored, {"t": "3"}), b"ar")
            n += 1
            time.sleep(0.05)
        time.sleep(0.3)  # a login started by the last refusal ends
        f.refuse_renewal = False
        mine = f.requests[first:]
        paths = [(r["path"], r["status"]) for r in mine
                 if r["path"].startswith("auth/")]
        check(paths.count(("auth/approle/login", 200)) >= 3,
              f"logged in again as the max TTL came near: {paths}")
        check(("auth/token/renew-self", 200) in paths, "renewed first")
        check(("auth/token/renew-self", 400) in paths, "refused once")
        i = paths.index(("auth/token/renew-self", 400))
        eq(paths[i + 1:i + 2], [("auth/approle/login", 200)],
           "a refused renewal is followed by a login:")
        eq([r["path"] for r in mine if r["status"] != 200 and
            not r["path"].startswith("auth/")], [],
           "no request was refused:")
        for r in mine:
            eq(r["namespace"], NS, "namespace from VAULT_NAMESPACE")
            if r["path"] == "auth/approle/login":
                check(r["token"] is None, "login carries no token")
        check(n >= 10, f"{n} requests")
        check("s3cr3t" not in k.logtext() and "hvs." not in k.logtext(),
              "no secret in the log")
    finally:
        stop(k)


def approle_kmsd(f, secret="s3cr3t-id"):
    k = Kmsd(config=config(
        f"address = {f.url}\nnamespace = {NS}\n"
        "role_id_file = {dir}/role-id\nsecret_id_file = {dir}/secret-id\n"))
    with open(k.path("role-id"), "w") as fp:
        fp.write("kmsd-role-2\n")
    with open(k.path("secret-id"), "w") as fp:
        fp.write(secret + "\n")
    return k.start()


@case
def approle_revoked_token_one_login_for_a_burst(c):
    f = c.fake
    f.add_role("kmsd-role-2", "s3cr3t-id", ttl=600, ns=NS)
    k = approle_kmsd(f)
    try:
        stored = encrypt(k, "orders", b"burst", {"t": "4"})
        time.sleep(1.1)  # older than VAULT_RELOGIN_MIN_MS
        f.revoke(f.requests_to("transit/encrypt/orders")[-1]["token"])
        logins = f.count("auth/approle/login")
        reqs = [{"id": i, "op": "decrypt", "key": "orders",
                 "context": {"t": "4"}, "ciphertext": stored}
                for i in range(1, 31)]
        for r in pipeline(sock(k), reqs):
            check("error" not in r, r)
            eq(r["plaintext"], b"burst")
        eq(f.count("auth/approle/login"), logins + 1, "exactly one login:")
    finally:
        stop(k)


@case
def approle_with_a_wrong_secret_is_denied(c):
    f = c.fake
    logins0 = f.count("auth/approle/login")
    k = approle_kmsd(f, secret="wrong")
    try:
        for _ in range(5):
            code, msg = run_err(k, "encrypt", "orders", "-c", "a=1",
                                input=b"x")
            eq(code, "provider_denied", msg)
            check("invalid role or secret ID" in msg, msg)
        check(f.count("auth/approle/login") - logins0 <= 3,
              "failed logins are not repeated per request")
    finally:
        stop(k)


@case
def token_from_environment_and_home(c):
    f = c.fake
    tok = f.create_token(["transit/*"], ns=NS)
    k = start_kmsd("", env={"VAULT_ADDR": f.url, "VAULT_TOKEN": tok,
                            "VAULT_NAMESPACE": NS})
    try:
        s = encrypt(k, "orders", b"env", {"e": "1"})
        eq(f.requests_to("transit/encrypt/orders")[-1]["token"], tok)
    finally:
        stop(k)
    tok2 = f.create_token(["transit/*"], ns=NS)
    home = tempfile.mkdtemp(prefix="kmsd-vault-home-")
    try:
        with open(os.path.join(home, ".vault-token"), "w") as fp:
            fp.write(tok2)
        k = start_kmsd(f"address = {f.url}\nnamespace = {NS}\n",
                       env={"HOME": home})
        try:
            eq(decrypt(k, "orders", s, {"e": "1"}), b"env")
            eq(f.requests_to("transit/decrypt/orders")[-1]["token"], tok2)
        finally:
            stop(k)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@case
def missing_namespace_is_denied(c):
    f = c.fake
    k = start_kmsd(f"address = {f.url}\ntoken_file = {{dir}}/vault-token\n",
                   token=c.token)
    try:
        code, msg = run_err(k, "encrypt", "orders", "-c", "a=1", input=b"x")
        eq(code, "provider_denied", msg)
        check(f.requests_to("transit/encrypt/orders")[-1]["namespace"] is
              None)
    finally:
        stop(k)


# ---- configuration -----------------------------------------------------

def check_config(vault_section, env=None):
    d = tempfile.mkdtemp(prefix="kmsd-vault-conf-")
    try:
        path = os.path.join(d, "kmsd.conf")
        with open(path, "w") as fp:
            fp.write(config(vault_section).format(dir=d))
        p = subprocess.run([KMSD, "--check-config", "--config", path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=dict(os.environ, **(env or {})), timeout=30)
        return p.returncode, p.stderr.decode().replace(path, "FILE")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def config_errors_name_file_and_line(c):
    rc, err = check_config("address = https://vault.example:8200\n"
                           "tokenfile = /x\n")
    eq(rc, 1)
    check(err.startswith("FILE:6: unknown option 'tokenfile' in [vault]"),
          err)
    for section, line, text in (
            ("address = http://vault.example:8200\n", 5, "loopback"),
            ("address = https://v.example\nrole_id_file = /r\n", 6,
             "both role_id_file and secret_id_file"),
            ("address = https://v.example\ntimeout = soon\n", 6,
             "duration"),
            ("address = https://v.example\nmount = ../sys\n", 6,
             "Vault path"),
            ("address = https://v.example\nmax_queue = 0\n", 6, "1 to")):
        rc, err = check_config(section)
        eq(rc, 1, section)
        check(err.startswith(f"FILE:{line}: ") and text in err, err)
    rc, err = check_config("address = https://vault.example:8200\n"
                           "token_file = /x\nmount = kv/transit\n"
                           "timeout = 3s\n")
    eq(rc, 0, err)


@case
def start_fails_clearly_without_a_token(c):
    k = Kmsd(config=config(f"address = {c.fake.url}\n"))
    try:
        try:
            k.start(timeout=5)
            raise AssertionError("kmsd started without a Vault token")
        except RuntimeError as e:
            check("no Vault token" in str(e), str(e))
    finally:
        k.cleanup()


@case
def fake_saw_no_protocol_violation(c):
    eq(c.fake.violations, [])
    check(c.k.alive(), "the main kmsd is still running")


if __name__ == "__main__":
    run_cases(setup, teardown)
