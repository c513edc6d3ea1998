#!/usr/bin/python3
"""Secret hygiene: once a connection is gone, the data keys and plaintexts
it carried are nowhere in kmsd's memory (read from /proc/PID/mem as root),
and kmsd is not dumpable."""
import os
import re

from harness import Kmsd, Raw, case, check, eq, run_cases


def memory_contains(pid, needles):
    """Scan every writable or anonymous mapping of pid for the needles."""
    found = []
    with open(f"/proc/{pid}/maps") as maps, \
            open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)",
                         line)
            start, end, perms, name = (int(m.group(1), 16),
                                       int(m.group(2), 16), m.group(3),
                                       m.group(4))
            if "r" not in perms or name.startswith("[v") or \
                    (name and not name.startswith("[") and "w" not in perms):
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except OSError:
                continue
            for n in needles:
                if n in data:
                    found.append((name or "anon", n.hex()))
    return found


def setup():
    return Kmsd().start()


def teardown(k):
    try:
        k.stop()
    finally:
        k.cleanup()


@case
def core_dumps_off(k):
    # RLIMIT_CORE 0 (and PR_SET_DUMPABLE 0) are set at start
    with open(f"/proc/{k.proc.pid}/limits") as f:
        limits = f.read()
    check(re.search(r"Max core file size\s+0\s+0", limits), limits)


@case
def scanner_finds_live_secrets(k):
    # the scan itself must work: a key held in our request buffer while
    # the connection is open is found in the daemon (in the socket's
    # kernel buffer it is not, so hold it in the daemon: a partial frame)
    marker = os.urandom(32)
    r = Raw(k.path("decrypt.sock"))
    import struct
    r.send_bytes(struct.pack(">I", 1000) + b"\x85" + marker)
    import time
    time.sleep(0.2)
    check(memory_contains(k.proc.pid, [marker]), "scanner found nothing")
    r.close()


@case
def keys_gone_after_use(k):
    r = Raw(k.path("decrypt.sock"))
    keys, plains = [], []
    for i in range(20):
        g = r.call({"id": i + 1, "op": "generate", "key": "default",
                    "context": {"i": str(i)}})
        d = r.call({"id": 100 + i, "op": "decrypt", "key": "default",
                    "ciphertext": g["ciphertext"], "context": {"i": str(i)}})
        eq(d["plaintext"], g["plaintext"])
        keys.append(g["plaintext"])
        pt = os.urandom(48)
        e = r.call({"id": 200 + i, "op": "encrypt", "key": "test",
                    "plaintext": pt})
        d = r.call({"id": 300 + i, "op": "decrypt", "key": "test",
                    "ciphertext": e["ciphertext"]})
        eq(d["plaintext"], pt)
        plains.append(pt)
        rw = r.call({"id": 400 + i, "op": "rewrap", "key": "default",
                     "ciphertext": g["ciphertext"], "context": {"i": str(i)}})
        check("ciphertext" in rw)
    r.close()
    import time
    time.sleep(0.3)     # let the reaper free the connection
    eq(memory_contains(k.proc.pid, keys + plains), [])


if __name__ == "__main__":
    run_cases(setup, teardown)
