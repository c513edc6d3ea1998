#!/usr/bin/python3
"""gcp_fake.py: a strict fake of Cloud KMS, Google's OAuth 2.0 token
endpoint and the GCE metadata server, for test_gcp.py.

Standard library plus Debian's python3-cryptography and python3-jwt.
Listens on 127.0.0.1 (port chosen by the kernel), prints the port on one
line, and exits when its stdin reaches EOF, so a test that dies cannot
leave it behind.

Strict, so that a kmsd bug shows up as a refusal, never as a pass:
- POST /token: a form body (application/x-www-form-urlencoded, each field
  once). grant_type jwt-bearer: the assertion's RS256 signature is checked
  against the test service account's public key, its header (alg, typ,
  kid) and its claims (exactly iss, scope, aud, iat, exp; iss = the
  account, aud = this endpoint's URL, the expected scope, a lifetime of at
  most 3600 s, iat close to now). grant_type refresh_token: the
  authorized_user client id, secret and refresh token.
- GET /computeMetadata/v1/instance/service-accounts/default/token: only
  with `Metadata-Flavor: Google` and without X-Forwarded-For.
- POST /v1/projects/P/locations/L/keyRings/R/cryptoKeys/K:encrypt|decrypt:
  a bearer token this fake issued and that has not expired, on every call;
  Content-Type application/json; a JSON object with no repeated and no
  unknown field; strict base64; every bytes field with its CRC32C as a
  decimal string, checked. Ciphertexts are AES-256-GCM under a per-key
  random key with AAD = key name + NUL + additionalAuthenticatedData, so
  they are bound to the key and to the AAD (absent AAD = empty, as in
  Cloud KMS); a mismatch is Google's 400 "Decryption failed".
  Keys named `denied` answer 403, `missing` 404.

Control (test only): POST /_fake/inject {"match", "kind", "count",
"delay"}: the next `count` requests whose path contains `match` get the
fault `kind`: 401 (also revokes every token), 403, 429, 503, slow (answer
after `delay` s; KMS and token endpoint), badcrc (wrong
ciphertextCrc32c / plaintextCrc32c), unverified (verified* flags
dropped), flip (one output bit flipped, CRC of the original), reqcrc
(Google's "checksum did not match" 400), invalid_grant (token endpoint
400), 500 (token endpoint, metadata server). POST /_fake/config
{"expires_in": N}; POST /_fake/revoke; POST /_fake/clear (faults);
GET /_fake/stats (counters, the AAD of each key's last call, and the
tokens issued, so the test can look for them in kmsd's log).
"""

import base64
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class _Server(ThreadingHTTPServer):
    # the default backlog of 5 drops bursts of connects (kmsd opens many
    # connections at once)
    request_queue_size = 128


SCOPE = "https://www.googleapis.com/auth/cloudkms"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
USER = {"client_id": "test-client-id.apps.example.com",
        "client_secret": "test-client-secret",
        "refresh_token": "1//test-refresh-token"}
METADATA_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
KMS_PATH = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/"
                      r"keyRings/[^/]+/cryptoKeys/[^/:]+):"
                      r"(encrypt|decrypt)$")
FIELDS = {
    "encrypt": {"plaintext", "plaintextCrc32c", "additionalAuthenticatedData",
                "additionalAuthenticatedDataCrc32c"},
    "decrypt": {"ciphertext", "ciphertextCrc32c",
                "additionalAuthenticatedData",
                "additionalAuthenticatedDataCrc32c"},
}
CT_MAGIC = b"FAKE1"
MAX_BODY = 1 << 20
DECRYPTION_FAILED = ("Decryption failed: verify that 'name' refers to the "
                     "correct CryptoKey.")


