#!/usr/bin/python3
"""Write the seed corpora in tests/fuzz/corpus/<target>/seed-*.

Seeds are small, real-shaped inputs: the frames of PROTOCOL.md section 10,
one request and response per op, configs from the tests, AWS bodies from
tests/unit/test_aws_parse.c, and test and local provider blobs (local ones
wrapped with the fuzz targets' fixed key, bytes 0..31). Rerun after a format
change: ./tests/fuzz/make_corpus.py (needs python3-msgpack and
python3-cryptography; the GCP service-account seed gets a new RSA key each
run). Files named crash-* are regression inputs from fuzz runs; this
script never touches them.
"""
import base64
import hashlib
import json
import os
import struct
import sys

import msgpack
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def frame(body):
    return struct.pack(">I", len(body)) + body


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clear_seeds():
    for target in os.listdir(CORPUS) if os.path.isdir(CORPUS) else []:
        d = os.path.join(CORPUS, target)
        for n in os.listdir(d):
            if n.startswith("seed-"):
                os.unlink(os.path.join(d, n))


MODEL = {"model_id": "1", "model_name": "User"}
PT32 = bytes(range(32))

# PROTOCOL.md section 10, byte for byte.
TEST_CT = ("v1:insecure+data+A6QUFFQ0F3UUZCZ2NJQ1FvTERBME9EeEFSRWhNVUZ"
           "SWVhHQmthR3h3ZEhoOD06ZXlKdGIyUmxiRjlwWkNJNklqRWlMQ0p0YjJSbG"
           "JGOXVZVzFsSWpvaVZYTmxjaUo5Cg==")

REQUESTS = {
    "hello": {"id": 1, "op": "hello"},
    "keys": {"id": 2, "op": "keys"},
    "generate": {"id": 1, "op": "generate", "key": "default",
                 "context": MODEL},
    "encrypt": {"id": 2, "op": "encrypt", "key": "default",
                "context": MODEL, "plaintext": PT32},
    "encrypt-nil-context": {"id": 3, "op": "encrypt", "key": "test",
                            "context": None, "plaintext": b"secret"},
    "decrypt": {"id": 4, "op": "decrypt", "key": "default",
                "context": MODEL, "ciphertext": TEST_CT},
    "rewrap": {"id": 5, "op": "rewrap", "key": "default", "context": MODEL,
               "new_context": {"model_id": "2", "model_name": "User"},
               "ciphertext": TEST_CT},
    "stats": {"id": 6, "op": "stats", "format": "prometheus"},
    "context_hash": {"id": 7, "op": "context_hash", "key": "vault",
                     "context": {"a": "1"}, "audit_path": "file/"},
    "status": {"id": 8, "op": "status"},
    "disable_decrypt": {"id": 9, "op": "disable_decrypt",
                        "reason": "incident 42"},
    "enable_decrypt": {"id": 10, "op": "enable_decrypt"},
    "reload": {"id": 11, "op": "reload"},
    "unicode-context": {"id": 12, "op": "generate", "key": "k",
                        "context": {"caf\u00e9": "<&>\u2028",
                                    "#{x}": "\"\\\n", "": ""}},
    "unknown-field": {"id": 13, "op": "hello", "future": [1, {"a": None}]},
    "max-id": {"id": 2**64 - 1, "op": "hello"},
}

BAD_REQUESTS = {
    # three nested array32 headers in 15 bytes: once made msgpack-c
    # reserve 12 GB (DESIGN: untrusted bytes)
    "nested-array32": bytes.fromhex("81a1" "61" "dd ffffffff dd ffffffff"
                                    "dd ffff".replace(" ", "")),
    "two-ids": b"\x83\xa2id\x01\xa2id\x02\xa2op\xa5hello",
    "id-zero": pack({"id": 0, "op": "hello"}),
    "unknown-op": pack({"id": 1, "op": "explode"}),
    "trailing-byte": pack({"id": 1, "op": "hello"}) + b"\xc0",
    "bad-utf8-key": pack({"id": 1, "op": "generate", "key": b"\xff"}),
    "never-used-c1": b"\x81\xc1\xc0",
    "deep": b"\x81\xa1a\x91\x91\x91\x91\x90",
}

