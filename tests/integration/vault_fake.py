"""vault_fake.py: a strict fake of Vault's HTTP API for kmsd's tests.

Python 3 standard library plus Debian's python3-cryptography (HKDF,
AES-GCM). Runs in the test's own process on a thread, on 127.0.0.1 with a
port the kernel picks; stop() shuts it down (tests call it in a finally).

What it implements, as OpenBao/Vault do (PROVIDERS.md D):
- transit keys with versions, derived or not (HKDF-SHA256 over the decoded
  context, salt none, L = 32; AES-256-GCM with a 12-byte nonce), so a wrong
  context really fails with "cipher: message authentication failed";
  encrypt, decrypt, rewrap, rotate, key create; Vault's error texts;
- Go's base64 StdEncoding leniency: "\r" and "\n" are skipped, nothing else;
- tokens with TTL, max TTL, renewable flag, revocation, namespace and
  path-glob policies; auth/token/lookup-self and renew-self;
- AppRole login (role_id, secret_id) issuing renewable tokens;
- sys/audit-hash/PATH with a per-device salt, and an audit log of every
  request whose string values are HMAC'd as Vault's audit devices do.

Strictness: every request must carry X-Vault-Request, JSON bodies with a
JSON content type, only fields Vault knows for the endpoint, with the
right types, and the namespace the token lives in. Anything kmsd should
never send is answered as Vault would and also recorded in `violations`,
which the tests check at the end.

Faults: inject(glob, status=..., delay=..., count=...) answers the next
`count` requests whose path matches with that status (after sleeping
`delay` seconds), or only delays them when status is None.
"""
import base64
import binascii
import fnmatch
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class _Server(ThreadingHTTPServer):
    # the default backlog of 5 drops bursts of connects (kmsd opens many
    # connections at once)
    request_queue_size = 128


# What Vault says when a derived key gets no context (path_encrypt.go).
MISSING_CONTEXT = ("missing 'context' for key derivation; the key was "
                   "created using a derived key, which means additional, "
                   "per-request information must be included in order to "
                   "perform operations with the key")

# Fields Vault's transit/auth endpoints accept (path_*.go).
FIELDS = {
    "encrypt": {"plaintext", "context", "key_version", "associated_data",
                "nonce", "type", "convergent_encryption", "batch_input",
                "partial_failure_response_code"},
    "decrypt": {"ciphertext", "context", "associated_data", "nonce",
                "batch_input", "partial_failure_response_code"},
    "rewrap": {"ciphertext", "context", "key_version", "nonce",
               "batch_input"},
    "renew-self": {"increment"},
    "login": {"role_id", "secret_id"},
    "audit-hash": {"input"},
    "keys": {"type", "derived", "convergent_encryption", "exportable",
             "allow_plaintext_backup", "auto_rotate_period"},
    "rotate": set(),
}


def go_b64decode(s):
    """Go's base64.StdEncoding.DecodeString: padding required, "\\r" and
    "\\n" skipped, anything else outside the alphabet is an error."""
    s = s.replace("\r", "").replace("\n", "")
    return base64.b64decode(s.encode("ascii"), validate=True)


def hkdf32(raw, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=info).derive(raw)


class VaultError(Exception):
    def __init__(self, status, *errors):
        super().__init__(status, errors)
        self.status = status
        self.errors = list(errors) or ["permission denied"]


class Token:
    def __init__(self, ns, policies, ttl, max_ttl, renewable):
        self.id = "hvs." + base64.urlsafe_b64encode(
            os.urandom(18)).decode().rstrip("=")
        self.accessor = uuid.uuid4().hex
        self.ns = ns
        self.policies = list(policies)
        self.ttl = ttl              # default TTL, seconds; 0 = never expires
        now = time.monotonic()
        self.expires = now + ttl if ttl else None
        self.max_expires = now + max_ttl if max_ttl else None
        self.renewable = renewable
        self.revoked = False

    def ttl_left(self):
        if self.expires is None:
            return 0
        return max(0, int(self.expires - time.monotonic()))

    def expire_time(self):
        """RFC 3339, as Vault writes it; None for a token without one."""
        if self.expires is None:
            return None
        at = time.time() + (self.expires - time.monotonic())
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + \
            ".%06dZ" % int((at % 1) * 1e6)

    def alive(self):
        return not self.revoked and (self.expires is None or
                                     time.monotonic() < self.expires)


