"""A fake AWS KMS endpoint for fault injection (stdlib only).

It speaks just enough of the KMS JSON 1.1 protocol for kmsd's AWS
provider: Encrypt returns CiphertextBlob = base64("FAKE:" + plaintext) and
Decrypt reverses it. It does not check signatures (moto does that in
test_aws.py); its job is to misbehave on request:

  ok          answer normally
  refuse      (the test closes the listener instead)
  status:N    answer HTTP N with a KMS-shaped error body
  reset       read the request, send half a response, reset the connection
  malformed   200 with a body that is not JSON
  truncated   200 announcing more body than it sends, then close
  slow:MS     answer normally after MS milliseconds

A fault applies to the next `count` requests (None: all), then "ok".
Runs in threads inside the test process. FaultKMS(tls=True) serves HTTPS
with a self-signed certificate for 127.0.0.1, written to `ca_file` (the
trust kmsd is given).
"""
import base64
import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time


def _self_signed(dirname):
    """cert.pem and key.pem for 127.0.0.1 in dirname (python3-cryptography):
    returns (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fault-kms")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           critical=True)
            .sign(key, hashes.SHA256()))
    cpath, kpath = (os.path.join(dirname, n) for n in ("cert.pem", "key.pem"))
    with open(cpath, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kpath, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cpath, kpath


class FaultKMS:
    def __init__(self, tls=False):
        self.lock = threading.Lock()
        self.fault, self.left = "ok", None
        self.requests = 0
        self.inflight = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.tls, self.ca_file, self.dir = None, None, None
        if tls:
            self.dir = tempfile.mkdtemp(prefix="fault-kms-")
            self.ca_file, kpath = _self_signed(self.dir)
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(self.ca_file, kpath)
            self.url = f"https://127.0.0.1:{self.port}"
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, fault, count=None):
        with self.lock:
            self.fault, self.left = fault, count

    def _take(self):
        with self.lock:
            self.requests += 1
            f = self.fault
            if self.left is not None:
                self.left -= 1
                if self.left <= 0:
                    self.fault, self.left = "ok", None
            return f

    def stop(self):
        self.stopping = True
        self.sock.close()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    @staticmethod
    def _read(f):
        line = f.readline()
        if not line:
            return None
        headers = {}
        while True:
            h = f.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, v = h.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = f.read(int(headers.get("content-length", "0")))
        return headers, body

    @staticmethod
    def _send(c, status, body, extra=b""):
        c.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/x-amz-json-1.1"
                  b"\r\nContent-Length: %d\r\n%s\r\n" %
                  (status, len(body), extra) + body)

    def _answer(self, headers, body):
        target = headers.get("x-amz-target", "")
        req = json.loads(body)
        if target.endswith(".Encrypt"):
            blob = b"FAKE:" + base64.b64decode(req["Plaintext"])
            return 200, json.dumps({"CiphertextBlob":
                                    base64.b64encode(blob).decode(),
                                    "KeyId": req["KeyId"]}).encode()
        if target.endswith(".Decrypt"):
            blob = base64.b64decode(req["CiphertextBlob"])
            if not blob.startswith(b"FAKE:"):
                return 400, b'{"__type":"InvalidCiphertextException"}'
            return 200, json.dumps({"Plaintext":
                                    base64.b64encode(blob[5:]).decode(),
                                    "KeyId": req["KeyId"]}).encode()
        return 400, b'{"__type":"UnknownOperationException"}'

    def _serve(self, c):
        try:
            if self.tls is not None:
                c = self.tls.wrap_socket(c, server_side=True)
            f = c.makefile("rb")
            while True:
                r = self._read(f)
                if r is None:
                    return
                fault = self._take()
                with self.lock:
                    self.inflight += 1
                try:
                    if fault.startswith("status:"):
                        code = int(fault.split(":")[1])
                        kind = {429: "ThrottlingException",
                                400: "ThrottlingException"}.get(
                                    code, "KMSInternalException")
                        self._send(c, code, json.dumps(
                            {"__type": kind, "message": "injected"}).encode())
                    elif fault == "reset":
                        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100"
                                  b"\r\n\r\n{\"Cipher")
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
                        c.close()
                        return
                    elif fault == "malformed":
                        self._send(c, 200, b"<html>not json</html>")
                    elif fault == "truncated":
                        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 500"
                                  b"\r\n\r\n{\"CiphertextBlob\":\"RkFL")
                        c.close()
                        return
                    else:
                        if fault.startswith("slow:"):
                            time.sleep(int(fault.split(":")[1]) / 1000)
                        self._send(c, *self._answer(*r))
                finally:
                    with self.lock:
                        self.inflight -= 1
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass


def stop(k, fake):
    """Stop kmsd (it must exit cleanly), then the fake, whatever happens."""
    try:
        k.stop()
    finally:
        k.cleanup()
        fake.stop()