RESPONSES = {
    "hello": {"id": 1, "version": "0.1.0", "protocol": 1,
              "socket": "decrypt",
              "allow": ["hello", "keys", "generate", "encrypt", "decrypt"],
              "keys": [{"name": "default", "version": 1,
                        "provider": "local"}]},
    "keys-empty": {"id": 2, "keys": []},
    "generate": {"id": 1, "ciphertext": TEST_CT, "plaintext": PT32},
    "decrypt": {"id": 4, "plaintext": b"secret"},
    "stats": {"id": 6, "body": "{\"requests\":1}"},
    "error-unknown-code": {"id": 9, "error": {"code": "from_the_future",
                                              "message": "new"}},
    "error-no-message": {"id": 10, "error": {"code": "busy"}},
}


def local_blob(plaintext, ctx_json):
    """daemon/providers/local.c's format under the fixed fuzz key."""
    key = bytes(range(32))
    nonce = hashlib.sha256(plaintext + (ctx_json or b"-")).digest()[:12]
    aad = b"kmsd-local-v1\x00" + (b"\x00" if ctx_json is None
                                   else b"\x01" + ctx_json)
    return b"\x01" + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def test_blob(plaintext, ctx_json):
    prefix = bytes.fromhex("8a7b1e72eadef9d6ad6be0")  # Base64.decode64("insecure+data+A")
    out = prefix + b":" + base64.b64encode(plaintext)
    if ctx_json is not None:
        out += b":" + base64.encodebytes(ctx_json)
    return out


def stored(blob, version=1):
    return f"v{version}:".encode() + base64.b64encode(blob)


# fuzz_stored's contexts by control bits 0-1 (ActiveSupport style).
STORED_CTX = {
    0: None,
    1: b"{}",
    2: b'{"model_id":"1","model_name":"User"}',
    3: b'{"user_id":"\\u003c42\\u003e \\u0026 \\u2028"}',
}
STORED_CTX_PLAIN3 = '{"user_id":"<42> & \u2028"}'.encode()


def context_input(style, pairs):
    out = bytes([style])
    for k, v in pairs:
        k = k.encode() if isinstance(k, str) else k
        v = v.encode() if isinstance(v, str) else v
        out += bytes([len(k)]) + k + bytes([len(v)]) + v
    return out


BASE_CONFIG = """
[kmsd]
state_dir = /tmp/kmsd/state
frame_timeout = 1s

[key default]
key_id = local/dev

[key test]
key_id = insecure-test-key

[key enconly]
key_id = insecure-test-key/encrypt

[socket encrypt]
path = /tmp/kmsd/encrypt.sock
allow = generate, encrypt

[socket decrypt]
path = /tmp/kmsd/decrypt.sock
allow = generate, encrypt, decrypt, rewrap
"""

FULL_CONFIG = """; comment
[kmsd]
state_dir = /var/lib/x   ; inline comment
context_json = plain
max_connections = 10
frame_timeout = 500ms
idle_timeout = 2m
audit_log = /var/log/kmsd/audit.log
audit_context = hmac
decrypt_limit = 600/min
metrics_textfile = /var/lib/node_exporter/kmsd.prom
metrics_interval = 200ms
admin_socket = /run/kmsd/admin.sock

[key default]
key_id = arn:aws:kms:us-east-1:111122223333:key/abc
version = 3
key_id.1 = vault/old
key_id.2 = insecure-test-key
decrypt_limit = 5/min
[key phone]
key_id = local/phone
[socket web]
path = /run/kmsd/encrypt.sock
mode = 0660
allow = generate, encrypt
keys = default phone
peer_users = root, 0
[socket worker]
path = /run/kmsd/decrypt.sock
group = root
allow = decrypt,rewrap
peer_groups = 0
peer_units = billing-worker.service
context_require = service=billing
[aws]
region = eu-west-1
credentials = credential:aws
"""