class Key:
    def __init__(self, derived):
        self.derived = derived
        self.versions = {1: os.urandom(32)}
        self.min_decryption_version = 1

    @property
    def latest(self):
        return max(self.versions)

    def enc_key(self, version, context):
        raw = self.versions[version]
        if not self.derived:
            return raw
        if not context:
            raise VaultError(400, MISSING_CONTEXT)
        return hkdf32(raw, context)

    def encrypt(self, pt, context, nonce=None):
        v = self.latest
        nonce = nonce or os.urandom(12)
        ct = AESGCM(self.enc_key(v, context)).encrypt(nonce, pt, None)
        return f"vault:v{v}:" + base64.b64encode(nonce + ct).decode()

    def decrypt(self, s, context):
        if not s.startswith("vault:"):
            raise VaultError(400, "invalid ciphertext: no prefix")
        parts = s.split(":", 2)
        if len(parts) != 3:
            raise VaultError(400, "invalid ciphertext: wrong number of "
                             "fields")
        try:
            v = int(parts[1][1:]) if parts[1].startswith("v") else None
        except ValueError:
            v = None
        if v is None:
            raise VaultError(400, "invalid ciphertext: version number "
                             "could not be decoded")
        v = v or 1
        if v > self.latest:
            raise VaultError(400, "invalid ciphertext: version is too new")
        if v < self.min_decryption_version:
            raise VaultError(400, "ciphertext or signature version is "
                             "disallowed by policy (too old)")
        try:
            blob = go_b64decode(parts[2])
        except (binascii.Error, ValueError):
            raise VaultError(400, "invalid ciphertext: could not decode "
                             "base64")
        if len(blob) < 12 + 16:
            raise VaultError(400, "invalid ciphertext length")
        try:
            return AESGCM(self.enc_key(v, context)).decrypt(
                blob[:12], blob[12:], None)
        except InvalidTag:
            raise VaultError(400, "cipher: message authentication failed")


class Role:
    def __init__(self, ns, role_id, secret_id, policies, ttl, max_ttl):
        self.ns = ns
        self.role_id = role_id
        self.secret_ids = {secret_id}
        self.policies = policies
        self.ttl = ttl
        self.max_ttl = max_ttl


def _norm_ns(ns):
    return (ns or "").strip("/")


