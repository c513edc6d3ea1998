"""Integration test harness: start a real kmsd, talk to it, stop it.

Each test script builds its own temporary configuration, starts kmsd on
its own sockets and stops it with SIGTERM, checking that it exits 0 and
removes its socket files. Output is TAP, one line a case, so ./dev test
counts cases. Paths to the binaries come from the environment meson sets
(KMSD, KMSCTL). KMSD_WRAPPER, when set, is a command kmsd runs under
(tests/memcheck: valgrind); start and stop then allow WRAPPER_SLOWDOWN
times longer.
"""
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import msgpack

KMSD = os.environ.get("KMSD", "build/daemon/kmsd")
KMSCTL = os.environ.get("KMSCTL", "build/client/kmsctl")
KMSD_WRAPPER = shlex.split(os.environ.get("KMSD_WRAPPER", ""))
WRAPPER_SLOWDOWN = 20 if KMSD_WRAPPER else 1


# --- TAP ---------------------------------------------------------------

_cases = []


def case(fn):
    """Register a test case; it fails by raising."""
    _cases.append(fn)
    return fn


def run_cases(setup=None, teardown=None):
    print(f"1..{len(_cases)}", flush=True)
    failed = 0
    ctx = setup() if setup else None
    try:
        for i, fn in enumerate(_cases, 1):
            name = fn.__name__
            try:
                fn(ctx) if setup else fn()
                print(f"ok {i} - {name}", flush=True)
            except Exception:
                failed += 1
                print(f"not ok {i} - {name}", flush=True)
                for line in traceback.format_exc().splitlines():
                    print(f"# {line}", flush=True)
    finally:
        if teardown:
            try:
                teardown(ctx)
            except Exception:
                failed += 1
                print(f"not ok {len(_cases) + 1} - teardown", flush=True)
                for line in traceback.format_exc().splitlines():
                    print(f"# {line}", flush=True)
    sys.exit(1 if failed else 0)


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, msg=""):
    if a != b:
        raise AssertionError(f"{msg} expected {b!r}, got {a!r}")


# --- the daemon --------------------------------------------------------

BASE_CONFIG = """
[kmsd]
state_dir = {dir}/state
frame_timeout = 1s

[key default]
key_id = local/dev

[key test]
key_id = insecure-test-key

[key enconly]
key_id = insecure-test-key/encrypt

[socket encrypt]
path = {dir}/encrypt.sock
allow = generate, encrypt

[socket decrypt]
path = {dir}/decrypt.sock
allow = generate, encrypt, decrypt, rewrap
"""


class Kmsd:
    def __init__(self, config=BASE_CONFIG, extra="", env=None):
        self.dir = tempfile.mkdtemp(prefix="kmsd-test-")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "kmsd.conf")
        with open(self.conf, "w") as f:
            f.write(config.format(dir=self.dir) + extra.format(dir=self.dir))
        self.log = open(os.path.join(self.dir, "kmsd.log"), "w+")
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def path(self, name):
        return os.path.join(self.dir, name)

    def sockets(self):
        out = []
        for line in open(self.conf):
            line = line.strip()
            if line.startswith("path ="):
                out.append(line.split("=", 1)[1].strip())
        return out

    def start(self, timeout=10, preexec=None):
        self.proc = subprocess.Popen(KMSD_WRAPPER +
                                     [KMSD, "--config", self.conf],
                                     stdout=self.log, stderr=self.log,
                                     env=self.env, preexec_fn=preexec)
        deadline = time.time() + timeout * WRAPPER_SLOWDOWN
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kmsd exited {self.proc.returncode}: "
                                   f"{self.logtext()}")
            if all(os.path.exists(p) for p in self.sockets()) and \
                    "ready" in self.logtext():
                return self
            time.sleep(0.02)
        raise RuntimeError("kmsd did not become ready: " + self.logtext())

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stop kmsd; it must exit 0 and remove its socket files."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout * WRAPPER_SLOWDOWN)
        self.proc = None
        for p in self.sockets():
            check(not os.path.exists(p), f"socket file {p} left behind")
        eq(rc, 0, "kmsd exit code")
        return rc

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def kmsctl(sock, *args, input=b"", check_rc=None):
    p = subprocess.run([KMSCTL, "-s", sock, *args], input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if check_rc is not None and p.returncode != check_rc:
        raise AssertionError(f"kmsctl {' '.join(args)}: exit {p.returncode},"
                             f" stderr {p.stderr!r}")
    return p


# --- raw protocol client -----------------------------------------------

class Raw:
    """A protocol client that can also misbehave."""

    def __init__(self, path, timeout=5):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def send_bytes(self, b):
        self.s.sendall(b)

    def send_body(self, body):
        self.s.sendall(struct.pack(">I", len(body)) + body)

    def send(self, obj):
        self.send_body(msgpack.packb(obj, use_bin_type=True))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        (n,) = struct.unpack(">I", self._read(4))
        return msgpack.unpackb(self._read(n), raw=False)

    def call(self, obj):
        self.send(obj)
        return self.recv()

    def closed(self, timeout=5):
        """True when the server closes the connection within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()