AWS_ERRORS = [
    (0x00, 0, '{"__type":"InvalidCiphertextException"}'),
    (0x00, 1, 'InvalidCiphertextException\n'
              '{"__type":"InvalidCiphertextException"}'),
    (0x00, 0, '{"__type":"com.amazonaws.kms#IncorrectKeyException",'
              '"message":"The key ID in the request does not identify a '
              'CMK that can perform this operation."}'),
    (0x00, 2, '{"__type":"ThrottlingException","message":"Rate exceeded"}'),
    (0x00, 128 + 3, '<?xml version="1.0" encoding="utf-8"?>\n<ErrorResponse>'
     '<Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The request '
     'signature we calculated does not match.\n\nCanonical String'
     '</Message><Type>Sender</Type></Error></Errors></ErrorResponse>'),
    (0x00, 0, '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/'
     '2011-06-15/">\n  <Error>\n    <Type>Sender</Type>\n    <Code>'
     'InvalidIdentityToken</Code>\n    <Message>Couldn&apos;t retrieve '
     'verification key &lt;x&gt; <![CDATA[a&b]]></Message>\n  </Error>\n'
     '</ErrorResponse>'),
    (0x00, 128, '{"__type":"KMSInternalException"}'),
    (0x00, 29, ''),
]

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY"
TOKEN = "FQoGZXIvYXdzTOKENVALUE0123456789abcdef"

AWS_OTHER = {
    "kms-encrypt": (1, 0, '{"CiphertextBlob":"AQID/v8=","KeyId":"arn:aws:'
                    'kms:us-east-1:123456789012:key/1234abcd"}'),
    "kms-decrypt": (1, 1, '{"KeyId":"k","Plaintext":"AQID/v8=",'
                    '"EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}'),
    "kms-reencrypt": (1, 2, '{"CiphertextBlob":"AQID/v8=","SourceKeyId":'
                      '"arn:aws:kms:us-east-1:123456789012:key/old",'
                      '"KeyId":"arn:aws:kms:us-east-1:123456789012:key/new"}'),
    "imds": (2, 0, '{\n  "Code" : "Success",\n  "LastUpdated" : '
             '"2012-04-26T16:39:16Z",\n  "Type" : "AWS-HMAC",\n  '
             '"AccessKeyId" : "ASIAIOSFODNN7EXAMPLE",\n  "SecretAccessKey" : "'
             + SECRET + '",\n  "Token" : "' + TOKEN + '",\n  "Expiration" : '
             '"2017-05-17T15:09:54Z"\n}'),
    "ecs": (2, 0, '{"AccessKeyId":"ASIAIOSFODNN7EXAMPLE","Expiration":'
            '"2023-06-13T14:12:03.123Z","RoleArn":"arn:aws:iam::123456789012:'
            'role/task","SecretAccessKey":"' + SECRET + '","Token":"' + TOKEN
            + '","AccountId":"123456789012"}'),
    "sts": (3, 0, '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.'
            'amazonaws.com/doc/2011-06-15/">\n  <AssumeRoleWithWebIdentity'
            'Result>\n    <Credentials>\n      <SessionToken>' + TOKEN +
            '</SessionToken>\n      <SecretAccessKey>' + SECRET +
            '</SecretAccessKey>\n      <Expiration>2014-10-24T23:00:23Z'
            '</Expiration>\n      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE'
            '</AccessKeyId>\n    </Credentials>\n  </AssumeRoleWithWeb'
            'IdentityResult>\n</AssumeRoleWithWebIdentityResponse>\n'),
    "sts-entities": (3, 0, '<AssumeRoleWithWebIdentityResult><Credentials>'
                     '<AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>a&amp;b'
                     '</SecretAccessKey><SessionToken><![CDATA[tok&en]]>'
                     '</SessionToken><Expiration>2014-10-24T23:00:23.000Z'
                     '</Expiration></Credentials>'
                     '</AssumeRoleWithWebIdentityResult>'),
    "profile-credentials": (4, 0, "# comment\n; another\n[default]\n"
                            "aws_access_key_id = AKIDDEFAULT\n"
                            "aws_secret_access_key=" + SECRET + "\n\n"
                            "[prod]\r\nAWS_Access_Key_ID\t=\tAKIDPROD   # the"
                            " prod key\r\naws_secret_access_key = " + SECRET +
                            " ; trailing\r\naws_session_token = " + TOKEN +
                            "\r\nregion = eu-west-1\r\n"),
    "profile-config": (4, 1, "[default]\nregion = us-east-1\n[prod]\n"
                       "region = eu-central-1\n[profile dev]\n"
                       "region = eu-west-1\nrole_arn = arn:aws:iam::"
                       "123456789012:role/kmsd\nweb_identity_token_file = "
                       "/var/run/secrets/eks token\nrole_session_name = k\n"
                       "[sso-session corp]\nsso_start_url = https://example."
                       "awsapps.com/start\n[services x]\nkms =\n  "
                       "endpoint_url = http://localhost:5000\n"
                       "[ profile   dev ]\nregion = us-west-2\n"),
    "time": (5, 0, "2015-08-30T12:36:00.123456789+05:30"),
    "arn-key": (6, 0, "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab"),
    "arn-alias": (6, 0, "arn:aws-us-gov:kms:us-gov-west-1:111122223333:"
                  "alias/app"),
}


