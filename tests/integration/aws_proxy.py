"""A recording, fault-injecting HTTP/1.1 proxy for test_aws.py (stdlib only).

kmsd talks to this proxy as its KMS (and STS / IMDS) endpoint; the proxy
forwards to moto_server and:
  - counts the TCP connections it accepts (evidence of connection reuse:
    kmsd's libcurl keeps one alive across requests);
  - records every request (method, path, X-Amz-Target, the access key id
    from the SigV4 Authorization header, whether a session token was sent,
    IMDS token headers);
  - injects faults into the next N KMS requests (or all of them):
    "throttle" (400 ThrottlingException), "429", "503", "expired"
    (400 ExpiredTokenException) or "hang" (read the request, never answer,
    until kmsd gives up and closes the connection);
  - serves local routes (e.g. a fake ECS credential endpoint);
  - forwards paths under /sts/ to moto with Host: sts.amazonaws.com, since
    moto picks the service of an unsigned request by its Host.

Runs in threads inside the test process. Each client connection gets its
own thread and its own upstream connection.
"""
import http.client
import json
import socket
import threading

KMS_FAULTS = {
    "throttle": (400, {"__type": "ThrottlingException",
                       "message": "Rate exceeded"}),
    "429": (429, {"__type": "TooManyRequestsException",
                  "message": "slow down"}),
    "503": (503, {"__type": "ServiceUnavailable",
                  "message": "try again"}),
    "expired": (400, {"__type": "ExpiredTokenException",
                      "message": "The security token included in the "
                                 "request is expired"}),
}

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
       "proxy-connection", "te", "trailer", "upgrade"}


class Proxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1"):
        self.up = (upstream_host, upstream_port)
        self.lock = threading.Lock()
        self.accepts = 0
        self.requests = []
        self.fault = None          # kind
        self.fault_left = 0        # None = every request
        self.local = {}            # path -> fn(req) -> (status, hdrs, body)
        self.stopping = False
        self.conns = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    # --- control -------------------------------------------------------

    def set_fault(self, kind, count=None):
        """Fail the next `count` KMS requests (None: all) with `kind`."""
        with self.lock:
            self.fault = kind
            self.fault_left = count

    def clear(self):
        with self.lock:
            self.fault = None
            self.fault_left = 0
            self.requests = []
            self.accepts = 0

    def targets(self):
        with self.lock:
            return [r["target"] for r in self.requests if r["target"]]

    def kms_requests(self):
        with self.lock:
            return [r for r in self.requests if r["target"]]

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    # --- plumbing ------------------------------------------------------

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepts += 1
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    @staticmethod
    def _read_request(f):
        line = f.readline(65536)
        if not line:
            return None
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers = []
        while True:
            h = f.readline(65536)
            if h in (b"\r\n", b"\n", b""):
                break
            name, value = h.decode("latin-1").split(":", 1)
            headers.append((name.strip(), value.strip()))
        n = 0
        for name, value in headers:
            if name.lower() == "content-length":
                n = int(value)
        body = f.read(n) if n else b""
        return method, path, headers, body

    def _record(self, method, path, headers, body):
        h = {k.lower(): v for k, v in headers}
        akid = None
        auth = h.get("authorization", "")
        if "Credential=" in auth:
            cred = auth.split("Credential=", 1)[1].split(",", 1)[0]
            akid = cred.split("/", 1)[0]
            region = cred.split("/")[2] if cred.count("/") >= 2 else None
        else:
            region = None
        rec = {"method": method, "path": path,
               "target": h.get("x-amz-target"), "akid": akid,
               "region": region,
               "token": h.get("x-amz-security-token"),
               "imds_ttl": h.get("x-aws-ec2-metadata-token-ttl-seconds"),
               "imds_token": h.get("x-aws-ec2-metadata-token"),
               "authorization": auth, "host": h.get("host"),
               "body": body}
        with self.lock:
            self.requests.append(rec)
        return rec

    def _take_fault(self):
        with self.lock:
            if self.fault is None:
                return None
            kind = self.fault
            if self.fault_left is not None:
                self.fault_left -= 1
                if self.fault_left <= 0:
                    self.fault = None
            return kind

    @staticmethod
    def _respond(c, status, headers, body):
        head = f"HTTP/1.1 {status} X\r\n"
        for k, v in headers:
            head += f"{k}: {v}\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        c.sendall(head.encode("latin-1") + body)

    def _serve(self, c):
        f = c.makefile("rb")
        up = None
        try:
            while not self.stopping:
                req = self._read_request(f)
                if req is None:
                    return
                method, path, headers, body = req
                rec = self._record(method, path, headers, body)
                if path in self.local:
                    st, hd, bd = self.local[path](rec)
                    self._respond(c, st, hd, bd)
                    continue
                kind = self._take_fault() if rec["target"] else None
                if kind == "hang":
                    # Never answer; return when the client gives up.
                    while not self.stopping and c.recv(65536):
                        pass
                    return
                if kind is not None:
                    st, obj = KMS_FAULTS[kind]
                    self._respond(c, st, [
                        ("Content-Type", "application/x-amz-json-1.1"),
                        ("x-amzn-ErrorType", obj["__type"])],
                        json.dumps(obj).encode())
                    continue
                fwd = [(k, v) for k, v in headers
                       if k.lower() not in HOP]
                if path.startswith("/sts/"):
                    path = path[4:]
                    fwd = [(k, v) for k, v in fwd if k.lower() != "host"]
                    fwd.append(("Host", "sts.amazonaws.com"))
                for attempt in (0, 1):
                    if up is None:
                        up = http.client.HTTPConnection(*self.up,
                                                        timeout=30)
                    try:
                        up.putrequest(method, path, skip_host=True,
                                      skip_accept_encoding=True)
                        for k, v in fwd:
                            up.putheader(k, v)
                        up.putheader("Content-Length", str(len(body)))
                        up.endheaders(body)
                        resp = up.getresponse()
                        data = resp.read()
                        break
                    except (http.client.HTTPException, OSError):
                        # moto closed its side; reconnect once
                        up.close()
                        up = None
                        if attempt:
                            raise
                hd = [(k, v) for k, v in resp.getheaders()
                      if k.lower() not in HOP]
                self._respond(c, resp.status, hd, data)
                if resp.will_close:
                    up.close()
                    up = None
        except (OSError, ValueError):
            return
        finally:
            if up is not None:
                up.close()
            with self.lock:
                self.conns.discard(c)
            try:
                c.close()
            except OSError:
                pass
