#!/usr/bin/python3
"""The AWS KMS provider against a real moto_server.

moto_server (pyenv python, on these machines) is started on a free loopback
port with INITIAL_NO_AUTH_ACTION_COUNT=3: aws_setup.py spends the three
unauthenticated actions on an admin user, then creates the keys and the IAM
users (encrypt-only, decrypt, reencrypt-only) signed as that admin, and from
then on moto checks every SigV4 signature and IAM policy. kmsd reaches moto
through aws_proxy.py, which records requests (targets, signing key ids,
session tokens, IMDS headers), counts TCP connections and injects faults.
The IMDS and web identity cases switch moto's authentication off for their
duration (moto's IMDS hands out credentials IAM does not know, and moto
routes unsigned STS calls only without authentication), and check instead
that kmsd signed with exactly the credentials those services returned.
"""
import atexit
import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from aws_proxy import Proxy
from harness import Kmsd, Raw, case, check, eq, kmsctl, run_cases

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "us-east-1"
PYENV_SHIMS = os.path.expanduser("~/.pyenv/shims")
FALLBACK_SHIMS = "/root/.pyenv/shims"

# kmsd and the tools must see only the AWS settings a case gives them.
for _k in list(os.environ):
    if _k.startswith("AWS_"):
        del os.environ[_k]
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def find_tool(name):
    for p in (shutil.which(name), os.path.join(PYENV_SHIMS, name),
              os.path.join(FALLBACK_SHIMS, name)):
        if p and os.access(p, os.X_OK):
            return p
    raise RuntimeError(f"{name} not found (pyenv python with moto)")


def die_with_parent():
    # moto must not outlive this test, even if the test is killed: the
    # kernel signals it when we go (the pyenv shim execs, same process)
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG,
                                            signal.SIGTERM)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- the world: moto, the proxy, kmsd instances --------------------------