class FakeVault:
    def __init__(self, audit_salt=None, audit_path="file/", mount="transit"):
        self.lock = threading.RLock()
        self.mount = mount
        self.tokens = {}
        self.keys = {}
        self.roles = {}
        self.audit_devices = {audit_path: audit_salt or str(uuid.uuid4())}
        self.requests = []
        self.audit = []
        self.violations = []
        self.faults = []
        self.refuse_renewal = False  # renew-self answers 400, as for a
        # token whose role stopped allowing renewal
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self
        self.thread = None

    # -- lifecycle ----------------------------------------------------

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # -- set-up, as an operator would ----------------------------------

    def create_token(self, policies=("transit/*",), ttl=0, max_ttl=0,
                     renewable=True, ns=""):
        with self.lock:
            t = Token(_norm_ns(ns), policies, ttl, max_ttl, renewable)
            self.tokens[t.id] = t
            return t.id

    def revoke(self, token_id):
        with self.lock:
            self.tokens[token_id].revoked = True

    def token(self, token_id):
        return self.tokens[token_id]

    def create_key(self, name, derived=True, ns="", raw=None):
        with self.lock:
            k = Key(derived)
            if raw is not None:
                k.versions = {1: raw}
            self.keys[(_norm_ns(ns), name)] = k
            return k

    def key(self, name, ns=""):
        return self.keys[(_norm_ns(ns), name)]

    def rotate(self, name, ns=""):
        with self.lock:
            k = self.key(name, ns)
            k.versions[k.latest + 1] = os.urandom(32)

    def add_role(self, role_id, secret_id, policies=("transit/*",), ttl=60,
                 max_ttl=0, ns=""):
        with self.lock:
            self.roles[(_norm_ns(ns), role_id)] = Role(
                _norm_ns(ns), role_id, secret_id, policies, ttl, max_ttl)

    def inject(self, glob, status=None, delay=0.0, count=1, errors=None):
        with self.lock:
            self.faults.append({"glob": glob, "status": status,
                                "delay": delay, "count": count,
                                "errors": errors or ["injected fault"]})

    def clear_faults(self):
        with self.lock:
            self.faults = []

    def audit_hash(self, s, path="file/"):
        salt = self.audit_devices[path]
        return "hmac-sha256:" + hmac.new(salt.encode(), s.encode(),
                                         hashlib.sha256).hexdigest()

    def count(self, glob, status=None):
        with self.lock:
            return sum(1 for r in self.requests
                       if fnmatch.fnmatchcase(r["path"], glob) and
                       (status is None or r["status"] == status))

    def requests_to(self, glob):
        with self.lock:
            return [r for r in self.requests
                    if fnmatch.fnmatchcase(r["path"], glob)]

    # -- request handling ----------------------------------------------

    def _violation(self, what):
        self.violations.append(what)

    def _fault(self, path):
        with self.lock:
            for f in self.faults:
                if f["count"] > 0 and fnmatch.fnmatchcase(path, f["glob"]):
                    f["count"] -= 1
                    return dict(f)
        return None

    def _auth(self, headers, ns, path):
        tid = headers.get("X-Vault-Token")
        if not tid:
            self._violation(f"{path}: no X-Vault-Token")
            raise VaultError(403)
        t = self.tokens.get(tid)
        if t is None or not t.alive() or t.ns != ns:
            raise VaultError(403)
        return t

    def _allowed(self, t, path):
        if path.startswith("auth/token/"):
            return  # the default policy's self-service paths
        if not any(fnmatch.fnmatchcase(path, g) for g in t.policies):
            raise VaultError(403, "1 error occurred:\n\t* permission "
                             "denied\n\n")

    def _audit(self, path, body):
        salt = self.audit_devices[next(iter(self.audit_devices))]
        hashed = {k: ("hmac-sha256:" + hmac.new(
            salt.encode(), v.encode(), hashlib.sha256).hexdigest()
            if isinstance(v, str) else v) for k, v in body.items()}
        self.audit.append({"path": path, "request": {"data": hashed}})

    def _fields(self, kind, path, body):
        for k, v in body.items():
            if k not in FIELDS[kind]:
                self._violation(f"{path}: unknown field {k!r}")
            elif kind != "keys" and not isinstance(v, str):
                self._violation(f"{path}: field {k!r} is not a string")

    def _b64field(self, body, name, what):
        if name not in body:
            return None
        try:
            return go_b64decode(body[name])
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise VaultError(400, f"failed to base64-decode {what}")

    def handle(self, method, rawpath, headers, raw):
        """(status, body dict or None) for one request."""
        if not rawpath.startswith("/v1/"):
            self._violation(f"path {rawpath!r} outside /v1/")
            raise VaultError(404, "no handler for route")
        path = rawpath[4:]
        ns = _norm_ns(headers.get("X-Vault-Namespace"))
        if headers.get("X-Vault-Request") != "true":
            self._violation(f"{path}: no X-Vault-Request: true")
        body = {}
        if method == "POST":
            ctype = headers.get("Content-Type", "")
            if not ctype.startswith("application/json"):
                self._violation(f"{path}: Content-Type {ctype!r}")
            try:
                body = json.loads(raw.decode("utf-8")) if raw else {}
            except (ValueError, UnicodeDecodeError):
                self._violation(f"{path}: body is not JSON")
                raise VaultError(400, "failed to parse JSON input")
            if not isinstance(body, dict):
                self._violation(f"{path}: body is not an object")
                raise VaultError(400, "failed to parse JSON input")
        elif raw:
            self._violation(f"{path}: {method} with a body")
        with self.lock:
            return self._route(method, path, ns, headers, body)

    def _route(self, method, path, ns, headers, body):
        m = self.mount + "/"
        parts = path.split("/")
        if path == "auth/approle/login" and method == "POST":
            self._fields("login", path, body)
            return self._login(ns, body)
        if path == "auth/token/lookup-self" and method == "GET":
            t = self._auth(headers, ns, path)
            return 200, {"data": {
                "accessor": t.accessor, "id": t.id, "policies":
                t.policies, "renewable": t.renewable, "ttl": t.ttl_left(),
                "type": "service", "path": "auth/token/create",
                "expire_time": t.expire_time(), "num_uses": 0,
                "orphan": False}}
        if path == "auth/token/renew-self" and method == "POST":
            t = self._auth(headers, ns, path)
            self._fields("renew-self", path, body)
            return self._renew(t)
        if path.startswith("sys/audit-hash/") and method == "POST":
            t = self._auth(headers, ns, path)
            self._allowed(t, path)
            self._fields("audit-hash", path, body)
            dev = path[len("sys/audit-hash/"):].rstrip("/") + "/"
            if dev not in self.audit_devices:
                raise VaultError(400, "unknown audit backend")
            if not isinstance(body.get("input"), str):
                raise VaultError(400, "the \"input\" parameter is "
                                 "required")
            h = self.audit_hash(body["input"], dev)
            # sys/ answers also carry their data at the top level
            return 200, {"hash": h, "data": {"hash": h}}
        if path.startswith(m) and method == "POST" and len(parts) >= 3:
            t = self._auth(headers, ns, path)
            self._allowed(t, path)
            op, name = parts[1], parts[2]
            if op == "keys" and len(parts) == 4 and parts[3] == "rotate":
                self._fields("rotate", path, body)
                self.rotate(name, ns)
                return 204, None
            if op == "keys" and len(parts) == 3:
                self._fields("keys", path, body)
                self.create_key(name, bool(body.get("derived")), ns)
                return 204, None
            if op in ("encrypt", "decrypt", "rewrap") and len(parts) == 3:
                self._fields(op, path, body)
                self._audit(path, body)
                return self._transit(op, ns, name, body)
        self._violation(f"unknown route {method} {path}")
        raise VaultError(404, f"no handler for route \"{path}\". route "
                         "entry not found.")

    def _transit(self, op, ns, name, body):
        key = self.keys.get((ns, name))
        if key is None:
            raise VaultError(400, "encryption key not found")
        ctx = self._b64field(body, "context", "context")
        if op == "encrypt":
            if "plaintext" not in body:
                raise VaultError(400, "missing plaintext to encrypt")
            pt = self._b64field(body, "plaintext", "plaintext")
            ct = key.encrypt(pt, ctx)
            return 200, {"data": {"ciphertext": ct,
                                  "key_version": key.latest}}
        if not body.get("ciphertext"):
            raise VaultError(400, f"missing ciphertext to {op}")
        pt = key.decrypt(body["ciphertext"], ctx)
        if op == "decrypt":
            return 200, {"data": {
                "plaintext": base64.b64encode(pt).decode()}}
        ct = key.encrypt(pt, ctx)
        return 200, {"data": {"ciphertext": ct, "key_version": key.latest}}

    def _auth_block(self, t, lease, extra=None):
        out = {"client_token": t.id, "accessor": t.accessor,
               "policies": t.policies, "token_policies": t.policies,
               "lease_duration": lease, "renewable": t.renewable,
               "token_type": "service", "orphan": True,
               "metadata": extra or {}}
        return 200, {"auth": out, "data": None, "lease_duration": 0,
                     "renewable": False, "lease_id": ""}

    def _login(self, ns, body):
        rid, sid = body.get("role_id"), body.get("secret_id")
        if not rid:
            raise VaultError(400, "missing role_id")
        role = self.roles.get((ns, rid))
        if role is None or sid not in role.secret_ids:
            raise VaultError(400, "invalid role or secret ID")
        t = Token(ns, role.policies, role.ttl, role.max_ttl, True)
        self.tokens[t.id] = t
        return self._auth_block(t, role.ttl, {"role_name": rid})

    def _renew(self, t):
        if not t.renewable or self.refuse_renewal:
            raise VaultError(400, "lease is not renewable")
        now = time.monotonic()
        ttl = t.ttl
        if t.max_expires is not None:
            left = int(t.max_expires - now)
            if left < 1:
                raise VaultError(400, "past the max TTL, cannot renew")
            ttl = min(ttl, left)
        if ttl:
            t.expires = now + ttl
        return self._auth_block(t, ttl)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _serve(self, method):
        fake = self.server.fake
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        path = self.path[4:] if self.path.startswith("/v1/") else self.path
        entry = {"method": method, "path": path,
                 "namespace": self.headers.get("X-Vault-Namespace"),
                 "token": self.headers.get("X-Vault-Token"),
                 "body": raw, "status": None}
        fault = fake._fault(path)
        if fault is not None and fault["delay"]:
            time.sleep(fault["delay"])
        try:
            if fault is not None and fault["status"] is not None:
                raise VaultError(fault["status"], *fault["errors"])
            status, out = fake.handle(method, self.path, self.headers, raw)
        except VaultError as e:
            status, out = e.status, {"errors": e.errors}
        except Exception as e:  # a fake bug must show, not hang kmsd
            status, out = 500, {"errors": [f"fake vault bug: {e!r}"]}
            fake._violation(f"fake vault bug: {e!r}")
        entry["status"] = status
        with fake.lock:
            fake.requests.append(entry)
        data = json.dumps(out).encode() if out is not None else b""
        try:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # kmsd gave up on a slow answer

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")