def crc32c(data):
    """CRC-32C (Castagnoli), as Cloud KMS checks it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


GCP_KEY = "projects/p/locations/global/keyRings/r/cryptoKeys/k"
GCP_AAD = b'{"model_id":"1","model_name":"User"}'


def gcp_seeds():
    """fuzz_gcp: selector, parameter, body."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    ct = b"ct-bytes"
    enc = {"ciphertext": base64.b64encode(ct).decode(),
           "ciphertextCrc32c": str(crc32c(ct)),
           "verifiedPlaintextCrc32c": True,
           "name": GCP_KEY + "/cryptoKeyVersions/1",
           "protectionLevel": "SOFTWARE"}
    out = {"encrypt-result": (0, 0, json.dumps(enc))}
    enc_aad = dict(enc, verifiedAdditionalAuthenticatedDataCrc32c=True)
    out["encrypt-result-aad"] = (0, 1, json.dumps(enc_aad))
    out["decrypt-result"] = (1, 0, json.dumps({
        "plaintext": base64.b64encode(PT32).decode(),
        "plaintextCrc32c": str(crc32c(PT32)), "usedPrimary": True}))
    out["kms-error-decryption"] = (2, 0, json.dumps({"error": {
        "code": 400, "message": "Decryption failed: the ciphertext is "
        "invalid.", "status": "INVALID_ARGUMENT"}}))
    out["kms-error-denied"] = (2, 3, json.dumps({"error": {
        "code": 403, "message": "Permission 'cloudkms.cryptoKeyVersions."
        "useToDecrypt' denied\n", "status": "PERMISSION_DENIED"}}))
    out["kms-error-unavailable"] = (2, 128 + 3, json.dumps({"error": {
        "code": 503, "message": "The service is currently unavailable.",
        "status": "UNAVAILABLE"}}))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    out["creds-service-account"] = (3, 0, json.dumps({
        "type": "service_account", "project_id": "p",
        "private_key_id": "1", "private_key": pem,
        "client_email": "kmsd@p.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
        "quota_project_id": "q"}))
    out["creds-authorized-user"] = (3, 0, json.dumps({
        "type": "authorized_user", "client_id": "id 1&x",
        "client_secret": "s", "refresh_token": "1//r"}))
    out["creds-external"] = (3, 0, json.dumps({"type": "external_account"}))
    out["token"] = (4, 0, json.dumps({"access_token": "ya29.a-b_c",
                                       "expires_in": 3599,
                                       "token_type": "Bearer"}))
    out["token-error"] = (5, 0, json.dumps({
        "error": "invalid_grant", "error_description": "Invalid JWT"}))
    out["key-id"] = (6, 0, GCP_KEY)
    out["key-id-version"] = (6, 0, GCP_KEY + "/cryptoKeyVersions/1")
    return out


