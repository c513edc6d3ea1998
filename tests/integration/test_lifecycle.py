#!/usr/bin/python3
"""Starting, checking and stopping kmsd."""
import os
import socket
import subprocess

from harness import KMSD, BASE_CONFIG, Kmsd, Raw, case, check, eq, run_cases


def check_config(text):
    k = Kmsd(config=text)
    try:
        p = subprocess.run([KMSD, "--check-config", "--config", k.conf],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        return p.returncode, p.stdout.decode(), p.stderr.decode(), k.conf
    finally:
        k.cleanup()


@case
def check_config_ok():
    rc, out, err, conf = check_config(BASE_CONFIG)
    eq(rc, 0, err)
    check(out.startswith(conf + ": ok"), out)


@case
def check_config_names_file_and_line():
    cases = [
        ("[kmsd]\nstate_dir = /tmp/x\nbogus = 1\n", 3, "unknown option"),
        ("[key a]\nkey_id = local/a\n[socket s]\npath = {dir}/s\n"
         "allow = generate, explode\n", 5, "allow"),
        ("[key a]\nkey_id = local/a\nversion = zero\n", 3, "version"),
        ("[key a]\nkey_id = local/a\n[socket s]\npath = relative\n", 4,
         "absolute"),
        ("[key a]\nkey_id = local/a\n[socket s]\npath = {dir}/s\n"
         "mode = 0777\nallow = encrypt\n", 5, "mode"),
        ("[nonsense]\nx = 1\n", 2, "unknown section"),
        ("[key a]\n\n\nversion = 2\n[socket s]\npath = {dir}/s\n"
         "allow = encrypt\n", 1, "no key_id"),
        ("[key a]\nkey_id = local/a\n[socket s]\npath = {dir}/s\n"
         "allow = encrypt\nkeys = a, b\n", 3, "unknown key 'b'"),
        ("[key a]\nkey_id = local/a\nkey_id = local/b\n", 3, "twice"),
        ("[key a]\nkey_id = local/a\nthis is not ini\n", 3, "syntax"),
    ]
    for text, line, word in cases:
        rc, out, err, conf = check_config(text)
        eq(rc, 1, text)
        check(err.startswith(f"{conf}:{line}: "), f"{text!r} -> {err!r}")
        check(word in err, f"{word!r} not in {err!r}")
        eq(err.count("\n"), 1, "one line:")


@case
def missing_config_file():
    p = subprocess.run([KMSD, "--check-config", "--config", "/nonexistent"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    eq(p.returncode, 1)
    check(b"/nonexistent: No such file" in p.stderr, p.stderr)


@case
def version_and_usage():
    p = subprocess.run([KMSD, "--version"], stdout=subprocess.PIPE)
    eq(p.returncode, 0)
    check(p.stdout.startswith(b"kmsd "))
    eq(subprocess.run([KMSD, "--bogus"], stderr=subprocess.PIPE).returncode, 2)


@case
def sigterm_removes_sockets_and_exits_0():
    k = Kmsd()
    try:
        k.start()
        r = Raw(k.path("decrypt.sock"))
        eq(r.call({"id": 1, "op": "hello"})["id"], 1)
        k.stop()        # checks exit 0 and the socket files gone
        check(r.closed(), "client connection not closed at exit")
    finally:
        k.cleanup()


@case
def sigint_stops_cleanly_too():
    import signal
    k = Kmsd()
    try:
        k.start()
        k.stop(sig=signal.SIGINT)
    finally:
        k.cleanup()


@case
def stale_socket_file_is_replaced():
    k = Kmsd()
    try:
        # a socket file nobody listens on, as a crashed daemon leaves it
        s = socket.socket(socket.AF_UNIX)
        s.bind(k.path("decrypt.sock"))
        s.close()
        k.start()
        eq(Raw(k.path("decrypt.sock")).call({"id": 2, "op": "hello"})["id"], 2)
        k.stop()
    finally:
        k.cleanup()


@case
def live_socket_is_not_stolen():
    a = Kmsd()
    try:
        a.start()
        p = subprocess.run([KMSD, "--config", a.conf], stderr=subprocess.PIPE,
                           timeout=10)
        eq(p.returncode, 1)
        check(b"in use" in p.stderr, p.stderr)
        # the first daemon still serves
        eq(Raw(a.path("decrypt.sock")).call({"id": 3, "op": "hello"})["id"], 3)
        a.stop()
    finally:
        a.cleanup()


@case
def master_key_with_loose_mode_refused():
    k = Kmsd()
    try:
        k.start()
        k.stop()
        os.chmod(k.path("state/local-dev.key"), 0o644)
        p = subprocess.run([KMSD, "--config", k.conf], stderr=subprocess.PIPE,
                           timeout=10)
        eq(p.returncode, 1)
        check(b"local-dev.key" in p.stderr or b"local/dev" in p.stderr,
              p.stderr)
        check(b"[key default]" in p.stderr, p.stderr)
    finally:
        k.cleanup()


@case
def master_key_survives_restart():
    k = Kmsd()
    try:
        k.start()
        ct = Raw(k.path("decrypt.sock")).call(
            {"id": 1, "op": "encrypt", "key": "default",
             "plaintext": b"persist"})["ciphertext"]
        k.stop()
        k.start()
        pt = Raw(k.path("decrypt.sock")).call(
            {"id": 1, "op": "decrypt", "key": "default",
             "ciphertext": ct})["plaintext"]
        eq(pt, b"persist")
        k.stop()
    finally:
        k.cleanup()


@case
def too_many_connections_get_busy():
    k = Kmsd(extra="")
    with open(k.conf) as f:
        text = f.read()
    with open(k.conf, "w") as f:
        f.write(text.replace("frame_timeout = 1s",
                             "frame_timeout = 1s\nmax_connections = 3"))
    try:
        k.start()
        held = [Raw(k.path("decrypt.sock")) for _ in range(3)]
        for i, r in enumerate(held):
            eq(r.call({"id": i + 1, "op": "hello"})["id"], i + 1)
        extra = Raw(k.path("decrypt.sock"))
        resp = extra.recv()
        eq(resp["error"]["code"], "busy")
        check(extra.closed())
        held[0].close()
        import time
        time.sleep(0.2)
        again = Raw(k.path("decrypt.sock"))
        eq(again.call({"id": 9, "op": "hello"})["id"], 9)
        for r in held[1:] + [again]:
            r.close()
        k.stop()
    finally:
        k.cleanup()



@case
def idle_timeout_counts_from_the_last_request():
    import time
    k = Kmsd(config=BASE_CONFIG.replace("frame_timeout = 1s",
                                        "frame_timeout = 1s\n"
                                        "idle_timeout = 1s"))
    try:
        k.start()
        # busy: a request every 0.3 s keeps it open well past 1 s
        busy = Raw(k.path("decrypt.sock"))
        idle = Raw(k.path("decrypt.sock"))
        eq(idle.call({"id": 1, "op": "hello"})["id"], 1)
        t0 = time.time()
        for i in range(12):
            eq(busy.call({"id": i + 1, "op": "hello"})["id"], i + 1)
            time.sleep(0.3)
        check(time.time() - t0 > 3)
        # idle: closed about 1 s after its only answer, not later
        check(idle.closed(timeout=0.1), "idle connection still open")
        eq(busy.call({"id": 99, "op": "hello"})["id"], 99)
        t1 = time.time()
        check(busy.closed(timeout=4), "not closed once idle")
        took = time.time() - t1
        check(0.8 < took < 2.5, f"closed after {took:.2f} s idle")
        k.stop()
    finally:
        k.cleanup()

if __name__ == "__main__":
    run_cases()
