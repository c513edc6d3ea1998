#!/usr/bin/python3
"""systemd integration without systemd as PID 1: sd_notify messages read
from a NOTIFY_SOCKET this test owns (READY only once the sockets listen,
STATUS, WATCHDOG pings on time, RELOADING/READY around a reload, STOPPING
on SIGTERM), and socket activation through systemd-socket-activate with
FileDescriptorName matching [socket NAME]."""
import os
import signal
import socket
import subprocess
import time

from harness import KMSD, BASE_CONFIG, Kmsd, Raw, case, check, eq, run_cases


class Notify:
    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.msgs = []      # (time, text)

    def read(self, timeout):
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(4096)
        except socket.timeout:
            return None
        t = (time.time(), data.decode())
        self.msgs.append(t)
        return t

    def wait_for(self, word, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.read(max(0.01, deadline - time.time()))
            if m and word in m[1].split("\n"):
                return m
        raise AssertionError(f"no {word} in {self.msgs}")

    def close(self):
        self.s.close()


def start_notified(extra_env):
    k = Kmsd()
    n = Notify(os.path.join(k.dir, "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=n.path, **extra_env)
    k.proc = subprocess.Popen([KMSD, "--config", k.conf], stdout=k.log,
                              stderr=k.log, env=env)
    return k, n


@case
def ready_only_when_listening_and_status():
    k, n = start_notified({})
    try:
        m = n.wait_for("READY=1")
        # at READY the sockets accept connections
        r = Raw(k.path("decrypt.sock"))
        eq(r.call({"id": 1, "op": "hello"})["id"], 1)
        r.close()
        status = n.wait_for("STATUS=3 keys, 2 sockets, decryption enabled",
                            timeout=2) if "STATUS=" not in m[1] else m
        check("decryption enabled" in status[1], n.msgs)
        k.proc.send_signal(signal.SIGHUP)
        n.wait_for("RELOADING=1")
        n.wait_for("READY=1")
        k.proc.send_signal(signal.SIGTERM)
        n.wait_for("STOPPING=1")
        eq(k.proc.wait(10), 0)
        k.proc = None
    finally:
        n.close()
        k.cleanup()


@case
def watchdog_pings_on_time():
    k, n = start_notified({"WATCHDOG_USEC": "1000000"})
    try:
        n.wait_for("READY=1")
        t0 = time.time()
        pings = []
        while time.time() - t0 < 3.2:
            m = n.read(0.5)
            if m and "WATCHDOG=1" in m[1].split("\n"):
                pings.append(m[0])
        # every 500 ms (half the period): about 6 in 3.2 s, and never a
        # gap that reaches the 1 s period (systemd would restart kmsd)
        check(len(pings) >= 5, f"{len(pings)} pings")
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        check(max(gaps) < 0.95, f"gap {max(gaps):.3f}s")
        k.stop()
    finally:
        n.close()
        k.cleanup()


@case
def no_watchdog_without_watchdog_usec():
    k, n = start_notified({})
    try:
        n.wait_for("READY=1")
        t0 = time.time()
        while time.time() - t0 < 0.5:
            m = n.read(0.5)
            check(m is None or "WATCHDOG=1" not in m[1], m)
        k.stop()
    finally:
        n.close()
        k.cleanup()


@case
def socket_activation_by_name():
    k = Kmsd()
    enc, dec = k.path("encrypt.sock"), k.path("decrypt.sock")
    try:
        # systemd-socket-activate binds both, names them, and starts kmsd
        # at the first connection with LISTEN_FDS/LISTEN_FDNAMES set
        k.proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", dec, "-l", enc,
             "--fdname=decrypt:encrypt", KMSD, "--config", k.conf],
            stdout=k.log, stderr=k.log)
        deadline = time.time() + 5
        while not (os.path.exists(enc) and os.path.exists(dec)):
            check(time.time() < deadline, "activator did not bind")
            time.sleep(0.02)
        r = Raw(dec, timeout=10)
        resp = r.call({"id": 1, "op": "hello"})
        eq(resp["socket"], "decrypt")
        r.close()
        r = Raw(enc)
        eq(r.call({"id": 2, "op": "hello"})["socket"], "encrypt")
        r.close()
        check("using the socket systemd passed" in k.logtext(), k.logtext())
        k.proc.send_signal(signal.SIGTERM)
        eq(k.proc.wait(10), 0)
        k.proc = None
        # the socket files belong to systemd: kmsd leaves them
        check(os.path.exists(enc) and os.path.exists(dec))
    finally:
        k.cleanup()


@case
def unknown_activated_socket_is_refused_politely():
    k = Kmsd()
    extra = k.path("stray.sock")
    try:
        k.proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", k.path("decrypt.sock"), "-l",
             extra, "--fdname=decrypt:stray", KMSD, "--config", k.conf],
            stdout=k.log, stderr=k.log)
        deadline = time.time() + 5
        while not os.path.exists(k.path("decrypt.sock")):
            check(time.time() < deadline)
            time.sleep(0.02)
        r = Raw(k.path("decrypt.sock"), timeout=10)
        eq(r.call({"id": 1, "op": "hello"})["id"], 1)
        r.close()
        check("named 'stray'" in k.logtext(), k.logtext())
        # the encrypt socket was not passed: kmsd made it itself
        check(os.path.exists(k.path("encrypt.sock")))
        k.proc.send_signal(signal.SIGTERM)
        eq(k.proc.wait(10), 0)
        k.proc = None
        check(not os.path.exists(k.path("encrypt.sock")),
              "kmsd's own socket left behind")
    finally:
        k.cleanup()


if __name__ == "__main__":
    run_cases()
