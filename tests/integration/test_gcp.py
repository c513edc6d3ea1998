#!/usr/bin/python3
"""The Google Cloud KMS provider against a strict fake (gcp_fake.py).

A real kmsd authenticates with the public TEST service account (its JWT is
verified by the fake against the test public key), with the metadata
server, and with gcloud's authorized_user file; every KMS call must carry
a valid bearer token. Each fault the fake can inject is checked: 401 then
success (one refresh), 429 (throttled after the retries), 503 (retried;
provider_unavailable when it persists), a slow answer (timeout), damaged
checksums or bytes (never a success), Google's own checksum complaint
(retried), and wrong AAD (decryption_failed). Rewrap moves a local/ value
and a Google value to a Google key. The fake is started on a free loopback
port and stopped at the end, whatever happened.
"""
import base64
import http.client
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

from harness import BASE_CONFIG, KMSD, Kmsd, Raw, case, check, eq, kmsctl, \
    run_cases

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = os.path.join(HERE, "..", "vectors", "gcp")
KEY = "projects/p/locations/global/keyRings/r/cryptoKeys/"
HTTP_TRIES = 4   # HTTP_DEFAULT_MAX_TRIES in daemon/http.h

GCP_KEYS = """
[key g]
key_id = {p}k

[key g2]
key_id = {p}k2

[key rot]
version = 2
key_id = {p}k2
key_id.1 = {p}k

[key localmig]
key_id = local/mig

[key mig]
version = 2
key_id = {p}k3
key_id.1 = local/mig

[key gdenied]
key_id = {p}denied
"""