def _crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ CRC_TABLE[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def strict_b64(s):
    if not isinstance(s, str) or not s:
        raise ValueError("not a non-empty string")
    raw = base64.b64decode(s, validate=True)
    if base64.b64encode(raw).decode() != s:
        raise ValueError("not canonical base64")
    return raw


def no_dups(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("repeated field")
    return dict(pairs)


class Fault(Exception):
    pass


class State:
    lock = threading.Lock()
    port = 0
    sa = None
    pubkey = None
    expires_in = 3600
    tokens = {}          # token -> (expiry, source)
    issued = []
    keys = {}            # key name -> AESGCM
    faults = []
    last_aad = {}        # key name -> base64 of the AAD or None
    stats = {}

    @classmethod
    def count(cls, name, n=1):
        with cls.lock:
            cls.stats[name] = cls.stats.get(name, 0) + n

    @classmethod
    def take_fault(cls, path):
        with cls.lock:
            for f in cls.faults:
                if f["count"] > 0 and f["match"] in path:
                    f["count"] -= 1
                    cls.stats["fault_" + f["kind"]] = \
                        cls.stats.get("fault_" + f["kind"], 0) + 1
                    return f
        return None

    @classmethod
    def issue(cls, source):
        tok = "ya29.fake-" + base64.urlsafe_b64encode(os.urandom(24)) \
            .decode().rstrip("=")
        with cls.lock:
            cls.tokens[tok] = (time.time() + cls.expires_in, source)
            cls.issued.append(tok)
        return {"access_token": tok, "expires_in": cls.expires_in,
                "token_type": "Bearer"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj=None, raw=None, ctype="application/json"):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def google_error(self, code, status, message):
        self.reply(code, {"error": {"code": code, "message": message,
                                    "status": status}})

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        if n > MAX_BODY:
            raise Fault("body too large")
        return self.rfile.read(n)

    # --- dispatch ---------------------------------------------------

    def do_GET(self):
        if self.path == "/_fake/stats":
            with State.lock:
                out = dict(State.stats)
                out["last_aad"] = dict(State.last_aad)
                out["issued"] = list(State.issued)
            return self.reply(200, out)
        if self.path == METADATA_PATH:
            return self.metadata()
        self.reply(404, {"error": "no such path"})

    def do_POST(self):
        try:
            body = self.body()
        except (Fault, ValueError):
            return self.reply(400, {"error": "bad body"})
        if self.path.startswith("/_fake/"):
            return self.control(self.path[7:], body)
        if self.path == "/token":
            return self.token(body)
        m = KMS_PATH.match(self.path)
        if m:
            return self.kms(m.group(1), m.group(2), body)
        State.count("unknown_path")
        self.reply(404, {"error": {"code": 404, "status": "NOT_FOUND",
                                   "message": "no such method"}})

    def control(self, what, body):
        args = json.loads(body or b"{}")
        with State.lock:
            if what == "inject":
                State.faults.append({"match": args["match"],
                                     "kind": args["kind"],
                                     "count": args.get("count", 1),
                                     "delay": args.get("delay", 0)})
            elif what == "clear":
                State.faults = []
            elif what == "config":
                State.expires_in = args["expires_in"]
            elif what == "revoke":
                State.tokens = {}
            else:
                return self.reply(404, {"error": "no such control"})
        self.reply(200, {})

    # --- OAuth token endpoint ---------------------------------------

    def token(self, body):
        f = State.take_fault("/token")
        if f and f["kind"] == "invalid_grant":
            return self.reply(400, {"error": "invalid_grant",
                                    "error_description": "Injected."})
        if f and f["kind"] == "500":
            return self.reply(500, {"error": "internal_failure"})
        if f and f["kind"] == "slow":
            time.sleep(f["delay"])
        try:
            if self.headers.get("Content-Type") != \
                    "application/x-www-form-urlencoded":
                raise Fault("content type")
            form = urllib.parse.parse_qs(body.decode("ascii"),
                                         strict_parsing=True,
                                         keep_blank_values=True)
            if any(len(v) != 1 for v in form.values()):
                raise Fault("repeated form field")
            form = {k: v[0] for k, v in form.items()}
            grant = form.get("grant_type")
            if grant == JWT_GRANT and set(form) == {"grant_type",
                                                     "assertion"}:
                self.check_assertion(form["assertion"])
                State.count("token_jwt")
                return self.reply(200, State.issue("jwt"))
            if grant == "refresh_token" and form == dict(
                    USER, grant_type="refresh_token"):
                State.count("token_refresh")
                return self.reply(200, State.issue("refresh"))
            raise Fault("grant")
        except Exception as e:  # noqa: BLE001 - every failure is a refusal
            State.count("token_refused")
            State.stats["token_refused_why"] = str(e)
            self.reply(400, {"error": "invalid_grant",
                             "error_description": "Invalid grant."})

    def check_assertion(self, assertion):
        header = jwt.get_unverified_header(assertion)
        if header != {"alg": "RS256", "typ": "JWT",
                      "kid": State.sa["private_key_id"]}:
            raise Fault(f"header {header}")
        aud = f"http://127.0.0.1:{State.port}/token"
        claims = jwt.decode(assertion, State.pubkey, algorithms=["RS256"],
                            audience=aud,
                            options={"require": ["iss", "aud", "iat", "exp"]})
        if set(claims) != {"iss", "scope", "aud", "iat", "exp"}:
            raise Fault(f"claims {sorted(claims)}")
        if claims["iss"] != State.sa["client_email"]:
            raise Fault("iss")
        if claims["scope"] != SCOPE:
            raise Fault("scope")
        now = time.time()
        if not (0 < claims["exp"] - claims["iat"] <= 3600):
            raise Fault("lifetime")
        if abs(claims["iat"] - now) > 300:
            raise Fault("iat")
        State.count("jwt_verified")

    # --- metadata server --------------------------------------------

    def metadata(self):
        f = State.take_fault(self.path)
        if f and f["kind"] == "500":
            return self.reply(500, raw=b"oops", ctype="text/plain")
        if self.headers.get("Metadata-Flavor") != "Google" or \
                self.headers.get("X-Forwarded-For") is not None:
            State.count("metadata_refused")
            return self.reply(403, raw=b"Missing Metadata-Flavor:Google",
                              ctype="text/html")
        State.count("token_metadata")
        self.reply(200, State.issue("metadata"))

    # --- Cloud KMS --------------------------------------------------

    def bearer_ok(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return "missing"
        with State.lock:
            entry = State.tokens.get(auth[7:])
        if entry is None:
            return "unknown" if auth[7:] not in State.issued else "revoked"
        if entry[0] <= time.time():
            return "expired"
        return None

    def kms(self, name, verb, body):
        State.count("kms_" + verb)
        State.count(f"kms_{verb}:{name}")
        why = self.bearer_ok()
        if why is not None:
            State.count("kms_unauth_" + why)
            return self.google_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication "
                "credentials. Expected OAuth 2 access token.")
        fault = State.take_fault(self.path)
        if fault is not None:
            kind = fault["kind"]
            if kind == "401":
                with State.lock:
                    State.tokens = {}
                return self.google_error(401, "UNAUTHENTICATED",
                                         "Request had invalid credentials.")
            if kind == "403":
                return self.google_error(403, "PERMISSION_DENIED", "Denied.")
            if kind == "429":
                return self.google_error(429, "RESOURCE_EXHAUSTED",
                                         "Quota exceeded.")
            if kind == "503":
                return self.google_error(503, "UNAVAILABLE",
                                         "The service is currently "
                                         "unavailable.")
            if kind == "reqcrc":
                return self.google_error(
                    400, "INVALID_ARGUMENT", "The checksum in field "
                    "plaintext_crc32c did not match the data in field "
                    "plaintext.")
            if kind == "slow":
                time.sleep(fault["delay"])
        if name.endswith("/denied"):
            return self.google_error(403, "PERMISSION_DENIED",
                                     f"Permission 'cloudkms.cryptoKeyVersions"
                                     f".useTo{verb.title()}' denied on "
                                     f"resource '{name}' (or it may not "
                                     f"exist).")
        if name.endswith("/missing"):
            return self.google_error(404, "NOT_FOUND",
                                     f"{name} not found.")
        try:
            if self.headers.get("Content-Type") != "application/json":
                raise Fault("content type")
            req = json.loads(body, object_pairs_hook=no_dups)
            if not isinstance(req, dict):
                raise Fault("not an object")
            unknown = sorted(set(req) - FIELDS[verb])
            if unknown:
                raise Fault(f"unknown fields {unknown}")
            data_field = "plaintext" if verb == "encrypt" else "ciphertext"
            data = strict_b64(req.get(data_field))
            aad = None
            if "additionalAuthenticatedData" in req:
                aad = strict_b64(req["additionalAuthenticatedData"])
            for field, raw in ((data_field, data),
                               ("additionalAuthenticatedData", aad)):
                if raw is None:
                    if field + "Crc32c" in req:
                        raise Fault(f"{field}Crc32c without {field}")
                    continue
                crc = req.get(field + "Crc32c")
                if not isinstance(crc, str) or not crc.isdigit():
                    raise Fault(f"{field}Crc32c missing or not a decimal "
                                f"string")
                if int(crc) != crc32c(raw):
                    return self.google_error(
                        400, "INVALID_ARGUMENT",
                        f"The checksum in field {field}_crc32c did not "
                        f"match the data in field {field}.")
        except Exception as e:  # noqa: BLE001 - a malformed request
            State.count("kms_malformed")
            State.stats["kms_malformed_why"] = str(e)
            return self.google_error(400, "INVALID_ARGUMENT",
                                     f"Invalid JSON payload received. {e}")
        with State.lock:
            State.last_aad[name] = \
                None if aad is None else base64.b64encode(aad).decode()
            key = State.keys.setdefault(name, AESGCM(os.urandom(32)))
        bound = name.encode() + b"\0" + (aad or b"")
        kind = fault["kind"] if fault else None
        if verb == "encrypt":
            nonce = os.urandom(12)
            out = CT_MAGIC + nonce + key.encrypt(nonce, data, bound)
            resp = {"name": name + "/cryptoKeyVersions/1",
                    "ciphertext": out, "ciphertextCrc32c": crc32c(out),
                    "verifiedPlaintextCrc32c": True,
                    "protectionLevel": "SOFTWARE"}
            if aad is not None:
                resp["verifiedAdditionalAuthenticatedDataCrc32c"] = True
            if kind == "unverified":
                resp.pop("verifiedPlaintextCrc32c")
            field = "ciphertext"
        else:
            try:
                if not data.startswith(CT_MAGIC):
                    raise ValueError("magic")
                nonce = data[len(CT_MAGIC):len(CT_MAGIC) + 12]
                out = key.decrypt(nonce, data[len(CT_MAGIC) + 12:], bound)
            except Exception:  # noqa: BLE001 - wrong key, AAD or bytes
                State.count("kms_decryption_failed")
                return self.google_error(400, "INVALID_ARGUMENT",
                                         DECRYPTION_FAILED)
            resp = {"plaintext": out, "plaintextCrc32c": crc32c(out),
                    "usedPrimary": True, "protectionLevel": "SOFTWARE"}
            field = "plaintext"
        if kind == "badcrc":
            resp[field + "Crc32c"] = (resp[field + "Crc32c"] + 1) % (1 << 32)
        if kind == "flip":
            b = bytearray(resp[field])
            b[len(b) // 2] ^= 0x04
            resp[field] = bytes(b)
        resp[field] = base64.b64encode(resp[field]).decode()
        resp[field + "Crc32c"] = str(resp[field + "Crc32c"])
        State.count("kms_ok")
        self.reply(200, resp)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    vec = os.path.join(here, "..", "vectors", "gcp")
    with open(os.path.join(vec, "service_account.json")) as f:
        State.sa = json.load(f)
    with open(os.path.join(vec, "privatekey.pub"), "rb") as f:
        State.pubkey = serialization.load_pem_public_key(f.read())
    srv = _Server(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    State.port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(State.port, flush=True)
    # Exit when the test closes our stdin (or dies).
    sys.stdin.read()
    srv.shutdown()


if __name__ == "__main__":
    main()