VAULT_TOKEN = "hvs.CAESIJ0123456789abcdefTOKEN"
VAULT_SEEDS = {
    "resp-ciphertext": (0, 0, '{"request_id":"x","lease_id":"","data":'
                        '{"ciphertext":"vault:v3:QUJD","key_version":3},'
                        '"warnings":null}'),
    "resp-plaintext": (1, 0, '{"data":{"plaintext":"aGk="}}'),
    "resp-hash": (2, 0, '{"data":{"hash":"hmac-sha256:' + "0a" * 32 +
                  '"}}'),
    "resp-hash-legacy": (2, 0, '{"hash":"hmac-sha256:' + "b1" * 32 + '"}'),
    "resp-auth": (3, 0, '{"auth":{"client_token":"' + VAULT_TOKEN +
                  '","accessor":"a","policies":["kmsd"],"lease_duration":'
                  '2764800,"renewable":true,"metadata":{"role_name":"r"}}}'),
    "resp-lookup": (4, 0, '{"data":{"ttl":31,"renewable":true,'
                    '"expire_time":"2030-01-01T00:00:00Z"}}'),
    "error-decrypt": (5, 1, '{"errors":["cipher: message authentication '
                      'failed"]}'),
    "error-encrypt-context": (5, 0, '{"errors":["missing \'context\' for '
                              'key derivation; the key was created using a '
                              'derived key"]}'),
    "error-sealed": (5, 128 + 3 + 1, '{"errors":["Vault is sealed"]}'),
    "error-denied": (5, 3, '{"errors":["permission denied","1 error '
                     'occurred:\\n\\t* x\\n\\n"]}'),
    "ct": (6, 0, "vault:v2:QUJDRA=="),
    "secret-file": (7, 0, VAULT_TOKEN + "\n"),
    "settings-duration": (8, 9, "500ms"),
    "settings-path": (8, 9, "transit/"),
}