class Fake:
    """gcp_fake.py in a child process; stops when its stdin closes."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "gcp_fake.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def call(self, method, path, obj=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=None if obj is None else
                  json.dumps(obj).encode())
        r = c.getresponse()
        data = r.read()
        c.close()
        eq(r.status, 200, f"fake {path}")
        return json.loads(data)

    def stats(self):
        return self.call("GET", "/_fake/stats")

    def inject(self, match, kind, count=1, delay=0):
        self.call("POST", "/_fake/inject", {"match": match, "kind": kind,
                                            "count": count, "delay": delay})

    def clear(self):
        self.call("POST", "/_fake/clear", {})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Ctx:
    pass


def write_sa(path, token_uri):
    with open(os.path.join(VEC, "service_account.json")) as f:
        sa = json.load(f)
    sa["token_uri"] = token_uri
    with open(path, "w") as f:
        json.dump(sa, f)
    os.chmod(path, 0o600)


def gcp_section(fake, creds=None, timeout="2s"):
    s = f"\n[gcp]\nendpoint = {fake.url}\ntimeout = {timeout}\n"
    if creds:
        s += f"credentials = {creds}\n"
    return s


def clean_env(home):
    """kmsd's environment without the machine's own Google settings."""
    env = dict(os.environ)
    for v in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG",
              "GCE_METADATA_HOST", "GOOGLE_CLOUD_QUOTA_PROJECT"):
        env.pop(v, None)
    env["HOME"] = home
    return env


def start_kmsd(fake, ctx, creds=None, env_extra=None, keys=GCP_KEYS):
    k = Kmsd(extra=keys.replace("{p}", KEY) + gcp_section(fake, creds))
    k.env = clean_env(ctx.home)
    k.env.update(env_extra or {})
    ctx.extra.append(k)
    return k.start()


def setup():
    ctx = Ctx()
    ctx.extra = []
    ctx.fake = Fake()
    ctx.tmp = tempfile.mkdtemp(prefix="kmsd-gcp-")
    ctx.home = os.path.join(ctx.tmp, "home")
    os.mkdir(ctx.home)
    ctx.sa = os.path.join(ctx.tmp, "sa.json")
    write_sa(ctx.sa, ctx.fake.url + "/token")
    try:
        ctx.k = start_kmsd(ctx.fake, ctx, creds=ctx.sa)
    except Exception:
        teardown(ctx)
        raise
    return ctx


def teardown(ctx):
    try:
        for k in ctx.extra:
            try:
                if k.alive():
                    k.stop()
            finally:
                k.cleanup()
    finally:
        ctx.fake.stop()
        shutil.rmtree(ctx.tmp, ignore_errors=True)


def sock(k):
    return k.path("decrypt.sock")


def ctl(k, *args, input=b""):
    return kmsctl(sock(k), *args, input=input)


def ok(p):
    eq(p.returncode, 0, f"kmsctl failed: {p.stderr!r}")
    return p.stdout


def fails(p, code):
    eq(p.returncode, 1, f"kmsctl: {p.stdout!r} {p.stderr!r}")
    err = p.stderr.decode()
    check(err.startswith(f"kmsctl: {code}: "), err)
    return err


def encrypt(k, key, data, *ctx_args):
    return ok(ctl(k, "encrypt", key, *ctx_args, input=data)).decode().strip()


def decrypt(k, key, ct, *ctx_args):
    return ok(ctl(k, "decrypt", key, *ctx_args, ct))


def delta(fake, before, name):
    return fake.stats().get(name, 0) - before.get(name, 0)


def pipeline(path, reqs):
    r = Raw(path, timeout=30)
    r.send_bytes(b"".join(struct.pack(">I", len(b)) + b for b in
                          (msgpack.packb(q, use_bin_type=True)
                           for q in reqs)))
    got = {}
    for _ in reqs:
        resp = r.recv()
        got[resp["id"]] = resp
    r.close()
    return [got[q["id"]] for q in reqs]


# --- authentication --------------------------------------------------

@case
def cold_start_requests_wait_behind_one_token_fetch(c):
    # kmsd has no token yet: 24 requests at once share one fetch.
    s0 = c.fake.stats()
    eq(s0.get("token_jwt", 0), 0, "no token before the first request")
    reqs = [{"id": i, "op": "generate", "key": "g",
             "context": {"n": str(i)}} for i in range(1, 25)]
    resps = pipeline(sock(c.k), reqs)
    for r in resps:
        check("error" not in r, r)
        check(r["ciphertext"].startswith("v1:"), r)
    s = c.fake.stats()
    eq(s.get("token_jwt"), 1, "token fetches")
    eq(s.get("jwt_verified"), 1, "JWTs verified by the fake")
    eq(s.get("kms_encrypt"), 24)
    # each decrypts under its own context only
    for r, q in list(zip(resps, reqs))[:3]:
        got = pipeline(sock(c.k), [{"id": 1, "op": "decrypt", "key": "g",
                                    "ciphertext": r["ciphertext"],
                                    "context": q["context"]}])[0]
        eq(got["plaintext"], r["plaintext"])


@case
def bearer_token_checked_on_every_call(c):
    s = c.fake.stats()
    for why in ("missing", "unknown", "revoked", "expired"):
        eq(s.get("kms_unauth_" + why, 0), 0, why)
    eq(s.get("token_refused", 0), 0, s.get("token_refused_why"))
    eq(s.get("kms_malformed", 0), 0, s.get("kms_malformed_why"))
    # and the fake does refuse a call without one
    conn = http.client.HTTPConnection("127.0.0.1", c.fake.port, timeout=5)
    conn.request("POST", f"/v1/{KEY}k:encrypt", body=b"{}",
                 headers={"Content-Type": "application/json"})
    eq(conn.getresponse().status, 401)
    conn.close()


@case
def one_401_refreshes_the_token_and_retries(c):
    c.fake.clear()
    s = c.fake.stats()
    c.fake.inject("cryptoKeys/k:encrypt", "401", 1)
    ct = encrypt(c.k, "g", b"after-401")
    eq(delta(c.fake, s, "token_jwt"), 1, "one refresh")
    eq(delta(c.fake, s, "kms_encrypt"), 2, "one retry")
    eq(decrypt(c.k, "g", ct), b"after-401")


@case
def persistent_401_is_provider_denied_after_one_refresh(c):
    c.fake.clear()
    s = c.fake.stats()
    c.fake.inject("cryptoKeys/k:encrypt", "401", 50)
    err = fails(ctl(c.k, "encrypt", "g", input=b"x"), "provider_denied")
    check("UNAUTHENTICATED" in err, err)
    eq(delta(c.fake, s, "token_jwt"), 1, "exactly one refresh")
    eq(delta(c.fake, s, "kms_encrypt"), 2)
    c.fake.clear()
    encrypt(c.k, "g", b"fine again")


@case
def revoked_tokens_many_requests_one_refresh(c):
    c.fake.clear()
    c.fake.call("POST", "/_fake/revoke", {})
    s = c.fake.stats()
    resps = pipeline(sock(c.k), [{"id": i, "op": "generate", "key": "g"}
                                 for i in range(1, 17)])
    for r in resps:
        check("error" not in r, r)
    eq(delta(c.fake, s, "token_jwt"), 1, "one fetch for all 401s")


@case
def token_endpoint_refusal_is_provider_denied(c):
    c.fake.clear()
    c.fake.call("POST", "/_fake/revoke", {})
    c.fake.inject("/token", "invalid_grant", 1)
    err = fails(ctl(c.k, "encrypt", "g", input=b"x"), "provider_denied")
    check("invalid_grant" in err and "service account" in err, err)
    # the next request fetches again and succeeds
    encrypt(c.k, "g", b"recovered")


@case
def token_endpoint_5xx_is_retried(c):
    c.fake.clear()
    c.fake.call("POST", "/_fake/revoke", {})
    s = c.fake.stats()
    c.fake.inject("/token", "500", 1)
    encrypt(c.k, "g", b"x")
    eq(delta(c.fake, s, "token_jwt"), 1)
    eq(delta(c.fake, s, "fault_500"), 1)


# --- operations, AAD -------------------------------------------------

@case
def roundtrip_aad_is_canonical_context_json(c):
    ct = encrypt(c.k, "g", b"secret", "-c", "b=x", "-c", "a=1")
    eq(c.fake.stats()["last_aad"][KEY + "k"],
       base64.b64encode(b'{"a":"1","b":"x"}').decode())
    eq(decrypt(c.k, "g", ct, "-c", "a=1", "-c", "b=x"), b"secret")
    # the stored string is v1: + base64 of Google's ciphertext bytes
    check(ct.startswith("v1:"), ct)
    check(base64.b64decode(ct[3:], validate=True).startswith(b"FAKE1"), ct)


@case
def aad_bytes_match_kms_encrypted(c):
    # ActiveSupport's escapes are part of the AAD (DESIGN 3.3).
    encrypt(c.k, "g", b"x", "-c", "k=<&>")
    eq(base64.b64decode(c.fake.stats()["last_aad"][KEY + "k"]),
       b'{"k":"\\u003c\\u0026\\u003e"}')


@case
def wrong_context_is_decryption_failed(c):
    ct = encrypt(c.k, "g", b"bound", "-c", "id=1")
    for args in (["-c", "id=2"], ["-c", "id=1", "-c", "x=y"], [],
                 ["--empty-context"]):
        err = fails(ctl(c.k, "decrypt", "g", *args, ct), "decryption_failed")
        check("Decryption failed" in err, err)
    # and under another Google key
    fails(ctl(c.k, "decrypt", "g2", "-c", "id=1", ct), "decryption_failed")


@case
def empty_context_differs_from_none(c):
    ct = encrypt(c.k, "g", b"none")
    eq(c.fake.stats()["last_aad"][KEY + "k"], None, "no AAD sent")
    fails(ctl(c.k, "decrypt", "g", "--empty-context", ct),
          "decryption_failed")
    eq(decrypt(c.k, "g", ct), b"none")
    ct = encrypt(c.k, "g", b"empty", "--empty-context")
    eq(c.fake.stats()["last_aad"][KEY + "k"],
       base64.b64encode(b"{}").decode())
    fails(ctl(c.k, "decrypt", "g", ct), "decryption_failed")
    eq(decrypt(c.k, "g", ct, "--empty-context"), b"empty")


@case
def permission_denied_is_provider_denied(c):
    err = fails(ctl(c.k, "encrypt", "gdenied", input=b"x"),
                "provider_denied")
    check("PERMISSION_DENIED" in err, err)


# --- injected faults -------------------------------------------------

@case
def persistent_429_is_throttled_after_retries(c):
    c.fake.clear()
    s = c.fake.stats()
    c.fake.inject("cryptoKeys/k:encrypt", "429", 50)
    err = fails(ctl(c.k, "encrypt", "g", input=b"x"), "throttled")
    check("RESOURCE_EXHAUSTED" in err, err)
    eq(delta(c.fake, s, "kms_encrypt"), HTTP_TRIES)
    c.fake.clear()


@case
def persistent_503_is_provider_unavailable_after_retries(c):
    c.fake.clear()
    s = c.fake.stats()
    c.fake.inject("cryptoKeys/k:encrypt", "503", 50)
    err = fails(ctl(c.k, "encrypt", "g", input=b"x"), "provider_unavailable")
    check("UNAVAILABLE" in err, err)
    eq(delta(c.fake, s, "kms_encrypt"), HTTP_TRIES)
    c.fake.clear()


@case
def one_503_then_success(c):
    c.fake.clear()
    ct = encrypt(c.k, "g", b"payload")
    s = c.fake.stats()
    c.fake.inject("cryptoKeys/k:decrypt", "503", 1)
    eq(decrypt(c.k, "g", ct), b"payload")
    eq(delta(c.fake, s, "kms_decrypt"), 2)


@case
def slow_answer_is_timeout_and_kmsd_carries_on(c):
    c.fake.clear()
    c.fake.inject("cryptoKeys/k:encrypt", "slow", 1, delay=4)
    t0 = time.time()
    err = fails(ctl(c.k, "encrypt", "g", input=b"x"), "timeout")
    took = time.time() - t0
    check(1.5 < took < 3.5, f"took {took:.2f}s for a 2s timeout")
    check("2000 ms" in err, err)
    encrypt(c.k, "g", b"next one is fine")


@case
def damaged_ciphertext_checksum_is_never_success(c):
    c.fake.clear()
    s = c.fake.stats()
    c.fake.inject("cryptoKeys/k:encrypt", "badcrc", 50)
    p = ctl(c.k, "encrypt", "g", input=b"x")
    err = fails(p, "provider_unavailable")
    eq(p.stdout, b"")
    check("ciphertextCrc32c" in err and "integrity" in err, err)
    eq(delta(c.fake, s, "kms_encrypt"), HTTP_TRIES)
    c.fake.clear()


@case
def one_damaged_answer_is_retried(c):
    c.fake.clear()
    for kind in ("badcrc", "flip", "unverified"):
        s = c.fake.stats()
        c.fake.inject("cryptoKeys/k:encrypt", kind, 1)
        ct = encrypt(c.k, "g", b"retried")
        eq(delta(c.fake, s, "kms_encrypt"), 2, kind)
        eq(decrypt(c.k, "g", ct), b"retried")


@case
def damaged_plaintext_is_never_returned(c):
    c.fake.clear()
    ct = encrypt(c.k, "g", b"the real plaintext")
    for kind in ("flip", "badcrc"):
        c.fake.inject("cryptoKeys/k:decrypt", kind, 50)
        p = ctl(c.k, "decrypt", "g", ct)
        err = fails(p, "provider_unavailable")
        eq(p.stdout, b"")
        check("plaintextCrc32c" in err, err)
        c.fake.clear()


@case
def unverified_plaintext_checksum_is_never_success(c):
    c.fake.clear()
    c.fake.inject("cryptoKeys/k:encrypt", "unverified", 50)
    err = fails(ctl(c.k, "encrypt", "g", input=b"x"), "provider_unavailable")
    check("verifiedPlaintextCrc32c" in err, err)
    c.fake.clear()


@case
def google_checksum_complaint_is_retried(c):
    c.fake.clear()
    s = c.fake.stats()
    c.fake.inject("cryptoKeys/k:encrypt", "reqcrc", 1)
    encrypt(c.k, "g", b"x")
    eq(delta(c.fake, s, "kms_encrypt"), 2)


@case
def client_gone_mid_call_is_dropped_cleanly(c):
    c.fake.clear()
    # one call in flight at Google, others waiting for a token
    c.fake.inject("cryptoKeys/k:encrypt", "slow", 1, delay=1)
    r = Raw(sock(c.k))
    r.send({"id": 1, "op": "encrypt", "key": "g", "plaintext": b"x"})
    time.sleep(0.2)
    c.fake.call("POST", "/_fake/revoke", {})
    c.fake.inject("/token", "slow", 1, delay=1)
    r.send({"id": 2, "op": "encrypt", "key": "g2", "plaintext": b"y"})
    time.sleep(0.2)
    r.close()
    time.sleep(1.5)
    check(c.k.alive(), "kmsd died")
    encrypt(c.k, "g", b"still serving")


@case
def reload_keeps_the_token(c):
    c.fake.clear()
    encrypt(c.k, "g", b"before")
    s = c.fake.stats()
    mark = c.k.logtext().count("reloaded")
    c.k.proc.send_signal(1)  # SIGHUP
    deadline = time.time() + 10
    while c.k.logtext().count("reloaded") == mark:
        check(time.time() < deadline, "no reload: " + c.k.logtext())
        time.sleep(0.05)
    encrypt(c.k, "g", b"after")
    eq(delta(c.fake, s, "token_jwt"), 0, "same settings, same token")


# --- rewrap ----------------------------------------------------------

@case
def rewrap_local_version_to_google(c):
    c.fake.clear()
    ct1 = encrypt(c.k, "localmig", b"migrate me", "-c", "u=7")
    check(ct1.startswith("v1:"), ct1)
    s = c.fake.stats()
    out = ok(ctl(c.k, "rewrap", "mig", "-c", "u=7",
                 input=(ct1 + "\n").encode())).decode().split("\n")
    eq(out[1:], [""])
    ct2 = out[0]
    check(ct2.startswith("v2:"), ct2)
    eq(delta(c.fake, s, f"kms_encrypt:{KEY}k3"), 1)
    eq(decrypt(c.k, "mig", ct2, "-c", "u=7"), b"migrate me")
    # the old local value still opens through the key's version 1
    eq(decrypt(c.k, "mig", ct1, "-c", "u=7"), b"migrate me")


@case
def rewrap_between_google_keys_with_new_context(c):
    c.fake.clear()
    ct1 = encrypt(c.k, "g", b"rotate", "-c", "a=1")
    s = c.fake.stats()
    ct2 = ok(ctl(c.k, "rewrap", "rot", "-c", "a=1", "--new-context", "a=2",
                 input=(ct1 + "\n").encode())).decode().strip()
    check(ct2.startswith("v2:"), ct2)
    eq(delta(c.fake, s, f"kms_decrypt:{KEY}k"), 1)
    eq(delta(c.fake, s, f"kms_encrypt:{KEY}k2"), 1)
    eq(decrypt(c.k, "rot", ct2, "-c", "a=2"), b"rotate")
    fails(ctl(c.k, "decrypt", "rot", "-c", "a=1", ct2), "decryption_failed")


# --- other credential sources ---------------------------------------

@case
def metadata_server_auth(c):
    s = c.fake.stats()
    k = start_kmsd(c.fake, c, env_extra={
        "GCE_METADATA_HOST": f"127.0.0.1:{c.fake.port}"})
    try:
        ct = encrypt(k, "g", b"via metadata", "-c", "m=1")
        eq(decrypt(k, "g", ct, "-c", "m=1"), b"via metadata")
        eq(delta(c.fake, s, "token_metadata"), 1)
        eq(delta(c.fake, s, "metadata_refused"), 0)
        eq(delta(c.fake, s, "token_jwt"), 0)
        check("metadata server" in k.logtext(), k.logtext())
    finally:
        k.stop()


@case
def gcloud_authorized_user_file(c):
    s = c.fake.stats()
    home = os.path.join(c.tmp, "userhome")
    os.makedirs(os.path.join(home, ".config", "gcloud"))
    with open(os.path.join(home, ".config", "gcloud",
                           "application_default_credentials.json"),
              "w") as f:
        json.dump({"type": "authorized_user",
                   "client_id": "test-client-id.apps.example.com",
                   "client_secret": "test-client-secret",
                   "refresh_token": "1//test-refresh-token",
                   "token_uri": c.fake.url + "/token"}, f)
    k = start_kmsd(c.fake, c, env_extra={"HOME": home})
    try:
        ct = encrypt(k, "g", b"via gcloud")
        eq(decrypt(k, "g", ct), b"via gcloud")
        eq(delta(c.fake, s, "token_refresh"), 1)
        eq(delta(c.fake, s, "token_refused"), 0)
    finally:
        k.stop()


@case
def token_refreshed_before_expiry_never_used_expired(c):
    # GOOGLE_APPLICATION_CREDENTIALS this time, and short-lived tokens.
    c.fake.call("POST", "/_fake/config", {"expires_in": 6})
    k = start_kmsd(c.fake, c, env_extra={
        "GOOGLE_APPLICATION_CREDENTIALS": c.sa})
    try:
        s = c.fake.stats()
        encrypt(k, "g", b"1")
        eq(delta(c.fake, s, "token_jwt"), 1)
        time.sleep(3.5)
        # still valid (about 2.5 s left) but due: used, and refreshed in
        # the background
        t0 = time.time()
        encrypt(k, "g", b"2")
        check(time.time() - t0 < 1.0, "waited for the refresh")
        deadline = time.time() + 3
        while delta(c.fake, s, "token_jwt") < 2 and time.time() < deadline:
            time.sleep(0.05)
        eq(delta(c.fake, s, "token_jwt"), 2, "background refresh")
        # a token past its life is never sent: kmsd fetches first
        c.fake.call("POST", "/_fake/config", {"expires_in": 1})
        c.fake.call("POST", "/_fake/revoke", {})
        encrypt(k, "g", b"3")
        time.sleep(1.3)
        encrypt(k, "g", b"4")
        eq(delta(c.fake, s, "kms_unauth_expired"), 0)
        eq(delta(c.fake, s, "token_jwt"), 4)
    finally:
        c.fake.call("POST", "/_fake/config", {"expires_in": 3600})
        k.stop()


# --- configuration, secrets ------------------------------------------

@case
def check_config_names_file_and_line(c):
    d = tempfile.mkdtemp(dir=c.tmp)
    conf = os.path.join(d, "kmsd.conf")
    text = BASE_CONFIG.format(dir=d) + "\n[gcp]\ntimeout = 0\n"
    with open(conf, "w") as f:
        f.write(text)
    p = subprocess.run([KMSD, "--check-config", "--config", conf],
                       capture_output=True, timeout=30)
    eq(p.returncode, 1)
    line = text.count("\n")
    check(p.stderr.decode().startswith(f"{conf}:{line}: [gcp] timeout"),
          p.stderr)


@case
def bad_key_id_refused_at_start(c):
    k = Kmsd(extra=f"\n[key bad]\nkey_id = {KEY}k/cryptoKeyVersions/1\n" +
             gcp_section(c.fake, c.sa))
    k.env = clean_env(c.home)
    c.extra.append(k)
    try:
        k.start(timeout=5)
        raise AssertionError("kmsd started with a version key id")
    except RuntimeError as e:
        check("cryptoKeyVersions" in str(e), str(e))


@case
def logs_hold_no_secrets(c):
    log = c.k.logtext()
    with open(c.sa) as f:
        key_lines = [ln for ln in json.load(f)["private_key"].split("\n")
                     if len(ln) > 20 and "-----" not in ln]
    for tok in c.fake.stats()["issued"]:
        check(tok not in log, "a token in the log")
        check(tok[10:30] not in log, "part of a token in the log")
    for ln in key_lines:
        check(ln not in log, "private key material in the log")
    for word in ("PRIVATE KEY", "eyJhbGci", "the real plaintext", "Bearer"):
        check(word not in log, f"{word!r} in the log")
    check("provider_unavailable" in log, "failures are logged")


if __name__ == "__main__":
    run_cases(setup, teardown)