class World:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kmsd-aws-")
        os.environ["HOME"] = self.dir  # no ~/.aws of the machine
        self.moto = None
        self.proxy = None
        self.kmsds = []
        self.logs = []
        self.logtext = {}

    def start_moto(self):
        server = find_tool("moto_server")
        self.python = os.path.join(os.path.dirname(server), "python3")
        self.moto_port = free_port()
        self.moto_url = f"http://127.0.0.1:{self.moto_port}"
        self.moto_log = open(os.path.join(self.dir, "moto.log"), "w")
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        # its own session: the pyenv shim is a shell that execs python,
        # and the whole group is stopped at the end
        self.moto = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(self.moto_port)],
            stdout=self.moto_log, stderr=self.moto_log, env=env,
            start_new_session=True, preexec_fn=die_with_parent)
        atexit.register(self.stop_moto)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.moto.poll() is not None:
                raise RuntimeError("moto_server exited")
            try:
                urllib.request.urlopen(self.moto_url + "/moto-api/",
                                       timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not answer")

    def stop_moto(self):
        if self.moto is None:
            return
        try:
            os.killpg(self.moto.pid, signal.SIGTERM)
            self.moto.wait(10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.moto.pid, signal.SIGKILL)
            self.moto.wait(10)
        self.moto = None
        self.moto_log.close()

    def setup_aws(self):
        p = subprocess.run([self.python, os.path.join(HERE, "aws_setup.py"),
                            self.moto_url], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("aws_setup.py: " + p.stderr.decode())
        self.aws = json.loads(p.stdout)
        self.secrets = [self.aws[u]["secret"]
                        for u in ("admin", "enc", "dec", "reenc")]
        self.secrets += [c[f] for c in self.aws["ecs"]
                         for f in ("secret", "token")]
        self.secrets += ["test-secret-key", "test-session-token"]

    def moto_auth(self, on):
        """Switch moto's SigV4/IAM checks (reset-auth: 0 = on now)."""
        req = urllib.request.Request(self.moto_url + "/moto-api/reset-auth",
                                     data=b"0" if on else b"inf",
                                     headers={"Content-Type": "text/plain"},
                                     method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    def kmsd(self, user="dec", aws="", env=None, endpoint=None,
             region=True, start=True):
        a = self.aws
        e = {}
        if user is not None:
            e["AWS_ACCESS_KEY_ID"] = a[user]["id"]
            e["AWS_SECRET_ACCESS_KEY"] = a[user]["secret"]
        e.update(env or {})
        conf = CONFIG.replace("@AWS@", "\n".join(filter(None, [
            f"region = {REGION}" if region else "",
            f"endpoint = {endpoint or self.proxy.url}", aws])))
        conf = (conf.replace("@A@", a["key_a"]["arn"])
                .replace("@B@", a["key_b"]["id"])
                .replace("@C@", a["key_c"]["arn"]))
        k = Kmsd(config=conf, env=e)
        self.kmsds.append(k)
        self.logs.append(k.log.name)
        return k.start() if start else k

    def stop_kmsd(self, k):
        try:
            k.stop()
        finally:
            self.logtext[k.log.name] = k.logtext()
            k.cleanup()
            self.kmsds.remove(k)

    def teardown(self):
        errors = []
        for k in list(self.kmsds):
            try:
                self.stop_kmsd(k)
            except Exception as ex:  # keep stopping the others
                errors.append(ex)
        if self.proxy is not None:
            self.proxy.stop()
        self.stop_moto()
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]


CONFIG = """
[kmsd]
state_dir = {dir}/state
frame_timeout = 1s

[aws]
@AWS@

; a key ARN (region from the ARN)
[key a]
key_id = @A@

; a bare key id (region from [aws] or the profile)
[key b]
key_id = @B@

[key alias]
key_id = alias/kmsd-test

[key local]
key_id = local/dev

; version 1 = key a, version 2 = key b: rewrap = ReEncrypt
[key rot]
version = 2
key_id = @B@
key_id.1 = @A@

; version 2 in another region: rewrap = Decrypt there, Encrypt here
[key west]
version = 2
key_id = @C@
key_id.1 = @A@

[key oldlocal]
key_id = local/old

; version 1 local, version 2 AWS
[key mig]
version = 2
key_id = @A@
key_id.1 = local/old

[socket s]
path = {dir}/s.sock
allow = generate, encrypt, decrypt, rewrap
"""


def sock(k):
    return k.path("s.sock")


def ok(k, *args, input=b""):
    p = kmsctl(sock(k), *args, input=input)
    if p.returncode != 0:
        raise AssertionError(f"kmsctl {' '.join(args)}: exit "
                             f"{p.returncode}: {p.stderr.decode()!r}")
    return p.stdout


def fails(k, code, *args, input=b""):
    p = kmsctl(sock(k), *args, input=input)
    eq(p.returncode, 1, f"kmsctl {' '.join(args)} exit code:")
    err = p.stderr.decode()
    check(err.startswith(f"kmsctl: {code}: "), f"want {code}, got {err!r}")
    return err


def encrypt(k, key, pt, *ctx):
    return ok(k, "encrypt", key, *ctx, input=pt).decode().strip()


W = None


def setup():
    global W
    W = World()
    try:
        W.start_moto()
        W.setup_aws()
        W.proxy = Proxy(W.moto_port)
        W.main = W.kmsd("dec")
    except BaseException:
        W.teardown()
        raise
    return W


def teardown(w):
    w.teardown()


# --- cases -------------------------------------------------------------

@case
def decrypt_user_wraps_and_unwraps_every_key_id_form(w):
    k = w.main
    for key in ("a", "b", "alias"):
        out = ok(k, "generate", key, "-c", "user_id=42").decode().split()
        ct, dk = out[0], base64.b64decode(out[1])
        check(ct.startswith("v1:"), ct)
        eq(ok(k, "decrypt", key, "-c", "user_id=42", ct), dk, key)
        ct = encrypt(k, key, b"hello " + key.encode())
        eq(ok(k, "decrypt", key, ct), b"hello " + key.encode(), key)
    # every request was signed as the decrypt user, in the key's region
    reqs = w.proxy.kms_requests()
    check(reqs and all(r["akid"] == w.aws["dec"]["id"] and
                       r["region"] == REGION for r in reqs), reqs[:1])


@case
def encrypt_only_user_wraps_but_unwrap_is_provider_denied(w):
    k = w.kmsd("enc")
    out = ok(k, "generate", "a", "-c", "id=1").decode().split()
    ct = encrypt(k, "a", b"secret", "-c", "id=1")
    err = fails(k, "provider_denied", "decrypt", "a", "-c", "id=1", ct)
    check("kms:Decrypt" in err, err)
    # the decrypt user opens both
    eq(ok(w.main, "decrypt", "a", "-c", "id=1", ct), b"secret")
    eq(ok(w.main, "decrypt", "a", "-c", "id=1", out[0]),
       base64.b64decode(out[1]))
    w.stop_kmsd(k)


@case
def wrong_secret_is_provider_denied(w):
    k = w.kmsd(None, env={"AWS_ACCESS_KEY_ID": w.aws["dec"]["id"],
                          "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    w.proxy.clear()
    err = fails(k, "provider_denied", "encrypt", "a", input=b"x")
    check("SignatureDoesNotMatch" in err, err)
    eq(len(w.proxy.kms_requests()), 1, "an auth failure is not retried:")
    w.stop_kmsd(k)


@case
def wrong_context_is_decryption_failed(w):
    k = w.main
    ct = encrypt(k, "a", b"ctx", "-c", "id=1", "-c", "kind=user")
    for args in (["-c", "id=2", "-c", "kind=user"], ["-c", "id=1"], []):
        err = fails(k, "decryption_failed", "decrypt", "a", *args, ct)
        check("InvalidCiphertextException" in err, err)
    # pairs in any order
    eq(ok(k, "decrypt", "a", "-c", "kind=user", "-c", "id=1", ct), b"ctx")
    # a ciphertext that is not KMS's
    fails(k, "decryption_failed", "decrypt", "a", "v1:" +
          base64.b64encode(b"garbage" * 5).decode())


@case
def empty_context_is_no_context_for_aws(w):
    # AWS treats EncryptionContext {} as none; kmsd sends {} as given
    # (kms_encrypted compatibility) and documents the equivalence.
    k = w.main
    ct = encrypt(k, "a", b"e", "--empty-context")
    eq(ok(k, "decrypt", "a", ct), b"e")
    eq(ok(k, "decrypt", "a", "--empty-context", ct), b"e")
    fails(k, "decryption_failed", "decrypt", "a", "-c", "x=1", ct)


@case
def credentials_from_shared_files_with_a_profile(w):
    creds = os.path.join(w.dir, "credentials")
    config = os.path.join(w.dir, "config")
    with open(creds, "w") as f:
        f.write(f"[default]\naws_access_key_id = {w.aws['enc']['id']}\n"
                f"aws_secret_access_key = {w.aws['enc']['secret']}\n\n"
                f"[kmsd]\naws_access_key_id = {w.aws['dec']['id']}\n"
                f"aws_secret_access_key = {w.aws['dec']['secret']}\n")
    with open(config, "w") as f:
        f.write(f"[profile kmsd]\nregion = {REGION}\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": config}
    # [aws] profile; the region of the bare key id comes from the profile
    k = w.kmsd(None, aws="profile = kmsd", env=env, region=False)
    w.proxy.clear()
    ct = encrypt(k, "b", b"from a file", "-c", "a=b")
    eq(ok(k, "decrypt", "b", "-c", "a=b", ct), b"from a file")
    eq({r["akid"] for r in w.proxy.kms_requests()}, {w.aws["dec"]["id"]})
    check("credentials from profile kmsd, region us-east-1" in k.logtext(),
          k.logtext())
    w.stop_kmsd(k)
    # AWS_PROFILE picks the profile too; [default] is the encrypt user
    k = w.kmsd(None, env=dict(env, AWS_PROFILE="default"))
    fails(k, "provider_denied", "decrypt", "a", "-c", "a=b",
          encrypt(k, "a", b"z", "-c", "a=b"))
    w.stop_kmsd(k)


@case
def credentials_from_imds_v2(w):
    w.moto_auth(False)
    try:
        k = w.kmsd(None, aws=f"imds_endpoint = {w.proxy.url}",
                   env={"AWS_EC2_METADATA_DISABLED": "false"})
        w.proxy.clear()
        ct = encrypt(k, "a", b"imds", "-c", "n=1")
        eq(ok(k, "decrypt", "a", "-c", "n=1", ct), b"imds")
        reqs = w.proxy.requests
        eq([(r["method"], r["path"]) for r in reqs[:3]], [
            ("PUT", "/latest/api/token"),
            ("GET", "/latest/meta-data/iam/security-credentials/"),
            ("GET", "/latest/meta-data/iam/security-credentials/"
                    "default-role")])
        eq(reqs[0]["imds_ttl"], "21600")
        eq([r["imds_token"] for r in reqs[1:3]], ["fake-imdsv2-token"] * 2)
        kms = w.proxy.kms_requests()
        eq(len(kms), 2)
        # signed with exactly what moto's IMDS handed out, fetched once
        eq({(r["akid"], r["token"]) for r in kms},
           {("test-key", "test-session-token")})
    finally:
        w.moto_auth(True)
    # with authentication back on, moto's IAM does not know those keys
    fails(k, "provider_denied", "encrypt", "a", input=b"x")
    w.stop_kmsd(k)


@case
def credentials_from_web_identity(w):
    tok = os.path.join(w.dir, "web-token")
    with open(tok, "w") as f:
        f.write("eyJhbGciOiJub25lIn0.eyJzdWIiOiJrbXNkIn0.sig\n")
    w.moto_auth(False)
    try:
        k = w.kmsd(None, aws=f"sts_endpoint = {w.proxy.url}/sts/", env={
            "AWS_WEB_IDENTITY_TOKEN_FILE": tok,
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/kmsd-web",
            "AWS_ROLE_SESSION_NAME": "kmsd-test"})
        w.proxy.clear()
        ct = encrypt(k, "a", b"web", "-c", "n=1")
        eq(ok(k, "decrypt", "a", "-c", "n=1", ct), b"web")
        sts = w.proxy.requests[0]
        eq((sts["method"], sts["path"]), ("POST", "/sts/"))
        eq(sts["authorization"], "")        # unsigned
        body = sts["body"].decode()
        check("Action=AssumeRoleWithWebIdentity" in body and
              "WebIdentityToken=eyJhbGciOiJub25lIn0.eyJzdWIiOiJrbXNkIn0.sig"
              in body and "RoleSessionName=kmsd-test" in body, body)
        kms = w.proxy.kms_requests()
        eq(len(kms), 2)
        akids = {r["akid"] for r in kms}
        eq(len(akids), 1)
        check(list(akids)[0].startswith("ASIA") and
              all(r["token"] for r in kms), kms[0])
    finally:
        w.moto_auth(True)
    w.stop_kmsd(k)


@case
def container_credentials_refresh_before_expiry_and_on_expired_token(w):
    tokfile = os.path.join(w.dir, "ecs-token")
    with open(tokfile, "w") as f:
        f.write("ecs-secret-authorization\n")
    fetches = []
    lifetime = 8

    sessions = w.aws["ecs"]

    def ecs(rec):
        # the agent's answer: the next session of the role, which moto
        # verifies (token and role policy) when kmsd signs with it
        h = rec["authorization"]
        if h != "ecs-secret-authorization":
            return 401, [], b"unauthorized"
        c = sessions[len(fetches)]
        fetches.append(time.time())
        exp = time.gmtime(time.time() + lifetime)
        return 200, [("Content-Type", "application/json")], json.dumps({
            "AccessKeyId": c["id"], "SecretAccessKey": c["secret"],
            "Token": c["token"],
            "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", exp),
        }).encode()

    def tok(n):
        return sessions[n - 1]["token"]

    w.proxy.local["/ecs/creds"] = ecs
    k = w.kmsd(None, env={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": w.proxy.url + "/ecs/creds",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokfile})
    w.proxy.clear()
    ct = encrypt(k, "a", b"ecs")
    eq(len(fetches), 1)
    eq(w.proxy.kms_requests()[-1]["token"], tok(1))
    # past half the lifetime: served at once with the old credentials
    # while a refresh runs in the background
    time.sleep(lifetime / 2 + 0.1)
    eq(ok(k, "decrypt", "a", ct), b"ecs")
    eq(w.proxy.kms_requests()[-1]["token"], tok(1))
    deadline = time.time() + 2
    while len(fetches) < 2 and time.time() < deadline:
        time.sleep(0.02)
    eq(len(fetches), 2)
    eq(ok(k, "decrypt", "a", ct), b"ecs")
    eq(w.proxy.kms_requests()[-1]["token"], tok(2))
    # KMS says the token expired: fetch anew, send again, once
    w.proxy.set_fault("expired", 1)
    eq(ok(k, "decrypt", "a", ct), b"ecs")
    eq(len(fetches), 3)
    eq([r["token"] for r in w.proxy.kms_requests()[-2:]], [tok(2), tok(3)])
    w.stop_kmsd(k)


@case
def no_credentials_is_a_clear_start_error(w):
    k = w.kmsd(None, start=False)
    try:
        k.start(timeout=5)
        raise AssertionError("kmsd started without credentials")
    except RuntimeError as ex:
        check("no AWS credentials" in str(ex), str(ex))
    w.kmsds.remove(k)
    k.cleanup()


@case
def interop_with_the_aws_cli(w):
    aws = find_tool("aws")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=w.aws["dec"]["id"],
               AWS_SECRET_ACCESS_KEY=w.aws["dec"]["secret"],
               AWS_DEFAULT_REGION=REGION, AWS_PAGER="")
    base = [aws, "--endpoint-url", w.moto_url, "kms"]
    pt = os.path.join(w.dir, "pt")
    with open(pt, "wb") as f:
        f.write(b"from the aws cli")
    p = subprocess.run(base + ["encrypt", "--key-id", w.aws["key_a"]["arn"],
                               "--plaintext", "fileb://" + pt,
                               "--encryption-context", "purpose=interop",
                               "--output", "text", "--query",
                               "CiphertextBlob"],
                       env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    eq(p.returncode, 0, p.stderr.decode())
    stored = "v1:" + p.stdout.decode().strip()
    eq(ok(w.main, "decrypt", "a", "-c", "purpose=interop", stored),
       b"from the aws cli")
    # and the other way round
    ct = encrypt(w.main, "a", b"from kmsd", "-c", "purpose=interop")
    blob = os.path.join(w.dir, "blob")
    with open(blob, "wb") as f:
        f.write(base64.b64decode(ct[3:], validate=True))
    p = subprocess.run(base + ["decrypt", "--ciphertext-blob",
                               "fileb://" + blob, "--encryption-context",
                               "purpose=interop", "--output", "text",
                               "--query", "Plaintext"],
                       env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    eq(p.returncode, 0, p.stderr.decode())
    eq(base64.b64decode(p.stdout.decode().strip()), b"from kmsd")


@case
def rewrap_between_aws_versions_is_one_reencrypt(w):
    k = w.main
    v1 = encrypt(k, "a", b"rotate me", "-c", "id=7")
    check(v1.startswith("v1:"))
    w.proxy.clear()
    v2 = ok(k, "rewrap", "rot", "-c", "id=7",
            input=(v1 + "\n").encode()).decode().strip()
    check(v2.startswith("v2:"), v2)
    eq(w.proxy.targets(), ["TrentService.ReEncrypt"])
    eq(ok(k, "decrypt", "rot", "-c", "id=7", v2), b"rotate me")
    # the v1 string still opens through version 1
    eq(ok(k, "decrypt", "rot", "-c", "id=7", v1), b"rotate me")
    # a new context on the way
    v2n = ok(k, "rewrap", "rot", "-c", "id=7", "--new-context", "id=8",
             input=(v1 + "\n").encode()).decode().strip()
    eq(ok(k, "decrypt", "rot", "-c", "id=8", v2n), b"rotate me")
    fails(k, "decryption_failed", "decrypt", "rot", "-c", "id=7", v2n)


@case
def reencrypt_only_user_rewraps_without_decrypt(w):
    k = w.kmsd("reenc")
    v1 = encrypt(w.main, "a", b"never seen", "-c", "id=9")
    v2 = ok(k, "rewrap", "rot", "-c", "id=9",
            input=(v1 + "\n").encode()).decode().strip()
    check(v2.startswith("v2:"), v2)
    fails(k, "provider_denied", "decrypt", "rot", "-c", "id=9", v2)
    eq(ok(w.main, "decrypt", "rot", "-c", "id=9", v2), b"never seen")
    w.stop_kmsd(k)


@case
def rewrap_across_regions_is_decrypt_then_encrypt(w):
    k = w.main
    v1 = encrypt(k, "a", b"go west", "-c", "id=3")
    w.proxy.clear()
    v2 = ok(k, "rewrap", "west", "-c", "id=3",
            input=(v1 + "\n").encode()).decode().strip()
    check(v2.startswith("v2:"), v2)
    eq([(r["target"], r["region"]) for r in w.proxy.kms_requests()],
       [("TrentService.Decrypt", "us-east-1"),
        ("TrentService.Encrypt", "us-west-2")])
    eq(ok(k, "decrypt", "west", "-c", "id=3", v2), b"go west")


@case
def rewrap_from_local_to_aws(w):
    k = w.main
    v1 = encrypt(k, "oldlocal", b"migrate", "-c", "id=4")
    w.proxy.clear()
    v2 = ok(k, "rewrap", "mig", "-c", "id=4",
            input=(v1 + "\n").encode()).decode().strip()
    check(v2.startswith("v2:"), v2)
    eq(w.proxy.targets(), ["TrentService.Encrypt"])
    eq(ok(k, "decrypt", "mig", "-c", "id=4", v2), b"migrate")


@case
def sequential_requests_reuse_one_connection(w):
    k = w.kmsd("dec")
    w.proxy.clear()
    n = 20
    for i in range(n):
        encrypt(k, "a", b"x%d" % i)
    eq(len(w.proxy.kms_requests()), n)
    eq(w.proxy.accepts, 1, "TCP connections kmsd opened for "
       f"{n} requests:")
    w.stop_kmsd(k)


@case
def throttling_is_retried_then_surfaced(w):
    k = w.main
    for kind in ("throttle", "429"):
        w.proxy.clear()
        w.proxy.set_fault(kind)
        err = fails(k, "throttled", "encrypt", "a", input=b"t")
        eq(len(w.proxy.kms_requests()), 3, kind)   # AWS_MAX_TRIES
        check("retried" in err, err)
    # a short burst is ridden out
    w.proxy.clear()
    w.proxy.set_fault("throttle", 2)
    ct = encrypt(k, "a", b"t")
    eq(len(w.proxy.kms_requests()), 3)
    eq(ok(k, "decrypt", "a", ct), b"t")


@case
def server_errors_are_retried_then_provider_unavailable(w):
    k = w.main
    w.proxy.clear()
    w.proxy.set_fault("503")
    err = fails(k, "provider_unavailable", "encrypt", "a", input=b"u")
    eq(len(w.proxy.kms_requests()), 3)
    check("ServiceUnavailable" in err, err)
    w.proxy.clear()
    w.proxy.set_fault("503", 1)
    eq(ok(k, "decrypt", "a", encrypt(k, "a", b"u")), b"u")
    eq(len(w.proxy.kms_requests()), 3)     # 503, Encrypt, Decrypt


@case
def unreachable_endpoint_is_provider_unavailable(w):
    k = w.kmsd("dec", endpoint=f"http://127.0.0.1:{free_port()}")
    err = fails(k, "provider_unavailable", "encrypt", "a", input=b"x")
    check("3 tries" in err, err)
    w.stop_kmsd(k)


@case
def hung_endpoint_hits_the_deadline_while_others_are_served(w):
    k = w.kmsd("dec", aws="timeout = 500ms")
    encrypt(k, "a", b"warm")               # connection up, credentials
    w.proxy.set_fault("hang")
    t0 = time.time()
    hung = subprocess.Popen([os.environ.get("KMSCTL",
                                            "build/client/kmsctl"),
                             "-s", sock(k), "encrypt", "a"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    hung.stdin.write(b"h")
    hung.stdin.close()
    hung.stdin = None
    time.sleep(0.1)
    # the same daemon answers another client meanwhile: the local calls
    # finish while the AWS call is still waiting for its deadline
    r = Raw(sock(k))
    try:
        g = r.call({"id": 1, "op": "generate", "key": "local"})
        d = r.call({"id": 2, "op": "decrypt", "key": "local",
                    "ciphertext": g["ciphertext"]})
    finally:
        r.close()
    eq(d.get("plaintext"), g["plaintext"])
    check(hung.poll() is None, "the AWS call ended before the local ones")
    # a client that goes away mid-call: kmsd cancels its AWS request
    gone = Raw(sock(k))
    gone.send({"id": 1, "op": "encrypt", "key": "a", "plaintext": b"bye"})
    time.sleep(0.05)
    gone.close()
    out, err = hung.communicate(timeout=10)
    elapsed = time.time() - t0
    eq(hung.returncode, 1)
    check(err.decode().startswith("kmsctl: timeout: "), err)
    check(0.4 < elapsed < 1.5, f"deadline took {elapsed:.2f}s")
    w.proxy.clear()
    eq(ok(k, "decrypt", "a", encrypt(k, "a", b"after")), b"after")
    w.stop_kmsd(k)


@case
def reload_rebuilds_the_aws_context(w):
    k = w.main
    ct = encrypt(k, "a", b"before reload", "-c", "r=1")
    n = k.logtext().count("aws: credentials from environment")
    k.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while "reloaded" not in k.logtext() and time.time() < deadline:
        time.sleep(0.02)
    check("reloaded" in k.logtext(), k.logtext())
    eq(k.logtext().count("aws: credentials from environment"), n + 1)
    eq(ok(k, "decrypt", "a", "-c", "r=1", ct), b"before reload")
    eq(ok(k, "decrypt", "a", "-c", "r=1", encrypt(k, "a", b"after", "-c",
                                                "r=1")), b"after")


@case
def check_config_names_file_and_line(w):
    bad = [("bogus = 1", "unknown option 'bogus' in [aws]"),
           ("timeout = 5h", "timeout must be a duration"),
           ("endpoint = http://example.com", "plain http is only for "
                                             "loopback"),
           ("region = US East", "region must be like us-east-1"),
           ("max_inflight = 0", "max_inflight must be")]
    for line, want in bad:
        if line.startswith("endpoint = "):
            k = w.kmsd(endpoint=line.split(" = ")[1], start=False)
        else:
            k = w.kmsd(aws=line, region=not line.startswith("region"),
                       start=False)
        p = subprocess.run([os.environ.get("KMSD", "build/daemon/kmsd"),
                            "--check-config", "--config", k.conf],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        eq(p.returncode, 1, line)
        lineno = [i for i, s in enumerate(open(k.conf), 1)
                  if s.strip() == line][0]
        check(f"kmsd.conf:{lineno}: " in p.stderr.decode() and
              want in p.stderr.decode(), p.stderr.decode())
        w.kmsds.remove(k)
        k.cleanup()


@case
def no_secret_reaches_a_log(w):
    texts = dict(w.logtext)
    for k in w.kmsds:
        texts[k.log.name] = k.logtext()
    check(len(texts) >= 10, "logs collected")
    for name, text in texts.items():
        for s in w.secrets + ["ecs-secret-authorization"]:
            check(s not in text, f"a secret in {name}")


if __name__ == "__main__":
    run_cases(setup, teardown)