def main():
    clear_seeds()
    # fuzz_request / fuzz_response: bodies
    for name, obj in REQUESTS.items():
        write("request", name, pack(obj))
    for name, body in BAD_REQUESTS.items():
        write("request", name, body)
    for name, obj in RESPONSES.items():
        write("response", name, pack(obj))
    write("response", "protocol-error-example", bytes.fromhex(
        "82a26964 03a56572 726f7282 a4636f64 65ab756e 6b6e6f77 6e5f6b65"
        "79a76d65 73736167 65b3756e 6b6e6f77 6e206b65 79202770 686f6e65"
        "27".replace(" ", "")))

    # fuzz_frame: control byte (number of chunk sizes) + sizes + stream
    stream = b"".join(frame(pack(REQUESTS[n])) for n in
                      ("generate", "encrypt", "decrypt", "hello"))
    write("frame", "pipeline-whole", b"\x00" + stream)
    write("frame", "pipeline-split-3-1-200", b"\x03\x02\x00\xc7" + stream)
    write("frame", "pipeline-then-partial", b"\x01\x06" + stream +
          frame(pack(REQUESTS["keys"]))[:7])
    write("frame", "bad-then-good", b"\x00" + frame(b"\x81\xc1\xc0") +
          frame(BAD_REQUESTS["nested-array32"]) + frame(pack(REQUESTS["hello"])))
    write("frame", "empty-frame", b"\x00" + frame(pack(REQUESTS["hello"])) +
          b"\x00\x00\x00\x00" + frame(pack(REQUESTS["keys"])))
    write("frame", "too-large", b"\x02\x00\x03" + b"\x00\x01\x00\x01" +
          b"\x80" * 16)
    write("frame", "max-frame-header", b"\x01\xff\x00\x01\x00\x00")

    # fuzz_stored: control byte + stored string (or raw blob with bit 3)
    for ctl, ctx in STORED_CTX.items():
        for pt in (PT32, b"secret", b""):
            tag = f"ctx{ctl}-{len(pt)}"
            if pt:
                write("stored", f"test-{tag}", bytes([ctl]) +
                      stored(test_blob(pt, ctx)))
            write("stored", f"local-{tag}", bytes([ctl]) +
                  stored(local_blob(pt, ctx), 7))
        write("stored", f"raw-local-ctx{ctl}", bytes([ctl | 8]) +
              local_blob(PT32, ctx))
        write("stored", f"raw-test-ctx{ctl}", bytes([ctl | 8]) +
              test_blob(b"x", ctx))
    write("stored", "test-plain-ctx3", b"\x07" +
          stored(test_blob(b"k", STORED_CTX_PLAIN3)))
    write("stored", "protocol-example", b"\x02" + TEST_CT.encode())
    write("stored", "max-version", b"\x00v1000000:AAAA")
    write("stored", "bad-padding", b"\x00v1:QR==")

    # fuzz_context: style byte + [len][key][len][value]...
    write("context", "model", context_input(0, MODEL.items()))
    write("context", "model-plain", context_input(1, MODEL.items()))
    write("context", "escapes", context_input(0, [
        ("caf\u00e9", "<&>\u2028\u2029"), ("#{x}", "\"\\\n\t\x00\x1f\x7f"),
        ("", ""), ("\u0085\u00a0", "\U0001f600"), ("#$a", "#@b"),
        ("\ufdd0", "\uffff"), ("\U0010ffff", "x")]))
    write("context", "invalid-utf8", context_input(0, [
        ("a", b"\xc0\x80"), (b"\xed\xa0\x80", "surrogate"),
        (b"\xf4\x90\x80\x80", "too big")]))
    write("context", "duplicate-keys", context_input(1, [("a", "1"),
                                                         ("a", "2")]))
    write("context", "sort-order", context_input(0, [
        ("b", "1"), ("a\"", "2"), ("a", "3"), ("a\n", "4"), ("A", "5"),
        ("a\\", "6"), ("\u00e9", "7"), ("~", "8")]))
    write("context", "65-pairs", context_input(0, [
        (f"k{i}", str(i)) for i in range(65)]))

    # fuzz_config: the file's bytes
    write("config", "integration-base", BASE_CONFIG)
    write("config", "full", FULL_CONFIG)
    write("config", "dev-run", BASE_CONFIG.replace("frame_timeout = 1s\n",
                                                   "")[:200])
    write("config", "kms-key-id-env-none", "[socket s]\npath = /run/s.sock\n"
          "allow = encrypt\n")
    write("config", "long-line", "[kmsd]\nstate_dir = /" + "x" * 300 + "\n")

    # fuzz_aws: selector, parameter, body
    for i, (sel, param, body) in enumerate(AWS_ERRORS):
        write("aws", f"error-{i}", bytes([sel, param]) + body.encode())
    for name, (sel, param, body) in AWS_OTHER.items():
        write("aws", name, bytes([sel, param]) + body.encode())

    # fuzz_gcp, fuzz_vault: selector, parameter, body
    for name, (sel, param, body) in gcp_seeds().items():
        write("gcp", name, bytes([sel, param]) + body.encode())
    for name, (sel, param, body) in VAULT_SEEDS.items():
        write("vault", name, bytes([sel, param]) + body.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
